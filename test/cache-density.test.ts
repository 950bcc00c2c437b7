/**
 * How many typical answers fit per MiB, compressed vs not, in the embedded store and in a real
 * Redis. Prints the table recorded in docs/cache-density.md (re-run: `npx vitest run
 * test/cache-density.test.ts`); asserts only what must hold on any machine.
 */
import { Redis } from 'ioredis';
import { brotliCompressSync, brotliDecompressSync, constants, gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeEntry, encodeEntry, type CacheEntry } from '../src/cache/entry.js';
import { cacheKey } from '../src/cache/key.js';
import { memoryStoreEntrySize } from '../src/cache/memory-store.js';
import { entryFromStream } from '../src/cache/entry-forms.js';
import { parseSse } from '../src/openai/sse-parser.js';
import { SseRecorder } from '../src/openai/stream-recorder.js';
import { startRedis, type RedisServer } from './helpers/redis-server.js';

/** A real-looking ~330-token answer (markdown, a list, a code block), not repeated filler. */
const ANSWER = `Great question! The difference between a process and a thread comes down to what they share.

**Processes** are independent programs in execution. Each process has its own virtual address space, its own file descriptors, and its own copy of global variables. The operating system isolates them from each other, so a crash in one process usually cannot corrupt another. Creating a process (for example with \`fork()\` on Linux) is relatively expensive, because the kernel must set up page tables and copy (or mark copy-on-write) the parent's memory.

**Threads** live inside a process. All threads of a process share the same heap, global variables and open files, but each thread has its own stack and registers. That makes threads cheap to create and fast to communicate with each other — they can simply read and write shared data structures — but it also means you need synchronisation (mutexes, atomics, channels) to avoid race conditions.

A quick rule of thumb:

1. Use **processes** when you want isolation and fault tolerance, e.g. a web server that runs each worker separately.
2. Use **threads** when tasks need to share a lot of data and you can manage the locking, e.g. a parallel image filter.
3. In Node.js, prefer \`worker_threads\` for CPU-bound work and keep I/O on the event loop.

Here is a tiny example in Python:

\`\`\`python
from concurrent.futures import ThreadPoolExecutor

with ThreadPoolExecutor(max_workers=4) as pool:
    results = list(pool.map(len, ["a", "bb", "ccc"]))
print(results)  # [1, 2, 3]
\`\`\`

Let me know if you'd like a deeper dive into scheduling or memory models!`;

const IDENTITY = { id: 'chatcmpl-BbX2kQ9rTzYw1LmNoPq3RsTuVwXyZ', created: 1_727_000_000, model: 'gpt-4o-mini-2024-07-18' };
const USAGE = { prompt_tokens: 25, completion_tokens: 331, total_tokens: 356, prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 }, completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 } };

function jsonBody(): Buffer {
  return Buffer.from(JSON.stringify({
    ...IDENTITY, object: 'chat.completion',
    choices: [{ index: 0, message: { role: 'assistant', content: ANSWER, refusal: null, annotations: [] }, logprobs: null, finish_reason: 'stop' }],
    usage: USAGE, service_tier: 'default', system_fingerprint: 'fp_0123456789',
  }));
}

/** OpenAI's stream: one token per chunk, `usage: null` and a random `obfuscation` pad on each. */
function upstreamSse(): string {
  const head = { ...IDENTITY, object: 'chat.completion.chunk', service_tier: 'default', system_fingerprint: 'fp_0123456789' };
  const pad = (i: number): string => 'aZ09xQ'.repeat(3).slice(0, (i * 7) % 12);
  const tokens = ANSWER.match(/\s*[\w']+|\s*[^\w\s]+|\s+/g) ?? [];
  const chunk = (i: number, delta: object, finish: string | null = null): string =>
    `data: ${JSON.stringify({ ...head, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }], usage: null, obfuscation: pad(i) })}\n\n`;
  return [
    chunk(0, { role: 'assistant', content: '', refusal: null }),
    ...tokens.map((t, i) => chunk(i + 1, { content: t })),
    chunk(tokens.length + 1, {}, 'stop'),
    `data: ${JSON.stringify({ ...head, choices: [], usage: USAGE, obfuscation: 'x' })}\n\n`,
    'data: [DONE]\n\n',
  ].join('');
}

function entries(): Record<'json' | 'sse', CacheEntry> {
  const recorder = new SseRecorder('chat.completions');
  for (const event of parseSse(upstreamSse())) recorder.add(event);
  const sse = entryFromStream(recorder, 'openai');
  if (!sse) throw new Error('fixture stream did not record');
  return {
    json: { storedAt: Date.now(), form: 'json', endpoint: 'chat.completions', provider: 'openai', model: IDENTITY.model, usage: USAGE, body: jsonBody() },
    sse,
  };
}

function microseconds(run: () => unknown, iterations = 300): number {
  for (let i = 0; i < 50; i++) run();
  const start = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) run();
  return Number(process.hrtime.bigint() - start) / iterations / 1000;
}

async function redisBytesPerEntry(redis: Redis, value: Buffer, count: number, tag: string): Promise<number> {
  await redis.flushall();
  const before = Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1]);
  const pipeline = redis.pipeline();
  for (let i = 0; i < count; i++) pipeline.set(cacheKey({ provider: 'openai', endpoint: tag, body: i }), value, 'EX', 86_400);
  await pipeline.exec();
  const after = Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1]);
  return (after - before) / count;
}

describe('cache density', () => {
  let server: RedisServer;
  let redis: Redis;
  beforeAll(async () => {
    server = await startRedis();
    redis = new Redis(server.url);
  });
  afterAll(async () => {
    redis.disconnect();
    await server.stop();
  });

  it('measures answers per MiB and codec cost, and compression pays for both forms', async () => {
    const rows: string[] = ['| form | body bytes | stored bytes | memory store /MiB | Redis /MiB | encode µs | decode µs |', '|---|---|---|---|---|---|---|'];
    const key = cacheKey({ provider: 'openai', endpoint: 'chat.completions', body: {} });
    const perMiB: Record<string, number> = {};
    for (const [form, entry] of Object.entries(entries())) {
      for (const compress of [false, true]) {
        const stored = encodeEntry(entry, { compress });
        expect(decodeEntry(stored)?.body.equals(entry.body)).toBe(true);
        const memory = Math.floor(2 ** 20 / memoryStoreEntrySize(key, stored));
        const redisBytes = await redisBytesPerEntry(redis, stored, compress ? 2000 : 300, form);
        const label = `${form} ${compress ? 'brotli-5' : 'plain'}`;
        perMiB[label] = memory;
        rows.push(`| ${label} | ${entry.body.byteLength} | ${stored.byteLength} | ${memory} | ${Math.floor(2 ** 20 / redisBytes)} | ${microseconds(() => encodeEntry(entry, { compress })).toFixed(0)} | ${microseconds(() => decodeEntry(stored)).toFixed(0)} |`);
      }
    }
    console.log(`\n${rows.join('\n')}\n`);
    expect(perMiB['json brotli-5']).toBeGreaterThan(perMiB['json plain'] ?? Infinity);
    expect(perMiB['sse brotli-5']).toBeGreaterThan(5 * (perMiB['sse plain'] ?? Infinity));
  });
  it('compares codecs on the same payloads (why brotli quality 5)', () => {
    const brotli = (quality: number) => (b: Buffer): Buffer =>
      brotliCompressSync(b, { params: { [constants.BROTLI_PARAM_QUALITY]: quality, [constants.BROTLI_PARAM_SIZE_HINT]: b.length, [constants.BROTLI_PARAM_MODE]: constants.BROTLI_MODE_TEXT } });
    const codecs: Array<[string, (b: Buffer) => Buffer, (b: Buffer) => Buffer]> = [
      ['brotli q1', brotli(1), brotliDecompressSync],
      ['brotli q3', brotli(3), brotliDecompressSync],
      ['brotli q5', brotli(5), brotliDecompressSync],
      ['brotli q6', brotli(6), brotliDecompressSync],
      ['gzip 1', (b) => gzipSync(b, { level: 1 }), gunzipSync],
      ['gzip 6', (b) => gzipSync(b, { level: 6 }), gunzipSync],
    ];
    const rows = ['| payload | codec | bytes | ratio | compress µs | decompress µs |', '|---|---|---|---|---|---|'];
    for (const [form, entry] of Object.entries(entries())) {
      // What the entry codec compresses: header and body together, i.e. the plain encoding minus its prefix.
      const payload = encodeEntry(entry, { compress: false }).subarray(10);
      for (const [name, compress, decompress] of codecs) {
        const packed = compress(payload);
        expect(decompress(packed).equals(payload)).toBe(true);
        rows.push(`| ${form} (${payload.length} B) | ${name} | ${packed.length} | ${((100 * packed.length) / payload.length).toFixed(1)}% | ${microseconds(() => compress(payload)).toFixed(0)} | ${microseconds(() => decompress(packed)).toFixed(0)} |`);
      }
    }
    console.log(`\n${rows.join('\n')}\n`);
  });
});
