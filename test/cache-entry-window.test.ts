/**
 * The brotli window of a stored entry fits the entry: brotli's default (4 MiB) is allocated by
 * every encoder, which showed as RSS under concurrent misses (bench/README.md).
 */
import { describe, expect, it } from 'vitest';
import { type CacheEntry, compressionQuality, decodeEntry, encodeEntry, encodeEntryAsync } from '../src/cache/entry.js';

const PREFIX_BYTES = 10;
/**
 * Brotli's fastest qualities (0 and 1) announce a window of at least 2^18 whatever they are
 * told: their encoder works on the input in place and allocates by the input's size, not by
 * the window (BrotliEncoderCompressStreamFast), so the announced window costs no memory there.
 */
const FAST_QUALITY_WINDOW_BITS = 18;
/** Brotli's default window, which every encoder of the other qualities would allocate. */
const DEFAULT_WINDOW_BITS = 22;

/** WBITS from the first bits of a brotli stream (RFC 7932, section 9.1), read LSB first. */
function windowBits(stream: Buffer): number {
  const bits = stream[0]! | (stream[1]! << 8);
  if ((bits & 1) === 0) return 16;
  const n = (bits >> 1) & 7;
  if (n !== 0) return 17 + n;
  const m = (bits >> 4) & 7;
  return m === 0 ? 17 : 8 + m;
}

const jsonEntryOf = (text: string): CacheEntry => ({
  storedAt: 1,
  form: 'json',
  endpoint: 'chat.completions',
  provider: 'openai',
  model: 'gpt-4o-mini',
  body: Buffer.from(JSON.stringify({ choices: [{ message: { content: text } }] })),
});

/** A short stream-filled entry: one chunk per word, as OpenAI streams. */
const sseEntryOf = (text: string): CacheEntry => ({
  storedAt: 1,
  form: 'sse',
  endpoint: 'chat.completions',
  provider: 'openai',
  model: 'gpt-4o-mini',
  chunkIdentity: { id: 'chatcmpl-1', object: 'chat.completion.chunk', created: 1, model: 'gpt-4o-mini' },
  body: Buffer.from(
    text
      .split(' ')
      .map((word) => `data: {"id":"chatcmpl-1","choices":[{"index":0,"delta":{"content":" ${word}"}}]}\n\n`)
      .join(''),
  ),
});

describe('entry compression window', () => {
  it('is just large enough for a typical stream-filled answer, whichever encoder stored it', async () => {
    const original = sseEntryOf('A cache keeps answers so that the same question is not paid twice.');
    expect(compressionQuality('sse', original.body.byteLength)).toBeGreaterThan(1);
    for (const encoded of [encodeEntry(original), await encodeEntryAsync(original)]) {
      expect(encoded[1]).toBe(1); // compressed
      const payload = encoded.subarray(PREFIX_BYTES);
      expect(2 ** windowBits(payload)).toBeGreaterThanOrEqual(original.body.byteLength);
      expect(windowBits(payload)).toBeLessThanOrEqual(12);
      expect(decodeEntry(encoded)).toEqual(original);
    }
  });

  it('is never the default for a JSON-filled answer (quality 1: its floor, allocated by input size)', async () => {
    const original = jsonEntryOf('A cache keeps answers so that the same question is not paid twice. '.repeat(16));
    expect(compressionQuality('json', original.body.byteLength)).toBe(1);
    for (const encoded of [encodeEntry(original), await encodeEntryAsync(original)]) {
      expect(encoded[1]).toBe(1);
      const bits = windowBits(encoded.subarray(PREFIX_BYTES));
      expect(bits).toBeLessThanOrEqual(FAST_QUALITY_WINDOW_BITS);
      expect(bits).toBeLessThan(DEFAULT_WINDOW_BITS);
      expect(decodeEntry(encoded)).toEqual(original);
    }
  });

  it('grows with the payload, so big answers compress as well as before', async () => {
    const words = Array.from({ length: 40_000 }, (_, i) => `w${(i * 7919) % 5003}`).join(' ');
    for (const original of [jsonEntryOf(words), sseEntryOf(words.slice(0, 60_000))]) {
      const encoded = await encodeEntryAsync(original);
      expect(encoded[1]).toBe(1);
      expect(2 ** windowBits(encoded.subarray(PREFIX_BYTES))).toBeGreaterThanOrEqual(original.body.byteLength);
      expect(decodeEntry(encoded)).toEqual(original);
    }
  });
});
