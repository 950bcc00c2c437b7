/**
 * Identical requests in flight at once share one upstream call: the registry maps a cache
 * key to the call under way. A flight leaves the registry once it settled (and, when asked,
 * its answer was stored), so a later request goes to the cache instead.
 */
export class SingleFlight<F extends { settled: Promise<unknown> }> {
  private readonly flights = new Map<string, F>();
  /** Flights that have answered but are still registered (their entry is being written). */
  private readonly answered = new WeakSet<F>();

  get(key: string): F | undefined {
    return this.flights.get(key);
  }

  /**
   * Registers a flight unless one still runs for the key. It stays registered until
   * `releaseAfter` settles (by default the flight itself): a caller that stores the answer passes
   * the store write, so a request arriving after the answer but before the entry is readable
   * still finds the flight instead of calling the upstream a second time. A flight that has
   * already answered is replaced: the newer call (a no-cache refresh) holds the newer answer.
   */
  register(key: string, flight: F, releaseAfter: Promise<unknown> = flight.settled): boolean {
    const current = this.flights.get(key);
    if (current && !this.answered.has(current)) return false;
    this.flights.set(key, flight);
    const markAnswered = () => void this.answered.add(flight);
    flight.settled.then(markAnswered, markAnswered);
    const release = () => {
      if (this.flights.get(key) === flight) this.flights.delete(key);
    };
    releaseAfter.then(release, release);
    return true;
  }
}
