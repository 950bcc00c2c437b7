import { LRUCache } from 'lru-cache';
import type { CacheStore } from './store.js';

/**
 * Bytes charged per entry on top of key and value: lru-cache's own bookkeeping (index slots,
 * TTL arrays) and the Buffer object. Rough, but keeps many tiny entries from escaping the bound.
 */
const PER_ENTRY_OVERHEAD_BYTES = 96;

export interface MemoryStoreOptions {
  /** Upper bound of the sum of charged entry sizes (CACHE_MAX_BYTES). */
  maxBytes: number;
}

/** The embedded cache: an in-process LRU bounded by bytes, with a TTL per entry. */
export class MemoryStore implements CacheStore {
  readonly label = 'memory';
  readonly maxBytes: number;
  readonly #lru: LRUCache<string, Buffer>;

  constructor(options: MemoryStoreOptions) {
    if (!Number.isSafeInteger(options.maxBytes) || options.maxBytes <= 0) {
      throw new RangeError(`MemoryStore maxBytes must be a positive integer, got ${options.maxBytes}`);
    }
    this.maxBytes = options.maxBytes;
    this.#lru = new LRUCache<string, Buffer>({
      maxSize: options.maxBytes,
      // An entry that alone exceeds the bound is refused by lru-cache instead of evicting everything.
      maxEntrySize: options.maxBytes,
      sizeCalculation: (value, key) => memoryStoreEntrySize(key, value),
    });
  }

  /** The bytes currently charged against `maxBytes` (never above it). */
  get calculatedSize(): number {
    return this.#lru.calculatedSize;
  }

  get entryCount(): number {
    return this.#lru.size;
  }

  /** Synchronous: the entries are in this process, and a hit must not wait for a promise. */
  get(key: string): Buffer | undefined {
    return this.#lru.get(key);
  }

  async set(key: string, value: Buffer, ttlSeconds: number): Promise<void> {
    const owned = value.byteLength === value.buffer.byteLength ? value : ownCopy(value);
    if (ttlSeconds > 0) this.#lru.set(key, owned, { ttl: ttlSeconds * 1000 });
    else this.#lru.set(key, owned);
  }

  async delete(key: string): Promise<void> {
    this.#lru.delete(key);
  }

  ping(): boolean {
    return true;
  }

  isUp(): boolean {
    return true;
  }

  async close(): Promise<void> {
    this.#lru.clear();
  }
}

/**
 * A small Buffer sliced from a larger ArrayBuffer (Node's 8 KiB pool, a socket read) keeps the whole
 * ArrayBuffer alive while being charged only its own length: copy it into memory of its own (not via
 * Buffer.from, which would slice Node's pool again) so the byte bound stays truthful.
 */
function ownCopy(value: Buffer): Buffer {
  const copy = Buffer.allocUnsafeSlow(value.byteLength);
  value.copy(copy);
  return copy;
}

/** The size charged for one entry; exported so tests and docs use the same arithmetic. */
export function memoryStoreEntrySize(key: string, value: Buffer): number {
  return value.byteLength + Buffer.byteLength(key) + PER_ENTRY_OVERHEAD_BYTES;
}
