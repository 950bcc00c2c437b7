/**
 * The one interface both cache backends implement. Callers treat every failure as a miss
 * (fail-open): a store may reject, and the gateway answers from upstream instead.
 */
export type CacheStoreKind = 'memory' | 'redis';

/** The operations a store reports failures for; `connect` covers the backend's connection. */
export type CacheStoreOp = 'get' | 'set' | 'delete' | 'connect';

export interface CacheStore {
  readonly kind: CacheStoreKind;
  /** The stored bytes, or undefined on a miss. Treat the returned Buffer as read-only. */
  get(key: string): Promise<Buffer | undefined>;
  /** get() without waiting, for a backend that holds its entries in this process (the embedded store). */
  getNow?(key: string): Buffer | undefined;
  /** Stores `value`; `ttlSeconds` 0 means no expiry (eviction by LRU only). */
  set(key: string, value: Buffer, ttlSeconds: number): Promise<void>;
  delete(key: string): Promise<void>;
  /** True when the backend answers right now. Never rejects. */
  ping(): Promise<boolean>;
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
