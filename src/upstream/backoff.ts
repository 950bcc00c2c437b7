/**
 * The retries of one client request and the jittered exponential backoff before each. One
 * budget is shared by every upstream call made for the request: the policy's own retries
 * (upstream-policy.ts) and the second call after a 2xx whose body broke (upstream/client.ts).
 */
import { isAbortError, isRetryableTransportError } from './failures.js';

const BACKOFF_BASE_MS = 100;
const BACKOFF_CAP_MS = 2_000;

/** Full jitter: concurrent retries after one upstream hiccup must not arrive together. */
export function backoffDelayMs(retry: number): number {
  const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** (Math.max(1, retry) - 1));
  return Math.random() * ceiling;
}

export class RetryBudget {
  private used = 0;
  /** The key of the latest attempt, for log lines: its id, never the key. */
  keyId: string | undefined;

  constructor(private left: number) {}

  /** Takes one retry: the wait before it (ms), or undefined when none is left. */
  take(): number | undefined {
    if (this.left <= 0) return undefined;
    this.left--;
    this.used++;
    return backoffDelayMs(this.used);
  }

  /**
   * A transport failure (no answer, or an answer whose body broke) that may be tried again:
   * the wait before the retry, taken from the budget; undefined when it must not be retried.
   */
  afterTransportError(error: unknown): number | undefined {
    if (isAbortError(error) || !isRetryableTransportError(error)) return undefined;
    return this.take();
  }
}

/** Waits `ms`, or less when the signal aborts. */
export function wait(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const onAbort = () => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
