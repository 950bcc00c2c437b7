import * as crypto from 'node:crypto';
import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';

export interface RegenerationTrackerOptions {
  /** Most (chat, request) pairs remembered; the oldest are forgotten first. */
  maxEntries?: number;
  /** How long a pair is remembered. */
  ttlMs?: number;
  /** Told each pair newly remembered (by its fixed-size digest), to share it with other replicas. */
  onRemember?: (pair: string) => void;
}

const DEFAULT_MAX_ENTRIES = 100_000;
const DEFAULT_TTL_MS = 24 * 60 * 60 * 1000;

/**
 * What one remembered pair costs, whatever the chat id's length: its fixed-size key (a 22-char
 * string, ~40 bytes in V8), the Map entry and lru-cache's per-slot arrays (~80 bytes), rounded
 * up. The default bound is therefore about 100,000 × 160 B = 16 MB.
 */
export const PAIR_ENTRY_BYTES = 160;

/** On every regeneration check: the one-shot crypto.hash (Node >= 20.12) where it exists. */
const digest: (value: string) => Buffer =
  typeof crypto.hash === 'function' ? (value) => crypto.hash('sha256', value, 'buffer') : (value) => createHash('sha256').update(value).digest();

/**
 * Open WebUI's "regenerate" re-sends the exact same request from the same chat: the user wants a
 * new answer, not the cached one. A request identical to one its chat id already sent is therefore
 * treated as no-cache; the same request from another chat is an ordinary lookup. Bounded in count
 * and time, in memory: losing it on restart only costs one cached (not regenerated) answer.
 *
 * The chat id is the client's text: kept as is, a client sending long distinct ids would grow the
 * process by their bytes (10,000 ids of 15 KB held 150 MB). So a pair is remembered by a digest
 * of chat id and cache key: every entry has the same small size, and the bound in entries is a
 * bound in bytes (`bytes`).
 */
export class RegenerationTracker {
  readonly #seen: LRUCache<string, true>;
  readonly #onRemember: ((pair: string) => void) | undefined;

  constructor(options: RegenerationTrackerOptions = {}) {
    this.#onRemember = options.onRemember;
    this.#seen = new LRUCache<string, true>({
      max: options.maxEntries ?? DEFAULT_MAX_ENTRIES,
      ttl: options.ttlMs ?? DEFAULT_TTL_MS,
    });
  }

  /** Whether this chat already sent the request with this cache key. */
  seen(chatId: string, cacheKey: string): boolean {
    return this.#seen.has(pairKey(chatId, cacheKey));
  }

  remember(chatId: string, cacheKey: string): void {
    const key = pairKey(chatId, cacheKey);
    if (!this.#seen.has(key)) this.#onRemember?.(key);
    this.#seen.set(key, true);
  }

  /** A pair another replica remembered (shared-regenerations.ts). */
  learn(pair: string): void {
    this.#seen.set(pair, true);
  }

  /** seen() then remember(), in one call: true when this request is a regeneration. */
  checkAndRemember(chatId: string, cacheKey: string): boolean {
    const key = pairKey(chatId, cacheKey);
    const seen = this.#seen.has(key);
    this.#seen.set(key, true);
    if (!seen) this.#onRemember?.(key);
    return seen;
  }

  get size(): number {
    return this.#seen.size;
  }

  /** What the remembered pairs hold, in bytes (an upper estimate; independent of the ids' length). */
  get bytes(): number {
    return this.#seen.size * PAIR_ENTRY_BYTES;
  }
}

// A NUL cannot appear in an HTTP header value, so no chat id can run into the cache key. The
// first 16 bytes of the digest (128 bits, 22 characters) are plenty to tell pairs apart.
function pairKey(chatId: string, cacheKey: string): string {
  return digest(`${chatId}\u0000${cacheKey}`).toString('base64url', 0, 16);
}
