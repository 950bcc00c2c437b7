/**
 * Identical requests in flight at once share one upstream call: the registry maps a cache
 * key to the call under way. A flight leaves the registry the moment it settles, so a later
 * request goes to the cache instead.
 */
export class SingleFlight<F extends { settled: Promise<unknown> }> {
  private readonly flights = new Map<string, F>();

  get(key: string): F | undefined {
    return this.flights.get(key);
  }

  /** Registers a flight unless one already runs for the key. */
  register(key: string, flight: F): boolean {
    if (this.flights.has(key)) return false;
    this.flights.set(key, flight);
    const release = () => {
      if (this.flights.get(key) === flight) this.flights.delete(key);
    };
    flight.settled.then(release, release);
    return true;
  }

  get size(): number {
    return this.flights.size;
  }
}
