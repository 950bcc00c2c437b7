/**
 * A stored entry as a given request must receive it. A hit in the form that filled the entry
 * is sent as stored (no parsing); the other form is converted.
 */
import { decodeEntry, type CacheEntry } from '../cache/entry.js';
import { completionJsonFromEntry, renderSse, sseFromEntry, type Completion } from '../cache/sse.js';
import type { PreparedRequest } from './prepare.js';

export type CachedAnswer = CacheEntry;

export function decodeCachedAnswer(raw: Buffer): CachedAnswer | undefined {
  return decodeEntry(raw);
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
