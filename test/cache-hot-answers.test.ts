/**
 * Hot answers: a hit decodes its entry once, yet an entry replaced under the same key is never
 * served stale, and a Redis reply (a slice of a bigger read buffer) is not pinned by the memo.
 */
import { describe, expect, it } from 'vitest';
import { encodeEntry, encodeEntryAsync, decodeEntry, type CacheEntry } from '../src/cache/entry.js';
import { decodeCachedAnswer } from '../src/completions/cache-answers.js';

const answer = (text: string, storedAt = 1_727_000_000_000): CacheEntry => ({
  storedAt,
  form: 'json',
  route: 'chat.completions',
  provider: 'openai',
  model: 'gpt-4o-mini',
  usage: { prompt_tokens: 10, completion_tokens: 20, total_tokens: 30 },
  body: Buffer.from(JSON.stringify({ id: 'chatcmpl-1', object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content: text } }] })),
});

let keys = 0;
const freshKey = (): string => `gw:v1:hot-answers-test-${++keys}`;

describe('decodeCachedAnswer', () => {
  it('decodes an entry hit again only once (the same bytes give the same answer object)', () => {
    const key = freshKey();
    const stored = encodeEntry(answer('The quick brown fox jumps over the lazy dog. '.repeat(20)));
    const first = decodeCachedAnswer(stored, key);
    expect(first).toEqual(decodeEntry(stored));
    // Same Buffer (embedded store) and an equal copy (a Redis reply) both reuse the decoded answer.
    expect(decodeCachedAnswer(stored, key)).toBe(first);
    expect(decodeCachedAnswer(Buffer.from(stored), key)).toBe(first);
  });

  it('decodes anew when the bytes under a key change (no-cache refresh, another gateway writing)', () => {
    const key = freshKey();
    const old = decodeCachedAnswer(encodeEntry(answer('old answer', 1)), key);
    const fresh = decodeCachedAnswer(encodeEntry(answer('new answer', 2)), key);
    expect(old?.storedAt).toBe(1);
    expect(fresh?.storedAt).toBe(2);
    expect(fresh?.body.toString()).toContain('new answer');
  });

  it('does not keep the larger buffer a Redis reply was sliced from', async () => {
    const key = freshKey();
    // Stored uncompressed, the decoded body is a view of the bytes the memo keeps.
    const stored = await encodeEntryAsync(answer('sliced '.repeat(50)), { compress: false });
    const readBuffer = Buffer.alloc(64 * 1024);
    stored.copy(readBuffer, 1000);
    const reply = readBuffer.subarray(1000, 1000 + stored.byteLength);
    const decoded = decodeCachedAnswer(reply, key);
    expect(decoded?.body.toString()).toContain('sliced');
    expect(decoded?.body.buffer).not.toBe(readBuffer.buffer);
    // Reused afterwards, from its own copy.
    expect(decodeCachedAnswer(reply, key)).toBe(decoded);
  });

  it('gives undefined for unreadable bytes and remembers nothing for them', () => {
    const key = freshKey();
    expect(decodeCachedAnswer(Buffer.from('{"not":"an entry"}'), key)).toBeUndefined();
    expect(decodeCachedAnswer(Buffer.from('{"not":"an entry"}'), key)).toBeUndefined();
  });
});
