/**
 * A stored entry as a given request must receive it. A hit in the form that filled the entry
 * is sent as stored (no parsing); the other form is converted once per hot entry and kept with it.
 */
import { LRUCache } from 'lru-cache';
import { decodeEntry, type CacheEntry } from '../cache/entry.js';
import { completionJsonFromEntry, sseFromEntry } from '../cache/entry-forms.js';
import type { Completion } from '../openai/completion-types.js';
import { renderSse } from '../openai/stream-renderer.js';
import type { PreparedRequest } from './prepare.js';

/** Treat as read-only: a hot answer is shared by every request it serves. */
export type CachedAnswer = CacheEntry;

interface HotAnswer {
  key: string;
  raw: Buffer;
  answer: CachedAnswer;
  /** The answer as each kind of request receives it, made on the first hit that asks. */
  forms: AnswerForms;
}

interface AnswerForms {
  json?: Buffer;
  sse?: Buffer;
  sseWithUsage?: Buffer;
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
  sizeCalculation: (hot, key) => key.length + hot.raw.byteLength + hot.answer.body.byteLength + formsBytes(hot.forms) + 256,
});

/** Bytes the hot answers hold, forms included (never above HOT_ANSWERS_MAX_BYTES). */
export function hotAnswersBytes(): number {
  return hotAnswers.calculatedSize;
}

/** The hot record of each memoised answer object, to keep its forms with it (and charge them). */
const hotByAnswer = new WeakMap<CachedAnswer, HotAnswer>();

function formsBytes(forms: AnswerForms): number {
  return (forms.json?.byteLength ?? 0) + (forms.sse?.byteLength ?? 0) + (forms.sseWithUsage?.byteLength ?? 0);
}

export function decodeCachedAnswer(raw: Buffer, key: string): CachedAnswer | undefined {
  const hot = hotAnswers.get(key);
  // The embedded store hands out the very Buffer it holds; Redis a fresh copy of the same bytes.
  if (hot && (hot.raw === raw || hot.raw.equals(raw))) return hot.answer;
  const owned = ownMemory(raw);
  const answer = decodeEntry(owned);
  if (answer) {
    const fresh: HotAnswer = { key, raw: owned, answer, forms: {} };
    hotAnswers.set(key, fresh);
    hotByAnswer.set(answer, fresh);
  }
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
  if (entry.form === 'json') return entry.body;
  return withForm(entry, 'json', () => completionJsonFromEntry(entry));
}

export function entryAsSse(entry: CacheEntry, includeUsage: boolean): Buffer | undefined {
  // A stored Responses stream is its own replay (that format has no [DONE] to append): nothing to make or keep.
  if (entry.form === 'sse' && entry.endpoint === 'responses') return entry.body;
  return withForm(entry, includeUsage ? 'sseWithUsage' : 'sse', () =>
    sseFromEntry(entry, { includeUsage, provider: entry.provider === 'groq' ? 'groq' : 'openai' }),
  );
}

/**
 * A form of a hot entry, made once: converting to the other form (parsing a stored stream into a
 * completion, or rendering a completion as a stream) costs 27–43 µs for a typical answer, more
 * than the rest of a hit, and even a same-form stream hit copies the events to append [DONE].
 * Kept with the hot record and charged to its bound, so the memo's bytes stay bounded.
 */
function withForm(entry: CacheEntry, form: keyof AnswerForms, make: () => Buffer | undefined): Buffer | undefined {
  const hot = hotByAnswer.get(entry);
  const known = hot?.forms[form];
  if (known) return known;
  const made = make();
  if (made && hot && hotAnswers.peek(hot.key) === hot) {
    hot.forms[form] = made;
    // Stored again so the record's size includes the new form (lru-cache only sizes a value
    // when it is set, not when the same value is set again); this may evict older records.
    hotAnswers.delete(hot.key);
    hotAnswers.set(hot.key, hot);
  }
  return made;
}

export function completionAsSse(completion: Completion, request: PreparedRequest): Buffer {
  return renderSse(completion, { includeUsage: request.includeUsage, provider: request.provider });
}
