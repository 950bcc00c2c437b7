/**
 * The one interface both cache backends implement. A read answers with the value itself when the
 * backend holds its entries in this process, or with a promise when it must ask a server (as
 * undici's cache stores do); callers go through readStore (store-read.ts), which treats a throw
 * or a rejection as "the cache is unavailable" and fails open.
 */

/** The operations a store reports failures for; `connect` covers the backend's connection. */
export type CacheStoreOp = 'get' | 'set' | 'delete' | 'connect';

export interface CacheStore {
  /** What /readyz and log lines call the backend. Nothing branches on it. */
  readonly label: string;
  /**
   * The stored bytes, or undefined on a miss; a failure throws or rejects. Treat the returned
   * Buffer as read-only.
   */
  get(key: string): Buffer | undefined | Promise<Buffer | undefined>;
  /** Stores `value`; `ttlSeconds` 0 means no expiry (eviction by LRU only). */
  set(key: string, value: Buffer, ttlSeconds: number): Promise<void>;
  delete(key: string): Promise<void>;
  /**
   * True when the backend answers right now; a remote backend asks its server (and so keeps
   * isUp() truthful after a timeout), an embedded one answers true at once. Never throws or rejects.
   */
  ping(): boolean | Promise<boolean>;
  /** Whether the backend is connected, without a round trip (for the `gateway_cache_up` gauge). */
  isUp(): boolean;
  close(): Promise<void>;
}

/**
 * Observers a store calls so the gateway can export `gateway_cache_up` and
 * `gateway_cache_errors_total{op}` without wrapping every call.
 */
export interface CacheStoreObservers {
  /** Called once per failed operation (the operation also rejects) and per connection error. */
  onError?: (op: CacheStoreOp, err: Error) => void;
  /** Called when the backend goes up or down; only on changes. */
  onStatus?: (up: boolean) => void;
}

/** The error a store rejects with: says which operation failed, keeps the backend's error as cause. */
export class CacheStoreError extends Error {
  override readonly name = 'CacheStoreError';
  constructor(
    readonly op: CacheStoreOp,
    cause: unknown,
  ) {
    super(`cache ${op} failed: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }
}
