/**
 * The brotli window of a stored entry fits the entry: brotli's default (4 MiB) is allocated by
 * every encoder, which showed as RSS under concurrent misses (bench/README.md).
 */
import { describe, expect, it } from 'vitest';
import { decodeEntry, encodeEntry, encodeEntryAsync, type CacheEntry } from '../src/cache/entry.js';

const PREFIX_BYTES = 10;

/** WBITS from the first bits of a brotli stream (RFC 7932, section 9.1), read LSB first. */
function windowBits(stream: Buffer): number {
  const bits = stream[0]! | (stream[1]! << 8);
  if ((bits & 1) === 0) return 16;
  const n = (bits >> 1) & 7;
  if (n !== 0) return 17 + n;
  const m = (bits >> 4) & 7;
  return m === 0 ? 17 : 8 + m;
}

const entryOf = (text: string): CacheEntry => ({
  storedAt: 1,
  form: 'json',
  endpoint: 'chat.completions',
  provider: 'openai',
  model: 'gpt-4o-mini',
  body: Buffer.from(JSON.stringify({ choices: [{ message: { content: text } }] })),
});

describe('entry compression window', () => {
  it('is just large enough for a typical answer, whichever encoder stored it', async () => {
    const original = entryOf('A cache keeps answers so that the same question is not paid twice. '.repeat(16));
    for (const encoded of [encodeEntry(original), await encodeEntryAsync(original)]) {
      expect(encoded[1]).toBe(1); // compressed
      const payload = encoded.subarray(PREFIX_BYTES);
      expect(2 ** windowBits(payload)).toBeGreaterThanOrEqual(original.body.byteLength);
      expect(windowBits(payload)).toBeLessThanOrEqual(12);
      expect(decodeEntry(encoded)).toEqual(original);
    }
  });

  it('grows with the payload, so big answers compress as well as before', async () => {
    const words = Array.from({ length: 40_000 }, (_, i) => `w${(i * 7919) % 5003}`).join(' ');
    const original = entryOf(words);
    const encoded = await encodeEntryAsync(original);
    expect(2 ** windowBits(encoded.subarray(PREFIX_BYTES))).toBeGreaterThanOrEqual(original.body.byteLength);
    expect(decodeEntry(encoded)).toEqual(original);
  });
});
