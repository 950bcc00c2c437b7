/**
 * A stored entry as a given request must receive it. A hit in the form that filled the entry
 * is sent as stored (no parsing); the other form is converted.
 */
import { LRUCache } from 'lru-cache';
import { decodeEntry, type CacheEntry } from '../cache/entry.js';
import { completionJsonFromEntry, renderSse, sseFromEntry, type Completion } from '../cache/sse.js';
import type { PreparedRequest } from './prepare.js';

/** Treat as read-only: a hot answer is shared by every request it serves. */
export type CachedAnswer = CacheEntry;

interface HotAnswer {
  raw: Buffer;
  answer: CachedAnswer;
}

/** Bound of the decoded copies kept; small next to CACHE_MAX_BYTES and the RSS budget. */
const HOT_ANSWERS_MAX_BYTES = 8 * 1024 * 1024;

/**
 * Decoded entries of the most recently hit keys. Decoding (brotli, with a fresh 16 KiB output
 * buffer, and the header's JSON) was the largest cost of a hit of the gateway's own (see
 * bench/README.md), so an answer that is hit again is decoded once. The stored bytes are compared
 * on every use: an entry replaced or refreshed under the same key (here or by another gateway
 * sharing the Redis) is decoded anew, never served stale. Same key and same bytes is the same
 * entry, so the memo is shared by every server in the process.
 */
const hotAnswers = new LRUCache<string, HotAnswer>({
  maxSize: HOT_ANSWERS_MAX_BYTES,
  sizeCalculation: (hot, key) => key.length + hot.raw.byteLength + hot.answer.body.byteLength + 256,
});

export function decodeCachedAnswer(raw: Buffer, key: string): CachedAnswer | undefined {
  const hot = hotAnswers.get(key);
  // The embedded store hands out the very Buffer it holds; Redis a fresh copy of the same bytes.
  if (hot && (hot.raw === raw || hot.raw.equals(raw))) return hot.answer;
  const owned = ownMemory(raw);
  const answer = decodeEntry(owned);
  if (answer) hotAnswers.set(key, { raw: owned, answer });
  return answer;
}

/**
 * A Redis reply is a slice of the client's read buffer: kept as is, it would pin that whole
 * buffer while being charged a few hundred bytes. The embedded store's values own their memory.
 */
function ownMemory(raw: Buffer): Buffer {
  if (raw.byteLength === raw.buffer.byteLength) return raw;
  const copy = Buffer.allocUnsafeSlow(raw.byteLength);
  raw.copy(copy);
  return copy;
}

export function entryAsJson(entry: CacheEntry): Buffer | undefined {
  return completionJsonFromEntry(entry);
}

export function entryAsSse(entry: CacheEntry, includeUsage: boolean): Buffer | undefined {
  return sseFromEntry(entry, { includeUsage, provider: entry.provider === 'groq' ? 'groq' : 'openai' });
}

export function completionAsSse(completion: Completion, request: PreparedRequest): Buffer {
  return renderSse(completion, { includeUsage: request.includeUsage, provider: request.provider });
}
