/** Entry encoding: exact round trips, compression only when it pays, and never a throw on bad data. */
import { pbkdf2, pbkdf2Sync, randomBytes } from 'node:crypto';
import { brotliCompressSync, constants } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import {
  type CacheEntry,
  compressionQuality,
  decodeEntry,
  decodeEntryAsync,
  encodeEntry,
  encodeEntryAsync,
  INLINE_COMPRESS_MAX_BYTES,
  SYNC_COMPRESS_MAX_BYTES,
} from '../src/cache/entry.js';
import { chatEntries, SHORT_ANSWER } from './helpers/typical-entries.js';

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
const PREFIX_BYTES = 10;

/** A JSON entry of compressible text whose payload (header + body) is exactly `size` bytes. */
/** The body compared as bytes: toEqual walks a 300 KB Buffer element by element (seconds each). */
function expectSameEntry(decoded: CacheEntry | undefined, original: CacheEntry): void {
  expect(decoded).toBeDefined();
  const { body, ...rest } = decoded!;
  const { body: originalBody, ...originalRest } = original;
  expect(rest).toEqual(originalRest);
  expect(body.equals(originalBody)).toBe(true);
}

function entryWithPayload(size: number, form: CacheEntry['form'] = 'json'): CacheEntry {
  const text = Array.from({ length: size }, (_, i) => `w${(i * 7919) % 997} `).join('');
  let bodyLength = size;
  for (;;) {
    const candidate = entry(Buffer.from(text.slice(0, bodyLength)), { form });
    const headerLength = encodeEntry(candidate, { compress: false }).readUInt32BE(2);
    if (headerLength + bodyLength === size) return candidate;
    bodyLength = size - headerLength;
  }
}

/**
 * Entries written by the encoder before the quality was chosen by form (brotli quality 5 for
 * both), as a store may still hold them: the short answer of test/helpers/typical-entries.ts,
 * stored at 1_727_000_000_123.
 */
const WRITTEN_AT_QUALITY_5 = {
  json: 'ygEAAAFtAAAD2qHIHgAgJupyWtObFSK1PAGAQ34g+Ykmrvn49qQPoFFhD1i9CrDdACOBogHHA6KpziX66K8wxtr2I/u4xQLsE2ZgPw1S7yn6QUhogcG7IAgTMIAWnaME57oymoJgwIj3tuyCMASjbWZ2JDYtWVuB39leavsZCCNwEviEOXgLM5GhmSkQd03BQUyITf3ycsJuqY8LwoimC2oTaFwMHqjxPAIkHde8/UJdQYiODMt2R+0XuWt1rc1MN0qxXUmD3koT3dP1kPh+v9+i25TzN/XQDOyL6jPoP+WT183X0r8d3svjOHyevs7fl5/rbxDw6oLn1IShNHpQcKLXQx/Y0KCwjnRrPfV+tqASljpBCKwUF2SgwSin0+4ZG3Y2jxODA1RcGvvFA+tSllZdjqwr67jPOWstc2smTbk+ZUtJt+bTcgD2hwkQGl337t+eMJC2mUg1HYUbFK8gcMGQWwL7P8I8rf+MMhahhaCvZl0tQ9LzdIKABdVqB/OFABgto9RbiOIkzXLsAQ==',
  sse: 'ygEAAAIdAAAQPNHYgQAg/qNb7izT9c0fTjytTyKCSoLZxOX07QF5jFn2mhXu6V2AYwINKkvjQHxMnQvzVMQ7gCHpDg7tUYHNCQXYfLvYzrJR5oslwQFDntsgZGDgmVfeJOjm8yQHQYBBuYG6D0IMBlcU8orLUknLDnBMebaV5zsQErDlZr4mlGA9RMZjUagkNsrBFmuC4sQs555gW2JiieWKVudUS8DqIvSAlnNGoCQkyDZqFKYI9keGcv3EzaHQzzRtUdiW6mLDDA3MKsrswDYXoUdjwNppvoXpZMxYRPKF8bkIn/bZa/dVz2/je/6YLp/z1/K9/my/QeAsjKJOE2Ju2RHqKMOc+i8WRHDcwOAIlV7/1Xqz3e1B+ClElNRbMb0yCTGObzntAJuYOh4DGYT/6dlq4dtCiW8AEmFfbM/iAvvp4YgQ0pBNOCICPXhkg0HPc//dIljpkH8dygzOwMt2ylyPwN576jcSIu6KjBv5RJWwnWVVScKWdP4R3DyeeHDDKXNzUwcr/CCNkoRxCKD05dFB8QHjv0z/nu2bJ73ZioN2IQPxeyaXvJbGw+x7BueVmHriLWbhNl2J5GG2bwLkVeSpyRez6hpaXkaLGYw/VHBLb533QobndpxCuTihGCdwNC50FAY7FxujJAE=',
};

/** Occupies every thread of libuv's pool for a few hundred ms; `finished` counts the jobs done. */
function occupyThreadPool(): { done: Promise<void>; finished: () => number } {
  const threads = Number(process.env['UV_THREADPOOL_SIZE'] ?? 4);
  const started = performance.now();
  pbkdf2Sync('calibration', 'salt', 2_000, 32, 'sha512');
  const iterations = Math.ceil((2_000 * 300) / Math.max(performance.now() - started, 0.1));
  let finished = 0;
  const jobs = Array.from(
    { length: threads },
    () =>
      new Promise<void>((resolve, reject) =>
        pbkdf2('blocker', 'salt', iterations, 32, 'sha512', (error) => {
          finished++;
          if (error) reject(error);
          else resolve();
        }),
      ),
  );
  return { done: Promise.all(jobs).then(() => undefined), finished: () => finished };
}

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

  it('reads entries written at quality 5 before, with either decoder', async () => {
    for (const form of ['json', 'sse'] as const) {
      const stored = Buffer.from(WRITTEN_AT_QUALITY_5[form], 'base64');
      expect(stored[FLAGS_BYTE]).toBe(1);
      const expected = { ...chatEntries(SHORT_ANSWER)[form], storedAt: 1_727_000_000_123 };
      expect(decodeEntry(stored)).toEqual(expected);
      expect(await decodeEntryAsync(stored)).toEqual(expected);
    }
  });

  it('codes a JSON-filled entry at quality 1 and a stream-filled one tighter (quality 4), up to 1 MiB', () => {
    expect(compressionQuality('json', 2_000)).toBe(1);
    expect(compressionQuality('json', 500_000)).toBe(1);
    expect(compressionQuality('sse', 2_000)).toBe(4);
    expect(compressionQuality('sse', 1024 * 1024)).toBe(4);
    expect(compressionQuality('sse', 1024 * 1024 + 1)).toBe(1);
    const { json, sse } = chatEntries();
    const payloadOf = (e: CacheEntry): Buffer => encodeEntry(e, { compress: false }).subarray(PREFIX_BYTES);
    const atQuality = (payload: Buffer, quality: number): Buffer =>
      brotliCompressSync(payload, {
        params: {
          [constants.BROTLI_PARAM_QUALITY]: quality,
          [constants.BROTLI_PARAM_SIZE_HINT]: payload.byteLength,
          [constants.BROTLI_PARAM_MODE]: constants.BROTLI_MODE_TEXT,
        },
      });
    expect(encodeEntry(json).byteLength - PREFIX_BYTES).toBe(atQuality(payloadOf(json), 1).byteLength);
    // Quality 1 would make the stream-filled entry a fifth larger.
    expect(encodeEntry(sse).byteLength - PREFIX_BYTES).toBeLessThan(atQuality(payloadOf(sse), 1).byteLength * 0.9);
  });

  it('compresses payloads up to INLINE_COMPRESS_MAX_BYTES inline, larger ones on the thread pool', async () => {
    const atLimit = entryWithPayload(INLINE_COMPRESS_MAX_BYTES);
    const over = entryWithPayload(INLINE_COMPRESS_MAX_BYTES + 1);
    const pool = occupyThreadPool();
    // Every pool thread is busy: an inline encode finishes anyway, a pooled one waits for a thread.
    const inline = await encodeEntryAsync(atLimit);
    expect(pool.finished()).toBe(0);
    const pooled = await encodeEntryAsync(over);
    expect(pool.finished()).toBeGreaterThan(0);
    await pool.done;
    for (const [encoded, original] of [
      [inline, atLimit],
      [pooled, over],
    ] as const) {
      expect(encoded[FLAGS_BYTE]).toBe(1);
      expect(encoded.readUInt32BE(6)).toBe(original === atLimit ? INLINE_COMPRESS_MAX_BYTES : INLINE_COMPRESS_MAX_BYTES + 1);
      expect(decodeEntry(encoded)).toEqual(original);
    }
  });

  it('round-trips every size around its thresholds, both forms, both encoders and decoders', async () => {
    // Payload sizes, and bodies of 64 KiB and one byte more (joined to the header before
    // compression on the pool, or written after it).
    const sizes = [256, INLINE_COMPRESS_MAX_BYTES, INLINE_COMPRESS_MAX_BYTES + 1, 300_000];
    const entries = sizes.flatMap((size) => (['json', 'sse'] as const).map((form) => entryWithPayload(size, form)));
    for (const bodyLength of [64 * 1024, 64 * 1024 + 1]) {
      for (const form of ['json', 'sse'] as const) entries.push(entry(Buffer.from('data: {"delta":"word"}\n\n'.repeat(4000).slice(0, bodyLength)), { form }));
    }
    for (const original of entries) {
      const size = encodeEntry(original, { compress: false }).byteLength - PREFIX_BYTES;
      for (const encoded of [encodeEntry(original), await encodeEntryAsync(original)]) {
        expectSameEntry(decodeEntry(encoded), original);
        expectSameEntry(await decodeEntryAsync(encoded), original);
      }
      // However the parts reached the encoder, the pooled entry is about as small as one
      // compressed inline from one buffer (where that compresses): quality 1 codes a header
      // written before its body on its own, which costs a few dozen bytes at most.
      if (size <= SYNC_COMPRESS_MAX_BYTES)
        expect((await encodeEntryAsync(original)).byteLength).toBeLessThanOrEqual(encodeEntry(original).byteLength * 1.02 + 64);
    }
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
