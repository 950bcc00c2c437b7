/**
 * Retries of a passthrough request, before any byte reached the client, as on the cached
 * routes: a 429 cools the key and a 401/403 disables it, and the request goes again on another
 * key; a connection error or a 5xx is retried with jittered backoff, a bounded number of times.
 * The body was buffered, so sending it again is safe. Plugged into @fastify/reply-from's
 * `retryDelay`, which re-sends the same request options: the new key is written into them.
 */
import { cooldownFromResponse } from '../keys/cooldown.js';
import { isUnavailable, type KeyLease, type KeyPool } from '../keys/pool.js';
import { backoffDelayMs } from '../upstream/backoff.js';
import { isRetryableTransportError } from '../upstream/failures.js';

interface RetryContext {
  err?: unknown;
  req: { headers: Record<string, string | string[] | undefined> };
  res?: { statusCode: number; headers: Record<string, string | string[] | undefined>; stream: NodeJS.ReadableStream };
}

export interface RetryTarget {
  lease: KeyLease;
}

/** The retryDelay for one request: ms to wait before the next try, or null to answer as is. */
export function passthroughRetryDelay(target: RetryTarget, pool: KeyPool, maxRetries: number): (details: unknown) => number | null {
  const tried = new Set<string>([target.lease.id]);
  let retriesLeft = maxRetries;
  let attempt = 0;
  return (details) => {
    // reply-from's published types call these the Fastify request and reply; at run time they are
    // the upstream request options it re-sends and undici's response (index.js, createRequestRetry).
    const { err, req, res } = details as RetryContext;
    attempt++;
    if (res) {
      const status = res.statusCode;
      if (status === 429 || status === 401 || status === 403) {
        const next = pool.acquire(tried);
        // No other key: the last answer goes to the client (the response hook reports it).
        if (isUnavailable(next)) return null;
        if (status === 429) pool.rateLimited(target.lease, cooldownFromResponse(res.headers, undefined, Date.now()));
        else pool.rejected(target.lease);
        tried.add(next.id);
        target.lease = next;
        req.headers.authorization = `Bearer ${next.key}`;
        res.stream.resume();
        // reply-from treats 0 as "no retry".
        return 1;
      }
      if (status >= 500 && retriesLeft > 0) {
        retriesLeft--;
        res.stream.resume();
        return Math.max(1, backoffDelayMs(attempt));
      }
      return null;
    }
    if (err !== undefined && err !== null && isRetryableTransportError(err) && retriesLeft > 0) {
      retriesLeft--;
      return Math.max(1, backoffDelayMs(attempt));
    }
    return null;
  };
}
