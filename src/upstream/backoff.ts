/** Jittered exponential backoff between retries of an upstream call. */

const BACKOFF_BASE_MS = 100;
const BACKOFF_CAP_MS = 2_000;

/** Full jitter: concurrent retries after one upstream hiccup must not arrive together. */
export function backoffDelayMs(attempt: number): number {
  const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** (Math.max(1, attempt) - 1));
  return Math.random() * ceiling;
}

/** Waits the backoff of this attempt, or less when the signal aborts. */
export function backoff(attempt: number, signal: AbortSignal | undefined): Promise<void> {
  const ms = backoffDelayMs(attempt);
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });
}
