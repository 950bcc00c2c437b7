import { LRUCache } from 'lru-cache';

export interface RegenerationTrackerOptions {
  /** Most (chat, request) pairs remembered; the oldest are forgotten first. */
  maxEntries?: number;
  /** How long a pair is remembered. */
  ttlMs?: number;
}

const DEFAULT_MAX_ENTRIES = 100_000;
const DEFAULT_TTL_MS = 24 * 60 * 60 * 1000;

/**
 * Open WebUI's "regenerate" re-sends the exact same request from the same chat: the user wants a
 * new answer, not the cached one. A request identical to one its chat id already sent is therefore
 * treated as no-cache; the same request from another chat is an ordinary lookup. Bounded in count
 * and time, in memory: losing it on restart only costs one cached (not regenerated) answer.
 */
export class RegenerationTracker {
  readonly #seen: LRUCache<string, true>;

  constructor(options: RegenerationTrackerOptions = {}) {
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
    this.#seen.set(pairKey(chatId, cacheKey), true);
  }

  /** seen() then remember(), in one call: true when this request is a regeneration. */
  checkAndRemember(chatId: string, cacheKey: string): boolean {
    const key = pairKey(chatId, cacheKey);
    const seen = this.#seen.has(key);
    this.#seen.set(key, true);
    return seen;
  }

  get size(): number {
    return this.#seen.size;
  }
}

// A NUL cannot appear in an HTTP header value, so no chat id can run into the cache key.
function pairKey(chatId: string, cacheKey: string): string {
  return `${chatId}\u0000${cacheKey}`;
}
