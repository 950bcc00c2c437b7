/**
 * Hot answers: a hit decodes its entry once, yet an entry replaced under the same key is never
 * served stale, and a Redis reply (a slice of a bigger read buffer) is not pinned by the memo.
 */
import { describe, expect, it } from 'vitest';
import { encodeEntry, encodeEntryAsync, decodeEntry, type CacheEntry } from '../src/cache/entry.js';
import { decodeCachedAnswer, entryAsJson, entryAsSse, hotAnswersBytes } from '../src/pipeline/cache-answers.js';

const answer = (text: string, storedAt = 1_727_000_000_000): CacheEntry => ({
  storedAt,
  form: 'json',
  endpoint: 'chat.completions',
  provider: 'openai',
  model: 'gpt-4o-mini',
  usage: { prompt_tokens: 10, completion_tokens: 20, total_tokens: 30 },
  body: Buffer.from(JSON.stringify({ id: 'chatcmpl-1', object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content: text } }] })),
});

/** A JSON-filled entry with everything a stream needs (a full chat.completion). */
const completion = (text: string, storedAt = 1_727_000_000_000): CacheEntry => ({
  ...answer(text, storedAt),
  body: Buffer.from(
    JSON.stringify({
      id: 'chatcmpl-2',
      object: 'chat.completion',
      created: 7,
      model: 'gpt-4o-mini',
      choices: [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: 'stop' }],
      usage: { prompt_tokens: 10, completion_tokens: 20, total_tokens: 30 },
    }),
  ),
});

/** The text a rendered chat stream spells out. */
function sseText(sse: Buffer): string {
  return sse
    .toString()
    .split('\n\n')
    .filter((event) => event.startsWith('data: {'))
    .map((event) => (JSON.parse(event.slice(6)) as { choices: Array<{ delta?: { content?: string } }> }).choices[0]?.delta?.content ?? '')
    .join('');
}

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

  it('converts a hot entry to the other form once, keeps each form apart, and charges them to its bound', () => {
    const key = freshKey();
    const stored = encodeEntry(completion('Converted once. '.repeat(40)));
    const decoded = decodeCachedAnswer(stored, key)!;
    const before = hotAnswersBytes();
    const sse = entryAsSse(decoded, false)!;
    expect(sse.toString()).toContain('data: [DONE]');
    expect(sse.toString()).not.toContain('"usage"');
    // The same bytes again: the same Buffer, not a second conversion.
    expect(entryAsSse(decodeCachedAnswer(Buffer.from(stored), key)!, false)).toBe(sse);
    const withUsage = entryAsSse(decoded, true)!;
    expect(withUsage).not.toBe(sse);
    expect(withUsage.toString()).toContain('"usage"');
    expect(entryAsSse(decoded, true)).toBe(withUsage);
    expect(hotAnswersBytes() - before).toBe(sse.byteLength + withUsage.byteLength);
    // The stored form is sent as stored.
    expect(entryAsJson(decoded)).toBe(decoded.body);
  });

  it('never serves a form made from an entry that was replaced under the same key', () => {
    const key = freshKey();
    const old = decodeCachedAnswer(encodeEntry(completion('the old text')), key)!;
    expect(sseText(entryAsSse(old, false)!)).toBe('the old text');
    const fresh = decodeCachedAnswer(encodeEntry(completion('the new text', 2)), key)!;
    expect(sseText(entryAsSse(fresh, false)!)).toBe('the new text');
  });

  it('assembles a stream-filled entry into JSON once', () => {
    const key = freshKey();
    const events = [
      {
        id: 'chatcmpl-9',
        object: 'chat.completion.chunk',
        created: 5,
        model: 'gpt-4o-mini',
        choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }],
      },
      {
        id: 'chatcmpl-9',
        object: 'chat.completion.chunk',
        created: 5,
        model: 'gpt-4o-mini',
        choices: [{ index: 0, delta: { content: 'streamed text' }, finish_reason: null }],
      },
      { id: 'chatcmpl-9', object: 'chat.completion.chunk', created: 5, model: 'gpt-4o-mini', choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] },
    ];
    const entry: CacheEntry = {
      storedAt: 3,
      form: 'sse',
      endpoint: 'chat.completions',
      provider: 'openai',
      model: 'gpt-4o-mini',
      usage: { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 },
      chunkIdentity: { id: 'chatcmpl-9', object: 'chat.completion.chunk', created: 5, model: 'gpt-4o-mini' },
      body: Buffer.from(events.map((event) => `data: ${JSON.stringify(event)}\n\n`).join('')),
    };
    const decoded = decodeCachedAnswer(encodeEntry(entry), key)!;
    const json = entryAsJson(decoded)!;
    expect(JSON.parse(json.toString())).toMatchObject({
      object: 'chat.completion',
      choices: [{ message: { content: 'streamed text' } }],
      usage: { total_tokens: 3 },
    });
    expect(entryAsJson(decoded)).toBe(json);
  });
});
