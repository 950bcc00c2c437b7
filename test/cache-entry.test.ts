/** Entry encoding: exact round trips, compression only when it pays, and never a throw on bad data. */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { decodeEntry, decodeEntryAsync, encodeEntry, encodeEntryAsync, SYNC_COMPRESS_MAX_BYTES, type CacheEntry } from '../src/cache/entry.js';

const FLAGS_BYTE = 1;
const entry = (body: Buffer, extra: Partial<CacheEntry> = {}): CacheEntry => ({
  storedAt: 1_727_000_000_123,
  form: 'json',
  endpoint: 'chat.completions',
  provider: 'openai',
  model: 'gpt-4o-mini',
  usage: { prompt_tokens: 10, completion_tokens: 20, total_tokens: 30, prompt_tokens_details: { cached_tokens: 0 } },
  body,
  ...extra,
});
const prose = Buffer.from(JSON.stringify({ text: 'The quick brown fox jumps over the lazy dog. '.repeat(200) }));

describe('encodeEntry / decodeEntry', () => {
  it('round-trips a small body uncompressed', () => {
    const original = entry(Buffer.from('{"ok":true}'));
    const encoded = encodeEntry(original);
    expect(encoded[FLAGS_BYTE]).toBe(0);
    expect(decodeEntry(encoded)).toEqual(original);
  });

  it('compresses a compressible body and round-trips it', () => {
    const original = entry(prose, {
      form: 'sse',
      chunkIdentity: { id: 'chatcmpl-1', object: 'chat.completion.chunk', created: 1, model: 'gpt-4o-mini', system_fingerprint: 'fp' },
    });
    const encoded = encodeEntry(original);
    expect(encoded[FLAGS_BYTE]).toBe(1);
    expect(encoded.byteLength).toBeLessThan(prose.byteLength / 5);
    expect(decodeEntry(encoded)).toEqual(original);
  });

  it('keeps an incompressible body as it is', () => {
    const original = entry(randomBytes(4096));
    const encoded = encodeEntry(original);
    expect(encoded[FLAGS_BYTE]).toBe(0);
    expect(decodeEntry(encoded)?.body.equals(original.body)).toBe(true);
  });

  it('leaves big bodies uncompressed when encoding inline, compresses them on the thread pool', async () => {
    const big = Buffer.from('embedding 0.0123, '.repeat(Math.ceil((SYNC_COMPRESS_MAX_BYTES * 2) / 18)));
    const inline = encodeEntry(entry(big));
    expect(inline[FLAGS_BYTE]).toBe(0);
    const pooled = await encodeEntryAsync(entry(big));
    expect(pooled[FLAGS_BYTE]).toBe(1);
    expect(pooled.byteLength).toBeLessThan(big.byteLength / 10);
    expect((await decodeEntryAsync(pooled))?.body.equals(big)).toBe(true);
    expect(decodeEntry(pooled)?.body.equals(big)).toBe(true);
  });

  it('gives undefined for corrupt, truncated, foreign or unknown-version data', async () => {
    const good = encodeEntry(entry(prose));
    const plain = encodeEntry(entry(prose), { compress: false });
    const mutate = (source: Buffer, f: (b: Buffer) => void): Buffer => {
      const copy = Buffer.from(source);
      f(copy);
      return copy;
    };
    const bad = [
      Buffer.alloc(0),
      Buffer.from('{"id":"chatcmpl"}'),
      Buffer.from('data: {}\n\n'),
      good.subarray(0, 9),
      good.subarray(0, good.length - 10), // truncated compressed payload
      plain.subarray(0, plain.length - 1), // truncated plain payload
      mutate(good, (b) => (b[0] = 0xcb)), // another format version
      mutate(good, (b) => (b[1] = 0x80)), // unknown flag
      mutate(good, (b) => b.writeUInt32BE(0xffffffff, 2)), // header longer than the payload
      mutate(good, (b) => b.writeUInt32BE(b.readUInt32BE(6) * 1000, 6)), // lies about its plain size
      mutate(good, (b) => b.fill(0x41, 12)), // garbage brotli stream
      mutate(plain, (b) => (b[10] = 0x20)), // header no longer JSON
      mutate(plain, (b) => b.write(`"n":${'1'.repeat(String(prose.byteLength).length)}`, b.indexOf('"n":'), 'latin1')), // wrong body length
      mutate(plain, (b) => b.write('"f":"jsox"', b.indexOf('"f":"json"'), 'latin1')), // unknown form
    ];
    for (const data of bad) {
      expect(decodeEntry(data)).toBeUndefined();
      expect(await decodeEntryAsync(data)).toBeUndefined();
    }
  });
});
