/**
 * The soak (`BENCH_ONLY=soak npm run bench`): minutes of mixed traffic against two real gateway
 * processes at once, one with the embedded cache and one with Redis, to show that memory does not
 * creep. Hits, misses, streams, embeddings, a few client aborts mid-stream, bad JSON and
 * connections closed after one request, from a seeded mix. Each gateway's memory is sampled every
 * second from outside (VmRSS in /proc/<pid>/status) and from its own /metrics (V8 heap used,
 * process RSS); nothing is forced (no GC call, no restart). "Before" is the last seconds of the
 * warm-up, once the caches are full, "after" the last seconds of the soak; a row passes when
 * after is within the margin of before and no request got an answer it should not have.
 *
 * Steady state first: the embedded gateway runs with a small CACHE_MAX_BYTES and the warm-up
 * lasts until it took in more misses than it holds, so during the soak its LRU evicts as much as
 * it stores; the hot set of repeated prompts is small enough for the gateway's decoded-answer and
 * known-request memos to be full from the warm-up on. No X-OpenWebUI-Chat-Id is sent: the regeneration tracker
 * fills up to its bound (100,000 pairs, ~16 MB) over far more requests than a soak sends, which
 * would read as growth; its byte bound has its own test.
 */
import { Pool } from 'undici';
import { cacheKey } from '../src/cache/key.js';
import { memoryStoreEntrySize } from '../src/cache/memory-store.js';
import { encodeEntry } from '../src/cache/entry.js';
import { summarize } from './load.js';
import type { BenchOptions } from './options.js';
import { rssBytes } from './proc-stats.js';
import type { ScenarioResult } from './results.js';
import { CHAT_PATH, CLIENT_HEADERS } from './scenarios.js';
import { metricSum, startGateway, type FakeUpstreamProcess, type GatewayProcess } from './services.js';
import { chatBody, CHAT_MODEL, embeddingBody } from './workload.js';

/** The embedded gateway's cache bound: small, so the warm-up fills it past the bound in about a minute. */
const SOAK_CACHE_MAX_BYTES = 2 * 2 ** 20;
/** The warm-up stops by itself even if the cache never fills (a slow box): this long after its minimum. */
const WARMUP_CAP_MS = 300_000;
/** Concurrent clients per gateway. */
const CLIENTS = 4;
/** Distinct repeated prompts (chat) and inputs (embeddings): the hits. */
const HOT_CHATS = 300;
const HOT_EMBEDDINGS = 100;
/** Margins (see bench/README.md, "Soak"): RSS after ≤ before × 1.10; heap floor after ≤ before + 8 MiB. */
const RSS_MARGIN = 0.1;
const HEAP_MARGIN_BYTES = 8 * 2 ** 20;

type Kind = 'hit-json' | 'hit-stream' | 'miss-json' | 'miss-stream' | 'embedding' | 'abort-stream' | 'bad-json' | 'close';

/** Shares of the mix, in per mille. */
const MIX: ReadonlyArray<[Kind, number]> = [
  ['hit-json', 330],
  ['hit-stream', 170],
  ['miss-json', 200],
  ['miss-stream', 140],
  ['embedding', 100],
  ['abort-stream', 20],
  ['bad-json', 20],
  ['close', 20],
];

export interface SoakContext {
  options: BenchOptions;
  fake: FakeUpstreamProcess;
  /** The compiled gateway (undefined: through tsx). */
  compiledMain: string | undefined;
  /** A Redis for the Redis gateway; undefined when redis-server is not installed. */
  redisUrl: string | undefined;
  progress(message: string): void;
}

interface MemorySample {
  at: number;
  rss: number;
  heapUsed: number;
  /** What V8 has reserved for its heap (used or not), and Buffers' memory outside it. */
  heapTotal: number;
  external: number;
  metricsRss: number;
}

interface Tally {
  ok: number;
  unexpected: number;
  aborted: number;
  latenciesMs: number[];
  xCache: Record<string, number>;
  firstUnexpected: string[];
}

interface Soaked {
  name: string;
  title: string;
  gateway: GatewayProcess;
  samples: MemorySample[];
  tally: Tally;
  soakStartedAt: number;
}

let uniqueCounter = 0;
const runTag = Date.now().toString(36);

function random(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state / 0x1_0000_0000;
  };
}

function pick(roll: number): Kind {
  let edge = 0;
  for (const [kind, share] of MIX) {
    edge += share / 1000;
    if (roll < edge) return kind;
  }
  return 'hit-json';
}

/** One request of `kind`; counts it. Never throws. */
async function send(pool: Pool, kind: Kind, next: () => number, tally: Tally): Promise<void> {
  const unique = (): string => `soak-${runTag}-${++uniqueCounter}`;
  const hot = (size: number): string => `soak-hot-${Math.floor(next() * size)}`;
  let path = CHAT_PATH;
  let body: string;
  const headers: Record<string, string> = { ...CLIENT_HEADERS, 'content-type': 'application/json' };
  switch (kind) {
    case 'hit-json':
    case 'close':
      body = JSON.stringify(chatBody({ tag: hot(HOT_CHATS) }));
      if (kind === 'close') headers.connection = 'close';
      break;
    case 'hit-stream':
      body = JSON.stringify(chatBody({ tag: hot(HOT_CHATS), stream: true }));
      break;
    case 'miss-json':
      body = JSON.stringify(chatBody({ tag: unique() }));
      break;
    case 'miss-stream':
    case 'abort-stream':
      body = JSON.stringify(chatBody({ tag: unique(), stream: true, includeUsage: next() < 0.5 }));
      break;
    case 'embedding':
      path = '/v1/embeddings';
      body = JSON.stringify(embeddingBody(next() < 0.5 ? hot(HOT_EMBEDDINGS) : unique()));
      break;
    case 'bad-json':
      body = '{"model":"gpt-4o-mini","messages":[';
      break;
  }
  const expected = kind === 'bad-json' ? 400 : 200;
  const started = performance.now();
  const abort = new AbortController();
  try {
    const response = await pool.request({ method: 'POST', path, headers, body, signal: abort.signal });
    const cache = response.headers['x-cache'];
    if (typeof cache === 'string') tally.xCache[cache] = (tally.xCache[cache] ?? 0) + 1;
    let text = '';
    for await (const chunk of response.body) {
      if (kind === 'abort-stream') {
        // A client that leaves after the first bytes: the gateway must let go of everything it held for it.
        abort.abort();
        break;
      }
      text += (chunk as Buffer).toString('utf8');
    }
    if (kind === 'abort-stream') {
      tally.aborted++;
      return;
    }
    const complete = !body.includes('"stream":true') || text.endsWith('data: [DONE]\n\n');
    if (response.statusCode === expected && complete) {
      tally.ok++;
      tally.latenciesMs.push(performance.now() - started);
    } else {
      tally.unexpected++;
      if (tally.firstUnexpected.length < 5) tally.firstUnexpected.push(`${kind}: ${response.statusCode} ${text.slice(0, 160)}`);
    }
  } catch (error) {
    if (kind === 'abort-stream' && abort.signal.aborted) {
      tally.aborted++;
      return;
    }
    tally.unexpected++;
    if (tally.firstUnexpected.length < 5) tally.firstUnexpected.push(`${kind}: ${error instanceof Error ? error.message : String(error)}`);
  }
}

/** `CLIENTS` clients sending `choose()`n requests until `deadline` (or `stop()`). */
async function drive(
  url: string,
  seed: number,
  deadline: number,
  choose: (roll: number) => Kind,
  tally: Tally,
  stop: () => boolean = () => false,
): Promise<void> {
  const pool = new Pool(url, { connections: CLIENTS, headersTimeout: 10_000, bodyTimeout: 10_000 });
  try {
    await Promise.all(
      Array.from({ length: CLIENTS }, async (_, client) => {
        const next = random(seed * 31 + client + 1);
        while (performance.now() < deadline && !stop()) await send(pool, choose(next()), next, tally);
      }),
    );
  } finally {
    await pool.close();
  }
}

async function sampleMemory(gateway: GatewayProcess): Promise<MemorySample> {
  const rss = rssBytes(gateway.managed.pid);
  const metrics = await gateway.metrics();
  return {
    at: performance.now(),
    rss,
    heapUsed: metricSum(metrics, 'nodejs_heap_size_used_bytes'),
    heapTotal: metricSum(metrics, 'nodejs_heap_size_total_bytes'),
    external: metricSum(metrics, 'nodejs_external_memory_bytes'),
    metricsRss: metricSum(metrics, 'process_resident_memory_bytes'),
  };
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
};
const mb = (bytes: number): number => bytes / 2 ** 20;

/** Unique misses enough to fill the embedded cache past its bound (the MemoryStore's own arithmetic). */
async function fillCount(fake: FakeUpstreamProcess): Promise<number> {
  const response = await fetch(`${fake.url}${CHAT_PATH}`, {
    method: 'POST',
    headers: { ...CLIENT_HEADERS, 'content-type': 'application/json' },
    body: JSON.stringify(chatBody({ tag: 'soak-size' })),
  });
  const body = Buffer.from(await response.text());
  const entry = encodeEntry({ storedAt: Date.now(), form: 'json', endpoint: 'chat.completions', provider: 'openai', model: CHAT_MODEL, body });
  const perEntry = memoryStoreEntrySize(cacheKey({ provider: 'openai', endpoint: 'chat.completions', body: {} }), entry);
  return Math.ceil((1.5 * SOAK_CACHE_MAX_BYTES) / perEntry);
}

function window(samples: MemorySample[], from: number, to: number): MemorySample[] {
  return samples.filter((sample) => sample.at >= from && sample.at <= to);
}

/** Ten points across the soak, for the trend in the details (MB). */
function trend(samples: MemorySample[], from: number, pick: (sample: MemorySample) => number): string {
  const during = samples.filter((sample) => sample.at >= from);
  if (during.length === 0) return '';
  const points: string[] = [];
  for (let i = 0; i < 10; i++) points.push(mb(pick(during[Math.floor((i * (during.length - 1)) / 9)]!)).toFixed(1));
  return points.join(' ');
}

function result(soaked: Soaked, windowSeconds: number, soakSeconds: number): ScenarioResult {
  const { samples, tally } = soaked;
  const end = samples.at(-1)?.at ?? performance.now();
  const before = window(samples, soaked.soakStartedAt - windowSeconds * 1000, soaked.soakStartedAt);
  const after = window(samples, end - windowSeconds * 1000, end);
  // A leak grows as fast in the second half as in the first; memory settling down does not.
  const middle = (soaked.soakStartedAt + end) / 2;
  const halfway = window(samples, middle - (windowSeconds * 1000) / 2, middle + (windowSeconds * 1000) / 2);
  const rssBefore = median(before.map((s) => s.rss));
  const rssAfter = median(after.map((s) => s.rss));
  // The heap's floor over a window: V8's young generation makes "used" a sawtooth (up to the
  // semi-spaces' size between two samples); what survives collections is its lower edge.
  const heapBefore = Math.min(...before.map((s) => s.heapUsed));
  const heapAfter = Math.min(...after.map((s) => s.heapUsed));
  const rssOk = rssAfter <= rssBefore * (1 + RSS_MARGIN);
  const heapOk = heapAfter <= heapBefore + HEAP_MARGIN_BYTES;
  const pass = rssOk && heapOk && tally.unexpected === 0 && before.length > 0 && after.length > 0;
  const latencies = summarize(tally.latenciesMs);
  const requests = tally.ok + tally.unexpected + tally.aborted;
  const notes: string[] = [];
  if (!rssOk) notes.push(`RSS grew ${mb(rssAfter - rssBefore).toFixed(1)} MB (> ${RSS_MARGIN * 100}%)`);
  if (!heapOk) notes.push(`heap floor grew ${mb(heapAfter - heapBefore).toFixed(1)} MB (> ${mb(HEAP_MARGIN_BYTES)} MB)`);
  if (tally.unexpected > 0) notes.push(`${tally.unexpected} unexpected answers, e.g. ${tally.firstUnexpected.join(' | ')}`);
  return {
    id: soaked.name,
    title: soaked.title,
    server: `gateway-${soaked.name}`,
    connections: CLIENTS,
    requests,
    seconds: soakSeconds,
    requestsPerSecond: requests / soakSeconds,
    p50Ms: latencies.p50Ms,
    p99Ms: latencies.p99Ms,
    errors: tally.unexpected,
    peakRssMb: mb(Math.max(...samples.filter((s) => s.at >= soaked.soakStartedAt).map((s) => s.rss))),
    details: {
      pass,
      rssBeforeMb: mb(rssBefore),
      rssAfterMb: mb(rssAfter),
      rssGrowthMb: mb(rssAfter - rssBefore),
      rssSecondHalfGrowthMb: mb(rssAfter - median(halfway.map((s) => s.rss))),
      heapFloorBeforeMb: mb(heapBefore),
      heapFloorAfterMb: mb(heapAfter),
      heapGrowthMb: mb(heapAfter - heapBefore),
      heapSecondHalfGrowthMb: mb(heapAfter - Math.min(...halfway.map((s) => s.heapUsed))),
      heapMedianBeforeMb: mb(median(before.map((s) => s.heapUsed))),
      heapMedianAfterMb: mb(median(after.map((s) => s.heapUsed))),
      heapTotalBeforeMb: mb(median(before.map((s) => s.heapTotal))),
      heapTotalAfterMb: mb(median(after.map((s) => s.heapTotal))),
      externalBeforeMb: mb(median(before.map((s) => s.external))),
      externalAfterMb: mb(median(after.map((s) => s.external))),
      metricsRssBeforeMb: mb(median(before.map((s) => s.metricsRss))),
      metricsRssAfterMb: mb(median(after.map((s) => s.metricsRss))),
      rssTrendMb: trend(samples, soaked.soakStartedAt, (s) => s.rss),
      heapTrendMb: trend(samples, soaked.soakStartedAt, (s) => s.heapUsed),
      heapTotalTrendMb: trend(samples, soaked.soakStartedAt, (s) => s.heapTotal),
      aborted: tally.aborted,
      xCache: Object.entries(tally.xCache)
        .map(([name, count]) => `${name}:${count}`)
        .join(' '),
    },
    notes,
  };
}

export async function soak(context: SoakContext): Promise<ScenarioResult[]> {
  const { options, fake, progress } = context;
  // Streams paced like a provider's (the first token after a few ms, then a steady rate), JSON instantly.
  await fake.configure({ delayMs: 2, tokensPerSecond: 4_000 });
  const common = { upstreamUrl: fake.url, logLevel: 'warn', compiledMain: context.compiledMain, nodeFlags: options.gatewayNodeFlags };
  const gateways: Soaked[] = [];
  const newTally = (): Tally => ({ ok: 0, unexpected: 0, aborted: 0, latenciesMs: [], xCache: {}, firstUnexpected: [] });
  const embedded = await startGateway({ ...common, name: 'gateway-soak-memory', env: { CACHE_MAX_BYTES: String(SOAK_CACHE_MAX_BYTES) } });
  gateways.push({
    name: 'soak-memory',
    title: `soak, embedded (CACHE_MAX_BYTES ${mb(SOAK_CACHE_MAX_BYTES)} MiB)`,
    gateway: embedded,
    samples: [],
    tally: newTally(),
    soakStartedAt: 0,
  });
  if (context.redisUrl) {
    const redis = await startGateway({ ...common, name: 'gateway-soak-redis', redisUrl: context.redisUrl });
    gateways.push({ name: 'soak-redis', title: 'soak, Redis', gateway: redis, samples: [], tally: newTally(), soakStartedAt: 0 });
  }

  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      for (const soaked of gateways) soaked.samples.push(await sampleMemory(soaked.gateway));
      await new Promise((resolve) => setTimeout(resolve, 1_000));
    }
  })();
  try {
    // The warm-up is the soak's own mix, for at least SOAK_WARMUP_SECONDS and until the embedded
    // cache has taken in half again its bound in misses (so it evicts as much as it stores).
    const fill = await fillCount(fake);
    const warmupStart = performance.now();
    const warmedUp = gateways.map(() => newTally());
    const embeddedMisses = (): number => warmedUp[0]!.xCache['MISS'] ?? 0;
    const done = (): boolean => performance.now() >= warmupStart + options.soakWarmupSeconds * 1000 && embeddedMisses() >= fill;
    progress(
      `soak: warm-up (at least ${options.soakWarmupSeconds} s and ${fill} misses), then ${options.soakSeconds} s measured, ${CLIENTS} clients per gateway`,
    );
    await Promise.all(
      gateways.map((soaked, index) =>
        drive(soaked.gateway.url, 2000 + index, warmupStart + options.soakWarmupSeconds * 1000 + WARMUP_CAP_MS, pick, warmedUp[index]!, done),
      ),
    );
    progress(`soak: warmed up in ${((performance.now() - warmupStart) / 1000).toFixed(0)} s (${embeddedMisses()} misses to the embedded gateway)`);
    const soakStart = performance.now();
    for (const soaked of gateways) soaked.soakStartedAt = soakStart;
    const report = setInterval(() => {
      const line = gateways.map((s) => {
        const last = s.samples.at(-1);
        return `${s.name} RSS ${mb(last?.rss ?? 0).toFixed(1)} MB, heap ${mb(last?.heapUsed ?? 0).toFixed(1)} of ${mb(last?.heapTotal ?? 0).toFixed(1)} MB, external ${mb(last?.external ?? 0).toFixed(1)} MB, ${s.tally.ok} ok`;
      });
      progress(`soak ${((performance.now() - soakStart) / 1000).toFixed(0)} s: ${line.join('; ')}`);
    }, 30_000);
    try {
      await Promise.all(gateways.map((soaked, index) => drive(soaked.gateway.url, 3000 + index, soakStart + options.soakSeconds * 1000, pick, soaked.tally)));
    } finally {
      clearInterval(report);
    }
  } finally {
    sampling = false;
    await sampler;
    await Promise.all(gateways.map((soaked) => soaked.gateway.managed.stop()));
  }
  // Compared over the same span before and after: a few seconds, a quarter of a short soak.
  const windowSeconds = Math.min(10, Math.max(3, options.soakSeconds / 4));
  return gateways.map((soaked) => result(soaked, windowSeconds, options.soakSeconds));
}
