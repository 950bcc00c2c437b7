/**
 * How each kind of scenario is measured: a throughput run (autocannon), a concurrency-1 run
 * (latency added), a coalescing storm and a replayed mixed workload. Each returns one row.
 */
import { Pool } from 'undici';
import { runLoad, runSequential, summarize, timedPost, type TimedResponse } from './load.js';
import type { BenchOptions } from './options.js';
import { UsageMeter } from './proc-stats.js';
import type { ScenarioResult } from './results.js';
import { metricSum, type FakeUpstreamProcess, type GatewayProcess } from './services.js';
import { chatBody, mixedWorkload } from './workload.js';

export const CHAT_PATH = '/v1/chat/completions';
/** Open WebUI sends its key on every request; every target gets the same headers. */
export const CLIENT_HEADERS = { authorization: 'Bearer sk-bench-client' };

let uniqueCounter = 0;
/** Tags this run's bodies, so a Redis that outlived an earlier run holds none of them. */
export const runTag = Date.now().toString(36);

/** A body no earlier request had: a guaranteed cache miss. */
export function uniqueChatBody(stream = false): string {
  return JSON.stringify(chatBody({ tag: `${runTag}-${++uniqueCounter}`, stream }));
}

export interface Target {
  url: string;
  /** The processes measured as "the server". */
  pids(): number[];
  /** The processes behind it (upstream, redis), measured separately. */
  helperPids?(): number[];
}

export interface RowSpec {
  id: string;
  title: string;
  server: string;
}

/** Counts read around each measured slice (gateway metrics, upstream calls), summed over slices. */
export interface SliceCheck {
  before(): Promise<void>;
  after(): Promise<Record<string, number>>;
}

/** One row of an interleaved comparison. */
export interface Contender {
  spec: RowSpec;
  target: Target;
  /** A fixed body, or one per request (unique: cache misses). */
  body: string | (() => string);
  check?: SliceCheck;
}

interface Tally {
  latenciesMs: number[];
  firstBytesMs: number[];
  seconds: number;
  errors: number;
  cpuSeconds: number;
  helperCpuSeconds: number;
  peakRssBytes: number;
  roundRates: number[];
  counts: Record<string, number>;
}

const newTally = (): Tally => ({
  latenciesMs: [],
  firstBytesMs: [],
  seconds: 0,
  errors: 0,
  cpuSeconds: 0,
  helperCpuSeconds: 0,
  peakRssBytes: 0,
  roundRates: [],
  counts: {},
});

function usagePerRequest(cpuSeconds: number, requests: number): number | undefined {
  return requests > 0 ? (cpuSeconds * 1e6) / requests : undefined;
}

type Slice = (contender: Contender, seconds: number) => Promise<{ latenciesMs: number[]; firstBytesMs?: number[]; seconds: number; errors: number }>;

/**
 * The heart of the comparisons: every contender runs in `rounds` slices, in a rotating order, so a
 * change in background load (two cores, shared with the load generator and whatever else runs)
 * falls on all of them alike and the ratios within a run stay meaningful. Each contender is warmed
 * up first (JIT, connection pools); its share of the time is `seconds` in total.
 */
async function interleave(
  contenders: Contender[],
  connections: number,
  seconds: number,
  warmupSeconds: number,
  rounds: number,
  slice: Slice,
): Promise<ScenarioResult[]> {
  const tallies = contenders.map(newTally);
  if (warmupSeconds > 0) for (const contender of contenders) await slice(contender, warmupSeconds);
  for (let round = 0; round < rounds; round++) {
    for (let turn = 0; turn < contenders.length; turn++) {
      const index = (turn + round) % contenders.length;
      const contender = contenders[index]!;
      const tally = tallies[index]!;
      await contender.check?.before();
      const meter = new UsageMeter(contender.target.pids());
      const helpers = contender.target.helperPids ? new UsageMeter(contender.target.helperPids()) : undefined;
      const result = await slice(contender, seconds / rounds);
      const usage = meter.stop();
      tally.helperCpuSeconds += helpers?.stop().cpuSeconds ?? 0;
      for (const [name, value] of Object.entries((await contender.check?.after()) ?? {})) tally.counts[name] = (tally.counts[name] ?? 0) + value;
      for (const value of result.latenciesMs) tally.latenciesMs.push(value);
      for (const value of result.firstBytesMs ?? []) tally.firstBytesMs.push(value);
      tally.seconds += result.seconds;
      tally.errors += result.errors;
      tally.cpuSeconds += usage.cpuSeconds;
      tally.peakRssBytes = Math.max(tally.peakRssBytes, usage.peakRssBytes);
      tally.roundRates.push(result.latenciesMs.length / result.seconds);
    }
  }
  return contenders.map((contender, index) => {
    const tally = tallies[index]!;
    const total = summarize(tally.latenciesMs);
    const firstByte = tally.firstBytesMs.length > 0 ? summarize(tally.firstBytesMs) : undefined;
    const requests = tally.latenciesMs.length;
    const details: Record<string, number | string | boolean> = { rounds: tally.roundRates.map((rate) => rate.toFixed(0)).join('/') };
    for (const [name, value] of Object.entries(tally.counts)) details[name] = requests ? value / requests : 0;
    if (connections === 1) details.meanMs = total.meanMs;
    return {
      ...contender.spec,
      connections,
      requests,
      seconds: tally.seconds,
      requestsPerSecond: requests / tally.seconds,
      p50Ms: total.p50Ms,
      p99Ms: total.p99Ms,
      ...(firstByte ? { firstByteP50Ms: firstByte.p50Ms, firstByteP99Ms: firstByte.p99Ms } : {}),
      errors: tally.errors,
      cpuMicrosPerRequest: usagePerRequest(tally.cpuSeconds, requests),
      helperCpuMicrosPerRequest: contender.target.helperPids ? usagePerRequest(tally.helperCpuSeconds, requests) : undefined,
      peakRssMb: tally.peakRssBytes / 2 ** 20,
      details,
    };
  });
}

/** Throughput at `options.connections` (autocannon), interleaved. */
export function compareThroughput(contenders: Contender[], options: BenchOptions): Promise<ScenarioResult[]> {
  return interleave(contenders, options.connections, options.durationSeconds, options.warmupSeconds, options.rounds, async (contender, seconds) => {
    const run = await runLoad({
      url: contender.target.url,
      path: CHAT_PATH,
      connections: options.connections,
      seconds,
      body: contender.body,
      headers: CLIENT_HEADERS,
    });
    return { latenciesMs: run.latenciesMs, seconds: run.seconds, errors: run.errors + run.non2xx };
  });
}

/** Concurrency 1, one request after another (latency, and time to first byte of streams), interleaved; half the time of a throughput run. */
export function compareSequential(contenders: Contender[], options: BenchOptions): Promise<ScenarioResult[]> {
  const bodyOf = (contender: Contender) => (typeof contender.body === 'string' ? () => contender.body as string : contender.body);
  return interleave(contenders, 1, Math.max(1, options.durationSeconds / 2), Math.min(1, options.warmupSeconds), options.rounds, async (contender, seconds) => {
    const run = await runSequential(contender.target.url, CHAT_PATH, seconds, bodyOf(contender), CLIENT_HEADERS);
    return { latenciesMs: run.totalsMs, firstBytesMs: run.firstBytesMs, seconds: run.seconds, errors: run.errors };
  });
}

export const upstreamCalls = async (fake: FakeUpstreamProcess): Promise<number> => {
  const stats = await fake.stats();
  return stats.chat + stats.chatStreams + stats.embeddings;
};

export type StormForm = 'json' | 'stream';

/**
 * One storm: `size` identical requests (body tagged `tag`) over `pool`, against an upstream slow
 * enough for every request to arrive while the first is in flight. JSON: all at once; streams:
 * in two waves, the second 250 ms after the first, while the answer streams (late joiners must
 * get it from the first byte): 100 ms to the first token, then `streamTokensPerSecond` (400: the
 * answer's 120 tokens last ~300 ms). Counts the upstream calls it caused with the fake upstream's
 * own counter.
 */
export async function stormOnce(
  pool: Pool,
  fake: FakeUpstreamProcess,
  form: StormForm,
  size: number,
  tag: string,
  streamTokensPerSecond = 400,
): Promise<{ responses: TimedResponse[]; upstreamCallsMade: number }> {
  await fake.configure(form === 'json' ? { delayMs: 300, tokensPerSecond: 0 } : { delayMs: 100, tokensPerSecond: streamTokensPerSecond });
  const body = JSON.stringify(chatBody({ tag, stream: form === 'stream' }));
  const before = await upstreamCalls(fake);
  const fire = (count: number) => Array.from({ length: count }, () => timedPost(pool, CHAT_PATH, body, CLIENT_HEADERS));
  const firstWave = fire(form === 'json' ? size : Math.ceil(size / 2));
  const secondWave = form === 'json' ? [] : await new Promise<ReturnType<typeof fire>>((resolve) => setTimeout(() => resolve(fire(Math.floor(size / 2))), 250));
  const responses = await Promise.all([...firstWave, ...secondWave]);
  return { responses, upstreamCallsMade: (await upstreamCalls(fake)) - before };
}

/**
 * N identical requests at once (JSON), then N identical stream requests in two waves, the second
 * while the first answer is already streaming (late joiners must get it from the first byte).
 * Exactly one upstream call each is the target.
 */
export async function storm(gateway: GatewayProcess, fake: FakeUpstreamProcess, options: BenchOptions): Promise<ScenarioResult> {
  const size = options.stormSize;
  const pool = new Pool(gateway.url, { connections: size });
  const details: Record<string, number | string | boolean> = { size };
  const notes: string[] = [];
  let answered = 0;
  let errors = 0;
  const latencies: number[] = [];
  const started = performance.now();
  try {
    for (const form of ['json', 'stream'] as const) {
      const { responses, upstreamCallsMade } = await stormOnce(pool, fake, form, size, `storm-${runTag}-${form}`);
      details[`${form}UpstreamCalls`] = upstreamCallsMade;
      const outcomes: Record<string, number> = {};
      for (const response of responses) {
        const cache = String(response.headers['x-cache'] ?? 'none');
        outcomes[cache] = (outcomes[cache] ?? 0) + 1;
        if (response.status === 200) answered++;
        else errors++;
        latencies.push(response.totalMs);
      }
      details[`${form}XCache`] = Object.entries(outcomes)
        .map(([k, v]) => `${k}:${v}`)
        .join(' ');
      const distinctBodies = new Set(responses.map((response) => response.body)).size;
      details[`${form}DistinctAnswers`] = distinctBodies;
      if (distinctBodies !== 1) notes.push(`${form}: ${distinctBodies} different answers for identical requests`);
    }
  } finally {
    await pool.close();
  }
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return {
    id: 'storm',
    title: `8 coalescing storm: ${size} identical (JSON; stream in 2 waves)`,
    server: 'gateway (Redis)',
    connections: size,
    requests: answered,
    seconds,
    requestsPerSecond: answered / seconds,
    p50Ms: latencies[Math.floor(latencies.length / 2)] ?? 0,
    p99Ms: latencies[Math.floor(latencies.length * 0.99)] ?? 0,
    errors,
    details,
    notes,
  };
}

/**
 * Scenario 9: a trace in which a share of requests repeat earlier ones, replayed at 16 concurrent
 * clients against the gateway. Compares the share answered without an upstream call with the
 * best any cache could do on this trace, and the cost saved with the cost a perfect cache saves.
 */
export async function mixed(gateway: GatewayProcess, fake: FakeUpstreamProcess, options: BenchOptions): Promise<ScenarioResult> {
  const workload = mixedWorkload(options.mixedRequests, options.repeatShare);
  await fake.configure({ delayMs: 20, tokensPerSecond: options.tokensPerSecond });
  const concurrency = 16;
  const pool = new Pool(gateway.url, { connections: concurrency });
  const metricsBefore = await gateway.metrics();
  const callsBefore = await upstreamCalls(fake);
  const deadline = performance.now() + options.durationSeconds * 1000;
  const started = performance.now();
  const outcomes: Record<string, number> = {};
  const answeredByModel: Record<string, { count: number; repeats: number }> = {};
  const latencies: number[] = [];
  let next = 0;
  let repeatsAnswered = 0;
  let errors = 0;
  const worker = async (): Promise<void> => {
    while (next < workload.requests.length && performance.now() < deadline) {
      const request = workload.requests[next++]!;
      const path = request.kind === 'embedding' ? '/v1/embeddings' : CHAT_PATH;
      const response = await timedPost(pool, path, request.body, CLIENT_HEADERS);
      if (response.status !== 200) {
        errors++;
        continue;
      }
      latencies.push(response.totalMs);
      const cache = String(response.headers['x-cache'] ?? 'none');
      outcomes[cache] = (outcomes[cache] ?? 0) + 1;
      const model = request.kind === 'embedding' ? 'text-embedding-3-small' : 'gpt-4o-mini';
      const tally = (answeredByModel[model] ??= { count: 0, repeats: 0 });
      tally.count++;
      if (request.repeat) {
        tally.repeats++;
        repeatsAnswered++;
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: concurrency }, worker));
  } finally {
    await pool.close();
  }
  const seconds = (performance.now() - started) / 1000;
  // Counters settle when a response ends; give the last onResponse hooks a moment.
  await new Promise((resolve) => setTimeout(resolve, 200));
  const metricsAfter = await gateway.metrics();
  const answered = latencies.length;
  const hits = outcomes.HIT ?? 0;
  const coalesced = outcomes.COALESCED ?? 0;
  let spent = 0;
  let saved = 0;
  let bestSaved = 0;
  for (const [model, tally] of Object.entries(answeredByModel)) {
    const delta = (name: string): number => metricSum(metricsAfter, name, { model }) - metricSum(metricsBefore, name, { model });
    const modelSpent = delta('gateway_cost_usd_total');
    const modelSaved = delta('gateway_cost_saved_usd_total');
    spent += modelSpent;
    saved += modelSaved;
    // Every request of one model costs the same here, so a perfect cache saves exactly its repeats.
    bestSaved += ((modelSpent + modelSaved) / tally.count) * tally.repeats;
  }
  latencies.sort((a, b) => a - b);
  return {
    id: 'mixed',
    title: `9 mixed replay: ${Math.round(options.repeatShare * 100)}% repeats, chat/stream/embeddings`,
    server: 'gateway (Redis)',
    connections: concurrency,
    requests: answered,
    seconds,
    requestsPerSecond: answered / seconds,
    p50Ms: latencies[Math.floor(answered / 2)] ?? 0,
    p99Ms: latencies[Math.floor(answered * 0.99)] ?? 0,
    errors,
    details: {
      traceRequests: workload.requests.length,
      answered,
      hitRatio: answered ? hits / answered : 0,
      servedWithoutUpstream: answered ? (hits + coalesced) / answered : 0,
      bestPossible: answered ? repeatsAnswered / answered : 0,
      upstreamCalls: (await upstreamCalls(fake)) - callsBefore,
      xCache: Object.entries(outcomes)
        .map(([k, v]) => `${k}:${v}`)
        .join(' '),
      costSpentUsd: spent,
      costSavedUsd: saved,
      bestCostSavedUsd: bestSaved,
    },
  };
}
