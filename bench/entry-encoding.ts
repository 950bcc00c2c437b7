/**
 * What encoding a fresh answer for the store costs, codec by codec, in one process: for typical
 * entries (test/helpers/typical-entries.ts), the main thread's CPU per encode (what other
 * requests wait for), how long the event loop was busy per encode, the process's CPU per encode
 * (main thread and libuv's pool together), the latency from the call to the stored bytes, the
 * bytes stored (entries per MiB of the embedded store) and the decode time a cold hit pays.
 *
 *   npx tsx bench/entry-encoding.ts [rounds=7] [batchMs=150] [entry label filter]
 *
 * Variants and entries are interleaved and shuffled in every round; the figures are medians over
 * the rounds (2 shared cores: single runs are noisy), except the main thread's CPU: Linux counts
 * a thread's CPU in 10 ms ticks (/proc/self/task/<pid>/stat), so it is summed over all rounds.
 * Loop busy (event-loop utilisation) also counts the thread's wake-ups and waits for a core,
 * which is why it exceeds the main thread's CPU for work handed to the pool. `sync` compresses on the main thread, `pool`
 * on libuv's thread pool one at a time (the main thread's share is the hand-off), `pool×8` with
 * eight encodes in flight (a busy gateway). `policy:` rows run encodeEntry's own policies end to
 * end, the one before this change and the one now in src/cache/entry.ts.
 */
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import * as zlib from 'node:zlib';
import { decodeEntry, encodeEntry, encodeEntryAsync, type CacheEntry } from '../src/cache/entry.js';
import { memoryStoreEntrySize } from '../src/cache/memory-store.js';
import { typicalEntries } from '../test/helpers/typical-entries.js';

const ROUNDS = Number(process.argv[2] ?? 7);
const BATCH_MS = Number(process.argv[3] ?? 150);
const ONLY = process.argv[4];
const PREFIX_BYTES = 10;
const KEY = `gw:v1:${'0'.repeat(43)}`;

type Compress = (payload: Buffer) => Buffer | Promise<Buffer>;
interface Variant {
  name: string;
  /** Compresses the plain payload (header + body) or, for a policy, encodes the whole entry. */
  run: (entry: CacheEntry, payload: Buffer) => Buffer | Promise<Buffer>;
  concurrency: number;
  decode?: (packed: Buffer, plainLength: number) => Buffer;
}

const { constants } = zlib;
const brotliPool = promisify(zlib.brotliCompress);
const gzipPool = promisify(zlib.gzip);

/** The options src/cache/entry.ts uses: text mode, size hint, a window just above the payload. */
function brotliOptions(quality: number, size: number): zlib.BrotliOptions {
  const lgwin = Math.min(constants.BROTLI_MAX_WINDOW_BITS, Math.max(constants.BROTLI_MIN_WINDOW_BITS, Math.ceil(Math.log2(size + 16))));
  return {
    params: {
      [constants.BROTLI_PARAM_QUALITY]: quality,
      [constants.BROTLI_PARAM_SIZE_HINT]: size,
      [constants.BROTLI_PARAM_MODE]: constants.BROTLI_MODE_TEXT,
      [constants.BROTLI_PARAM_LGWIN]: lgwin,
    },
  };
}

function codecVariants(): Variant[] {
  const variants: Variant[] = [];
  const add = (name: string, sync: Compress, pool: Compress, decode: Variant['decode']): void => {
    variants.push({ name: `${name} sync`, run: (_e, p) => sync(p), concurrency: 1, decode });
    variants.push({ name: `${name} pool`, run: (_e, p) => pool(p), concurrency: 1, decode });
    variants.push({ name: `${name} pool×8`, run: (_e, p) => pool(p), concurrency: 8, decode });
  };
  const brotliDecode = (packed: Buffer, plainLength: number): Buffer => zlib.brotliDecompressSync(packed, { maxOutputLength: plainLength });
  for (const quality of [1, 2, 3, 4, 5]) {
    add(
      `brotli q${quality}`,
      (p) => zlib.brotliCompressSync(p, brotliOptions(quality, p.byteLength)),
      (p) => brotliPool(p, brotliOptions(quality, p.byteLength)),
      brotliDecode,
    );
  }
  for (const level of [1, 6]) {
    add(
      `gzip ${level}`,
      (p) => zlib.gzipSync(p, { level }),
      (p) => gzipPool(p, { level }),
      (packed, plainLength) => zlib.gunzipSync(packed, { maxOutputLength: plainLength }),
    );
  }
  variants.push({ name: 'plain', run: (_e, p) => p, concurrency: 1, decode: (packed) => packed });
  return variants;
}

/**
 * The encoding policy before this change, rebuilt here so its row can be measured beside the
 * current one: brotli q5 (q1 above 1 MiB), inline up to 4 KiB, on the pool above.
 */
async function previousPolicy(entry: CacheEntry): Promise<Buffer> {
  const plain = encodeEntry(entry, { compress: false });
  const payload = plain.subarray(PREFIX_BYTES);
  const size = payload.byteLength;
  if (size < 256) return plain;
  const options = brotliOptions(size <= 1024 * 1024 ? 5 : 1, size);
  const packed = size <= 4 * 1024 ? zlib.brotliCompressSync(payload, options) : await brotliPool(payload, options);
  if (packed.byteLength > size * 0.9) return plain;
  const prefix = Buffer.from(plain.subarray(0, PREFIX_BYTES));
  prefix[1] = 1;
  return Buffer.concat([prefix, packed]);
}

function policyVariants(): Variant[] {
  const decode = (stored: Buffer): Buffer => decodeEntry(stored)?.body ?? Buffer.alloc(0);
  return [
    { name: 'policy: before', run: (e) => previousPolicy(e), concurrency: 1, decode },
    { name: 'policy: now', run: (e) => encodeEntryAsync(e), concurrency: 1, decode },
    { name: 'policy: before ×8', run: (e) => previousPolicy(e), concurrency: 8, decode },
    { name: 'policy: now ×8', run: (e) => encodeEntryAsync(e), concurrency: 8, decode },
  ];
}

interface Sample {
  busyUs: number;
  cpuUs: number;
  latencyUs: number;
  /** Main thread CPU of the whole batch, in ms (10 ms resolution). */
  mainMs: number;
  count: number;
}

/** The main thread's user + system CPU in ms; NaN where /proc is not there. */
function mainThreadMs(): number {
  try {
    const fields = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return Number.NaN;
  }
}

async function batch(variant: Variant, entry: CacheEntry, payload: Buffer, count: number): Promise<Sample> {
  const main = mainThreadMs();
  const elu = performance.eventLoopUtilization();
  const cpu = process.cpuUsage();
  const started = performance.now();
  let latency = 0;
  if (variant.concurrency === 1) {
    for (let i = 0; i < count; i++) {
      const t = performance.now();
      await variant.run(entry, payload);
      latency += performance.now() - t;
    }
  } else {
    let next = 0;
    const lane = async (): Promise<void> => {
      while (next++ < count) {
        const t = performance.now();
        await variant.run(entry, payload);
        latency += performance.now() - t;
      }
    };
    await Promise.all(Array.from({ length: variant.concurrency }, lane));
  }
  const wall = performance.now() - started;
  const used = process.cpuUsage(cpu);
  const loop = performance.eventLoopUtilization(elu);
  return {
    busyUs: (Math.min(loop.active, wall) * 1000) / count,
    cpuUs: (used.user + used.system) / count,
    latencyUs: (latency * 1000) / count,
    mainMs: mainThreadMs() - main,
    count,
  };
}

function shuffled<T>(items: T[]): T[] {
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [copy[i], copy[j]] = [copy[j] as T, copy[i] as T];
  }
  return copy;
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
};

function decodeUs(variant: Variant, packed: Buffer, plainLength: number): number {
  const decode = variant.decode;
  if (!decode) return Number.NaN;
  const times: number[] = [];
  for (let i = 0; i < 60; i++) {
    const t = performance.now();
    decode(packed, plainLength);
    times.push((performance.now() - t) * 1000);
  }
  return median(times.slice(10));
}

async function main(): Promise<void> {
  const entries = typicalEntries().filter(([label]) => ONLY === undefined || label.includes(ONLY));
  const variants = [...codecVariants(), ...policyVariants()];
  const payloads = new Map(entries.map(([label, entry]) => [label, encodeEntry(entry, { compress: false }).subarray(PREFIX_BYTES)]));
  const counts = new Map<string, number>();
  const samples = new Map<string, Sample[]>();
  const stored = new Map<string, Buffer>();
  // Sizes, batch sizes (about BATCH_MS of work each) and a warm-up of every variant.
  for (const [label, entry] of entries) {
    const payload = payloads.get(label) as Buffer;
    for (const variant of variants) {
      const id = `${label}|${variant.name}`;
      const t = performance.now();
      const output = await variant.run(entry, payload);
      await variant.run(entry, payload);
      const perOp = Math.max((performance.now() - t) / 2, 0.005);
      counts.set(id, Math.max(4, Math.min(20_000, Math.round(BATCH_MS / perOp))));
      stored.set(id, output);
      samples.set(id, []);
    }
  }
  for (let round = 1; round <= ROUNDS; round++) {
    for (const [label, entry] of shuffled(entries)) {
      const payload = payloads.get(label) as Buffer;
      for (const variant of shuffled(variants)) {
        const id = `${label}|${variant.name}`;
        samples.get(id)?.push(await batch(variant, entry, payload, counts.get(id) as number));
      }
    }
    process.stderr.write(`round ${round}/${ROUNDS}\n`);
  }
  console.log(
    `Node ${process.version}, ${ROUNDS} rounds of ${BATCH_MS} ms per variant; load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}\n`,
  );
  for (const [label, entry] of entries) {
    const payload = payloads.get(label) as Buffer;
    console.log(`### ${label}: body ${entry.body.byteLength} B, payload (header + body) ${payload.byteLength} B\n`);
    console.log('| variant | stored B | ratio | entries/MiB | main thread CPU µs | loop busy µs | process CPU µs | latency µs | decode µs |');
    console.log('|---|---|---|---|---|---|---|---|---|');
    for (const variant of variants) {
      const id = `${label}|${variant.name}`;
      const output = stored.get(id) as Buffer;
      const isPolicy = variant.name.startsWith('policy');
      // A codec's output is kept only when it is at most 90% of the payload, as the encoder does.
      const kept = isPolicy || output.byteLength <= payload.byteLength * 0.9 ? output : payload;
      const storedBytes = isPolicy ? kept.byteLength : kept.byteLength + PREFIX_BYTES;
      const runs = samples.get(id) as Sample[];
      const cell = (pick: (s: Sample) => number): string => median(runs.map(pick)).toFixed(1);
      const decode = variant.concurrency === 1 ? decodeUs(variant, output, payload.byteLength).toFixed(1) : '';
      const main = (1000 * runs.reduce((sum, s) => sum + s.mainMs, 0)) / runs.reduce((sum, s) => sum + s.count, 0);
      console.log(
        `| ${variant.name} | ${storedBytes} | ${((100 * (storedBytes - PREFIX_BYTES)) / payload.byteLength).toFixed(1)}% | ${Math.floor(2 ** 20 / memoryStoreEntrySize(KEY, Buffer.alloc(storedBytes)))} | ${main.toFixed(0)} | ${cell((s) => s.busyUs)} | ${cell((s) => s.cpuUs)} | ${cell((s) => s.latencyUs)} | ${decode} |`,
      );
    }
    console.log('');
  }
}

await main();
