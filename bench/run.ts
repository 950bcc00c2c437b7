/**
 * `npm run bench`: starts the fake upstream, the references (bare Fastify, Nginx proxy_cache) and
 * the gateway (Redis, embedded), each in its own process, drives them with autocannon on loopback,
 * prints the table and writes bench/results/<timestamp>.json. Everything it starts is stopped at the
 * end, on an error and on Ctrl-C. Knobs: see bench/options.ts and bench/README.md.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { Client } from 'undici';
import { encodeEntry } from '../src/cache/entry.js';
import { cacheKey } from '../src/cache/key.js';
import { memoryStoreEntrySize } from '../src/cache/memory-store.js';
import { timedPost, type TimedResponse } from './load.js';
import { nginxBinary, startNginx, type RunningNginx } from './nginx.js';
import { loadOptions, type BenchOptions } from './options.js';
import { freePort, killAllNow, stopAll, type Managed } from './processes.js';
import { replicaContenders, replicaStorms, startReplicaStack, wantedReplicaRows, wantsAnyReplicaRow, type ReplicaStack } from './replicas.js';
import { checkTargets, formatTables, type BenchRun, type Machine, type ScenarioResult } from './results.js';
import { soak } from './soak.js';
import {
  CHAT_PATH,
  CLIENT_HEADERS,
  compareSequential,
  compareThroughput,
  mixed,
  storm,
  upstreamCalls,
  uniqueChatBody,
  type Contender,
  type SliceCheck,
  type Target,
} from './scenarios.js';
import {
  baselineSource,
  buildGateway,
  metricSum,
  REPO_ROOT,
  startConstantServer,
  startFakeUpstream,
  startGateway,
  startNaive,
  startRedisServer,
  type FakeUpstreamProcess,
  type GatewayProcess,
  type RedisProcess,
} from './services.js';
import { chatBody, CHAT_MODEL } from './workload.js';

const results: ScenarioResult[] = [];
const skipped: string[] = [];

function progress(message: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

async function post(url: string, body: string): Promise<TimedResponse> {
  const client = new Client(url);
  try {
    return await timedPost(client, CHAT_PATH, body, CLIENT_HEADERS);
  } finally {
    await client.close();
  }
}

/** Sends `body` until the gateway answers it from the cache (the store is written after the answer). */
async function primeHit(url: string, body: string): Promise<void> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const response = await post(url, body);
    if (response.status !== 200) throw new Error(`priming ${url} failed: ${response.status} ${response.body.slice(0, 200)}`);
    if (response.headers['x-cache'] === 'HIT') return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`${url} never answered from its cache`);
}

function report(result: ScenarioResult): void {
  progress(
    `${result.id}: ${result.requestsPerSecond.toFixed(0)} req/s, p50 ${result.p50Ms.toFixed(2)} ms, p99 ${result.p99Ms.toFixed(2)} ms, ${result.errors} errors`,
  );
  if (result.errors > 0) (result.notes ??= []).push(`${result.errors} failed requests`);
  results.push(result);
}

function gatewayTarget(gateway: GatewayProcess, helpers: () => number[]): Target {
  return { url: gateway.url, pids: () => [gateway.managed.pid], helperPids: helpers };
}

/** Metric deltas around each measured slice: proves a hit run hit and a miss run missed. */
function cacheCheck(gateway: GatewayProcess, fake: FakeUpstreamProcess): SliceCheck {
  let before = '';
  let callsBefore = 0;
  return {
    async before() {
      before = await gateway.metrics();
      callsBefore = await upstreamCalls(fake);
    },
    async after() {
      const after = await gateway.metrics();
      const delta = (name: string): number => metricSum(after, name) - metricSum(before, name);
      return {
        hitShare: delta('gateway_cache_hits_total'),
        missShare: delta('gateway_cache_misses_total'),
        upstreamCallsPerRequest: (await upstreamCalls(fake)) - callsBefore,
      };
    },
  };
}

function upstreamCheck(fake: FakeUpstreamProcess): SliceCheck {
  let callsBefore = 0;
  return {
    async before() {
      callsBefore = await upstreamCalls(fake);
    },
    async after() {
      return { upstreamCallsPerRequest: (await upstreamCalls(fake)) - callsBefore };
    },
  };
}

/** What the embedded cache holds after `misses` stored answers like `answer` (the MemoryStore's own arithmetic). */
function heldBytesEstimate(answer: string, misses: number): number {
  const body = Buffer.from(answer);
  const parsed = JSON.parse(answer) as { usage?: { prompt_tokens: number; total_tokens: number } };
  const entry = encodeEntry({
    storedAt: Date.now(),
    form: 'json',
    endpoint: 'chat.completions',
    provider: 'openai',
    model: CHAT_MODEL,
    body,
    ...(parsed.usage ? { usage: parsed.usage } : {}),
  });
  const key = cacheKey({ provider: 'openai', endpoint: 'chat.completions', body: {} });
  return misses * memoryStoreEntrySize(key, entry);
}

interface Stack {
  fake: FakeUpstreamProcess;
  constant: { managed: Managed; url: string } | undefined;
  naiveProxy: { managed: Managed; url: string } | undefined;
  naiveRedisHit: { managed: Managed; url: string } | undefined;
  nginx: RunningNginx | undefined;
  redis: RedisProcess | undefined;
  /** Gateways by name: redis, memory (hits), memory-miss, memory-info. */
  gateways: Map<string, GatewayProcess>;
  /** The compiled gateway entry (undefined: run through tsx). */
  compiledMain: string | undefined;
  /** Two replicas on one Redis behind Nginx (scenario 10). */
  replicas: ReplicaStack | undefined;
}

/**
 * Every server at once (idle ones cost nothing), so each comparison can interleave its contenders.
 * Each gateway scenario gets its own process: the RSS of a row is that scenario's.
 */
async function startStack(
  options: BenchOptions,
  tmp: string,
  profileDir: string | undefined,
  answer: (fake: FakeUpstreamProcess) => Promise<string>,
): Promise<Stack> {
  const wants = (...ids: string[]): boolean => !options.only || ids.some((id) => options.only!.has(id));
  let compiledMain: string | undefined;
  if (!options.gatewayThroughTsx) {
    progress('compiling the gateway (tsc -p tsconfig.build.json → bench/.build/)');
    compiledMain = buildGateway();
  }
  progress('starting the fake upstream, references, redis-server and gateways');
  const fake = await startFakeUpstream({ delayMs: options.upstreamDelayMs, tokensPerSecond: 0, answerTokens: options.answerTokens });
  const stack: Stack = {
    fake,
    constant: undefined,
    naiveProxy: undefined,
    naiveRedisHit: undefined,
    nginx: undefined,
    redis: undefined,
    gateways: new Map(),
    compiledMain,
    replicas: undefined,
  };
  if (wants('constant', 'hit-redis', 'hit-memory', 'nginx')) stack.constant = await startConstantServer(tmp, await answer(fake));
  if (wants('naive-proxy', 'naive-proxy-c1', 'stream-naive')) stack.naiveProxy = await startNaive('proxy', { upstreamUrl: fake.url });
  if (wants('nginx')) {
    const binary = nginxBinary();
    if (binary) stack.nginx = await startNginx(binary, join(tmp, 'nginx'), await freePort(), fake.port);
    else skipped.push('nginx: not installed, scenario 3 skipped (apt-get install nginx)');
  }
  let baselineMain: string | undefined;
  if (options.baseline) {
    progress(`compiling the baseline gateway (${options.baseline})`);
    baselineMain = buildGateway('baseline', baselineSource(options.baseline));
  }
  const starting: Array<Promise<void>> = [];
  const gateway = (name: string, logLevel: string, redisUrl?: string): void => {
    const variants: Array<[string, string | undefined]> = [[name, compiledMain]];
    // The baseline's Redis entries live in another database: each gateway fills its own cache.
    if (baselineMain && name !== 'memory-info') variants.push([`${name}-baseline`, baselineMain]);
    for (const [variant, main] of variants) {
      const url = redisUrl && variant.endsWith('-baseline') ? `${redisUrl}/1` : redisUrl;
      const started = startGateway({
        name: `gateway-${variant}`,
        upstreamUrl: fake.url,
        logLevel,
        cpuProfDir: profileDir,
        compiledMain: main,
        nodeFlags: options.gatewayNodeFlags,
        ...(url ? { redisUrl: url } : {}),
      });
      starting.push(started.then((g) => void stack.gateways.set(variant, g)));
    }
  };
  const redisInstalled = version('redis-server', ['--version']) !== undefined;
  if (!redisInstalled) skipped.push('redis-server: not installed, the Redis scenarios (4, 5, 7, 8, 9, 10) skipped (apt-get install redis-server)');
  const replicaRows = wantsAnyReplicaRow(options.only);
  const singleRedisRows = wants('miss-redis', 'miss-redis-c1', 'hit-redis', 'stream-miss', 'stream-hit', 'storm', 'mixed', 'naive-redis-hit');
  if (redisInstalled && (singleRedisRows || replicaRows)) stack.redis = await startRedisServer(join(tmp, 'redis'));
  if (stack.redis && singleRedisRows) {
    gateway('redis', 'warn', stack.redis.url);
    // Database 2: nothing of the gateways' entries.
    if (wants('naive-redis-hit')) stack.naiveRedisHit = await startNaive('redis-hit', { redisUrl: `${stack.redis.url}/2`, answer: await answer(fake) });
  }
  if (wants('hit-memory', 'miss-memory-c1', 'stream-miss-memory')) gateway('memory', 'warn');
  if (wants('miss-memory')) gateway('memory-miss', 'warn');
  if (wants('hit-memory-info')) gateway('memory-info', 'info');
  if (replicaRows && stack.redis) {
    const binary = nginxBinary();
    const redisUrl = stack.redis.url;
    if (binary) {
      // Database 4: the replicas share their entries with each other and with nothing else.
      const startReplica = (name: string): Promise<GatewayProcess> =>
        startGateway({
          name: `gateway-${name}`,
          upstreamUrl: fake.url,
          logLevel: 'warn',
          cpuProfDir: profileDir,
          compiledMain,
          nodeFlags: options.gatewayNodeFlags,
          redisUrl: `${redisUrl}/4`,
        });
      starting.push(startReplicaStack(binary, join(tmp, 'replicas'), startReplica).then((replicas) => void (stack.replicas = replicas)));
    } else skipped.push('nginx: not installed, the replica scenarios (10) skipped (apt-get install nginx)');
  }
  await Promise.all(starting);
  return stack;
}

async function runScenarios(options: BenchOptions, tmp: string, profileDir: string | undefined): Promise<void> {
  const wants = (...ids: string[]): boolean => !options.only || ids.some((id) => options.only!.has(id));
  const hitBody = JSON.stringify(chatBody({ tag: 'hit' }));
  const hitStreamBody = JSON.stringify(chatBody({ tag: 'hit-stream', stream: true }));
  let answer = '';
  const stack = await startStack(options, tmp, profileDir, async (fake) => (answer = (await post(fake.url, hitBody)).body));
  const { fake, gateways } = stack;
  if (!answer) answer = (await post(fake.url, hitBody)).body;
  const forThroughput = (): Promise<void> => fake.configure({ delayMs: options.upstreamDelayMs, tokensPerSecond: 0 });
  const forStreams = (): Promise<void> => fake.configure({ delayMs: options.streamDelayMs, tokensPerSecond: options.tokensPerSecond });
  const fakeTarget: Target = { url: fake.url, pids: () => [fake.managed.pid] };
  const naiveTarget = (naive: { managed: Managed; url: string }): Target => ({
    url: naive.url,
    pids: () => [naive.managed.pid],
    helperPids: () => [fake.managed.pid],
  });
  const helpers =
    (gateway: string): (() => number[]) =>
    () => [fake.managed.pid, ...(gateway.startsWith('redis') && stack.redis ? [stack.redis.managed.pid] : [])];
  const contender = (id: string, title: string, gateway: string, body: Contender['body']): Contender | undefined => {
    const process = gateways.get(gateway);
    if (!process || !wants(id)) return undefined;
    return { spec: { id, title, server: `gateway-${gateway}` }, target: gatewayTarget(process, helpers(gateway)), body, check: cacheCheck(process, fake) };
  };
  /** The row and, with BENCH_BASELINE, the same row for the baseline gateway right after it. */
  const withBaseline = (id: string, title: string, gateway: string, body: Contender['body']): Array<Contender | undefined> => {
    const baseline = gateways.get(`${gateway}-baseline`) && wants(id) ? contender(id, title, `${gateway}-baseline`, body) : undefined;
    if (baseline) baseline.spec = { ...baseline.spec, id: `${id}-baseline`, title: `${title} (baseline)` };
    return [contender(id, title, gateway, body), baseline];
  };
  const present = (list: Array<Contender | undefined>): Contender[] => list.filter((c): c is Contender => c !== undefined);

  // Scenarios 2, 3, 5, 6: the hit against its ceilings, interleaved.
  const hits = present([
    stack.constant
      ? {
          spec: { id: 'constant', title: `2 constant JSON, bare Fastify (${Buffer.byteLength(answer)} B)`, server: 'fastify' },
          target: { url: stack.constant.url, pids: () => [stack.constant!.managed.pid] },
          body: hitBody,
        }
      : undefined,
    stack.nginx
      ? {
          spec: { id: 'nginx', title: '3 Nginx proxy_cache POST hit (1 worker)', server: 'nginx' },
          target: { url: stack.nginx.url, pids: stack.nginx.pids },
          body: hitBody,
          check: upstreamCheck(fake),
        }
      : undefined,
    stack.naiveRedisHit && wants('naive-redis-hit')
      ? {
          spec: { id: 'naive-redis-hit', title: 'naive Fastify + ioredis GET (calibration)', server: 'naive' },
          target: {
            url: stack.naiveRedisHit.url,
            pids: () => [stack.naiveRedisHit!.managed.pid],
            helperPids: () => (stack.redis ? [stack.redis.managed.pid] : []),
          },
          body: hitBody,
        }
      : undefined,
    ...withBaseline('hit-redis', '5 gateway hit, Redis', 'redis', hitBody),
    ...withBaseline('hit-memory', '6 gateway hit, embedded', 'memory', hitBody),
    contender('hit-memory-info', '6 gateway hit, embedded, LOG_LEVEL=info', 'memory-info', hitBody),
  ]);
  if (hits.length > 0) {
    if (stack.nginx) await primeHit(stack.nginx.url, hitBody);
    for (const hit of hits) if (hit.spec.server.startsWith('gateway')) await primeHit(hit.target.url, hitBody);
    progress(`hits: ${hits.map((c) => c.spec.id).join(', ')} (${options.rounds} interleaved rounds)`);
    for (const result of await compareThroughput(hits, options)) report(result);
  }

  // Scenarios 1 and 4: misses against the upstream alone.
  const misses = present([
    wants('direct', 'miss-redis', 'miss-memory')
      ? { spec: { id: 'direct', title: '1 upstream direct (floor), unique bodies', server: 'fake upstream' }, target: fakeTarget, body: () => uniqueChatBody() }
      : undefined,
    stack.naiveProxy && wants('naive-proxy')
      ? {
          spec: { id: 'naive-proxy', title: 'naive Fastify + undici proxy (calibration)', server: 'naive' },
          target: naiveTarget(stack.naiveProxy),
          body: () => uniqueChatBody(),
          check: upstreamCheck(fake),
        }
      : undefined,
    ...withBaseline('miss-redis', '4 gateway miss, Redis, unique bodies', 'redis', () => uniqueChatBody()),
    ...withBaseline('miss-memory', '4 gateway miss, embedded, unique bodies', 'memory-miss', () => uniqueChatBody()),
  ]);
  if (misses.length > 0) {
    progress(`misses: ${misses.map((c) => c.spec.id).join(', ')}`);
    for (const result of await compareThroughput(misses, options)) {
      const memory = gateways.get(result.id === 'miss-memory-baseline' ? 'memory-miss-baseline' : 'memory-miss');
      if ((result.id === 'miss-memory' || result.id === 'miss-memory-baseline') && memory) {
        const stored = metricSum(await memory.metrics(), 'gateway_cache_misses_total');
        result.details = { ...result.details, storedAnswers: stored, cacheHeldMbEstimate: heldBytesEstimate(answer, stored) / 2 ** 20 };
      }
      report(result);
    }
  }

  // Latency added at concurrency 1.
  const sequentialMisses = present([
    wants('direct-c1', 'miss-redis-c1')
      ? { spec: { id: 'direct-c1', title: '1 upstream direct, concurrency 1', server: 'fake upstream' }, target: fakeTarget, body: () => uniqueChatBody() }
      : undefined,
    stack.naiveProxy && wants('naive-proxy-c1')
      ? {
          spec: { id: 'naive-proxy-c1', title: 'naive proxy, concurrency 1 (calibration)', server: 'naive' },
          target: naiveTarget(stack.naiveProxy),
          body: () => uniqueChatBody(),
        }
      : undefined,
    ...withBaseline('miss-redis-c1', '4 gateway miss, Redis, concurrency 1', 'redis', () => uniqueChatBody()),
    contender('miss-memory-c1', '4 gateway miss, embedded, concurrency 1', 'memory', () => uniqueChatBody()),
  ]);
  if (sequentialMisses.length > 0) {
    progress(`concurrency 1: ${sequentialMisses.map((c) => c.spec.id).join(', ')}`);
    for (const result of await compareSequential(sequentialMisses, options)) report(result);
  }

  // Scenario 7: streams at concurrency 1, the upstream pacing its tokens.
  const streams = present([
    wants('stream-direct', 'stream-miss')
      ? {
          spec: { id: 'stream-direct', title: '7 stream direct, concurrency 1', server: 'fake upstream' },
          target: fakeTarget,
          body: () => uniqueChatBody(true),
        }
      : undefined,
    stack.naiveProxy && wants('stream-naive')
      ? {
          spec: { id: 'stream-naive', title: '7 stream via naive proxy, concurrency 1 (calibration)', server: 'naive' },
          target: naiveTarget(stack.naiveProxy),
          body: () => uniqueChatBody(true),
        }
      : undefined,
    ...withBaseline('stream-miss', '7 stream gateway miss, Redis, concurrency 1', 'redis', () => uniqueChatBody(true)),
    contender('stream-miss-memory', '7 stream gateway miss, embedded, concurrency 1', 'memory', () => uniqueChatBody(true)),
    contender('stream-hit', '7 stream gateway hit, Redis, concurrency 1', 'redis', hitStreamBody),
  ]);
  if (streams.length > 0) {
    await forStreams();
    const redisGateway = gateways.get('redis');
    if (redisGateway && wants('stream-hit')) await primeHit(redisGateway.url, hitStreamBody);
    progress(`streams: ${streams.map((c) => c.spec.id).join(', ')}`);
    for (const result of await compareSequential(streams, options)) report(result);
    await forThroughput();
  }

  const redisGateway = gateways.get('redis');
  if (redisGateway && wants('storm')) {
    progress('storm');
    report(await storm(redisGateway, fake, options));
    await forThroughput();
  }
  if (stack.replicas && stack.redis) await replicaScenarios(stack.replicas, fake, stack.redis.managed.pid, options, hitBody, forThroughput);
  if (redisGateway && wants('mixed')) {
    progress('mixed workload');
    report(await mixed(redisGateway, fake, options));
    await forThroughput();
  }

  // Minutes long: only when asked for by name, never part of the full run.
  if (options.only?.has('soak')) {
    const redisInstalled = version('redis-server', ['--version']) !== undefined;
    const redis = redisInstalled ? (stack.redis ?? (await startRedisServer(join(tmp, 'redis-soak')))) : undefined;
    // Its own database: nothing of the other gateways' entries.
    for (const result of await soak({ options, fake, compiledMain: stack.compiledMain, redisUrl: redis ? `${redis.url}/3` : undefined, progress }))
      report(result);
    await forThroughput();
  }
}

/**
 * Scenario 10: hits and misses through Nginx in front of one replica and of two (interleaved,
 * like the single-gateway rows), then the coalescing storm split over the two replicas.
 */
async function replicaScenarios(
  replicas: ReplicaStack,
  fake: FakeUpstreamProcess,
  redisPid: number,
  options: BenchOptions,
  hitBody: string,
  forThroughput: () => Promise<void>,
): Promise<void> {
  const hitRows = wantedReplicaRows(options.only, 'hits');
  if (hitRows.length > 0) {
    for (const balancer of replicas.balancers) await primeHit(balancer.url, hitBody);
    progress(`replica hits: ${hitRows.join(', ')} (${options.rounds} interleaved rounds)`);
    for (const result of await compareThroughput(replicaContenders(replicas, hitRows, fake, redisPid, hitBody), options)) report(result);
  }
  const missRows = wantedReplicaRows(options.only, 'misses');
  if (missRows.length > 0) {
    progress(`replica misses: ${missRows.join(', ')}`);
    for (const result of await compareThroughput(
      replicaContenders(replicas, missRows, fake, redisPid, () => uniqueChatBody()),
      options,
    ))
      report(result);
  }
  const stormRows = wantedReplicaRows(options.only, 'storms');
  if (stormRows.length > 0) {
    progress(`replica storms: ${stormRows.join(', ')}`);
    for (const result of await replicaStorms(replicas, fake, options, stormRows)) report(result);
    await forThroughput();
  }
}

/** What a tool prints for its version (nginx -v writes to stderr); undefined when it is not installed. */
function version(command: string, args: string[]): string | undefined {
  const result = spawnSync(command, args, { encoding: 'utf8' });
  if (result.error || result.status !== 0) return undefined;
  return `${result.stdout}${result.stderr}`.trim() || undefined;
}

function machine(loadAtStart: number): Machine {
  const nginx = nginxBinary();
  return {
    loadAverage: { start: loadAtStart, end: loadavg()[0] ?? 0 },
    cpuModel: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memoryGb: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    os: `Linux ${release()}`,
    nginx: nginx ? version(nginx, ['-v'])?.replace(/^nginx version: /, '') : undefined,
    redis: version('redis-server', ['--version'])
      ?.split(' ')
      .find((part) => part.startsWith('v='))
      ?.slice(2),
  };
}

async function main(): Promise<void> {
  const options = loadOptions();
  const startedAt = new Date();
  const loadAtStart = loadavg()[0] ?? 0;
  const tmp = mkdtempSync(join(tmpdir(), 'cachegate-bench-'));
  // nginx's worker runs unprivileged when the driver is root: it must reach its directory.
  chmodSync(tmp, 0o755);
  const resultsDir = join(REPO_ROOT, 'bench/results');
  const stamp = startedAt.toISOString().replace(/[:.]/g, '-');
  const profileDir = options.cpuProfile ? join(resultsDir, `profiles-${stamp}`) : undefined;
  if (profileDir) mkdirSync(profileDir, { recursive: true });
  let interrupted = false;
  const interrupt = (): void => {
    interrupted = true;
    progress('interrupted: stopping everything');
    // The scenario under way fails as its servers go; the partial results are still written.
    void stopAll();
    setTimeout(() => process.exit(130), 10_000).unref();
  };
  process.once('SIGINT', interrupt);
  process.once('SIGTERM', interrupt);
  process.once('exit', killAllNow);
  let failure: unknown;
  try {
    await runScenarios(options, tmp, profileDir);
  } catch (error) {
    failure = error;
  } finally {
    await stopAll();
    rmSync(tmp, { recursive: true, force: true });
  }
  const run: BenchRun = {
    startedAt: startedAt.toISOString(),
    durationSeconds: (Date.now() - startedAt.getTime()) / 1000,
    machine: machine(loadAtStart),
    options: { ...options, only: options.only ? [...options.only] : undefined },
    scenarios: results,
    targets: checkTargets(results),
  };
  const tables = formatTables(run);
  mkdirSync(resultsDir, { recursive: true });
  const file = join(resultsDir, `${stamp}.json`);
  writeFileSync(file, `${JSON.stringify({ ...run, skipped }, null, 2)}\n`);
  const m = run.machine;
  process.stdout.write(
    `\ncachegate bench, ${run.startedAt}, ${run.durationSeconds.toFixed(0)} s: ${m.cpuModel}, ${m.cores} cores, ${m.memoryGb} GB, Node ${m.node}, ${m.os}, nginx ${m.nginx ?? 'absent'}, redis ${m.redis ?? 'absent'}, load average ${m.loadAverage.start.toFixed(1)} → ${m.loadAverage.end.toFixed(1)}\n\n${tables}\n${skipped.map((s) => `skipped: ${s}\n`).join('')}results: ${file}\n${profileDir ? `profiles: ${profileDir}\n` : ''}`,
  );
  if (interrupted) {
    process.stderr.write('bench interrupted: the results above are partial\n');
    process.exitCode = 130;
  } else if (failure) {
    process.stderr.write(`bench failed: ${failure instanceof Error ? (failure.stack ?? failure.message) : String(failure)}\n`);
    process.exitCode = 1;
  } else if (results.some((result) => result.details?.pass === false)) {
    process.stderr.write(
      `soak failed: ${results
        .filter((r) => r.details?.pass === false)
        .map((r) => `${r.id} (${r.notes?.join('; ')})`)
        .join(', ')}\n`,
    );
    process.exitCode = 1;
  }
}

await main();
