/**
 * `npm run bench`: starts the fake upstream, the references (bare Fastify, Nginx proxy_cache) and
 * the gateway (Redis, embedded), each in its own process, drives them with autocannon on loopback,
 * prints the table and writes bench/results/<timestamp>.json. Everything it starts is stopped at the
 * end, on an error and on Ctrl-C. Knobs: see bench/options.ts and bench/README.md.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, release, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { Client } from 'undici';
import { encodeEntry } from '../src/cache/entry.js';
import { cacheKey } from '../src/cache/key.js';
import { memoryStoreEntrySize } from '../src/cache/memory-store.js';
import { timedPost, type TimedResponse } from './load.js';
import { nginxBinary, startNginx } from './nginx.js';
import { loadOptions, type BenchOptions } from './options.js';
import { freePort, killAllNow, stopAll } from './processes.js';
import { checkTargets, formatTables, type BenchRun, type Machine, type ScenarioResult } from './results.js';
import { CHAT_PATH, CLIENT_HEADERS, mixed, sequential, storm, throughput, uniqueChatBody, type Target } from './scenarios.js';
import {
  buildGateway,
  metricSum,
  REPO_ROOT,
  startConstantServer,
  startFakeUpstream,
  startGateway,
  startRedisServer,
  type FakeUpstreamProcess,
  type GatewayProcess,
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

async function record(id: string, run: () => Promise<ScenarioResult>): Promise<void> {
  progress(`${id} …`);
  const result = await run();
  progress(`${id}: ${result.requestsPerSecond.toFixed(0)} req/s, p50 ${result.p50Ms.toFixed(2)} ms, p99 ${result.p99Ms.toFixed(2)} ms, ${result.errors} errors`);
  if (result.errors > 0) (result.notes ??= []).push(`${result.errors} failed requests`);
  results.push(result);
}

function gatewayTarget(gateway: GatewayProcess, helpers: () => number[]): Target {
  return { url: gateway.url, pids: () => [gateway.managed.pid], helperPids: helpers };
}

/** Metric deltas around a measured run: proves a hit run hit and a miss run missed. */
function cacheCheck(gateway: GatewayProcess, fake: FakeUpstreamProcess) {
  let before = '';
  let callsBefore = 0;
  const calls = async (): Promise<number> => {
    const stats = await fake.stats();
    return stats.chat + stats.chatStreams;
  };
  return {
    async before() {
      before = await gateway.metrics();
      callsBefore = await calls();
    },
    async after(requests: number): Promise<Partial<ScenarioResult>> {
      const after = await gateway.metrics();
      const delta = (name: string): number => metricSum(after, name) - metricSum(before, name);
      return {
        details: {
          hitShare: requests ? delta('gateway_cache_hits_total') / requests : 0,
          missShare: requests ? delta('gateway_cache_misses_total') / requests : 0,
          upstreamCallsPerRequest: requests ? ((await calls()) - callsBefore) / requests : 0,
        },
      };
    },
  };
}

/** What the embedded cache holds after `misses` stored answers like `answer` (the MemoryStore's own arithmetic). */
function heldBytesEstimate(answer: string, misses: number): number {
  const body = Buffer.from(answer);
  const parsed = JSON.parse(answer) as { usage?: { prompt_tokens: number; total_tokens: number } };
  const entry = encodeEntry({ storedAt: Date.now(), form: 'json', route: 'chat.completions', provider: 'openai', model: CHAT_MODEL, body, ...(parsed.usage ? { usage: parsed.usage } : {}) });
  const key = cacheKey({ provider: 'openai', route: 'chat.completions', body: {} });
  return misses * memoryStoreEntrySize(key, entry);
}

async function runScenarios(options: BenchOptions, tmp: string, profileDir: string | undefined): Promise<void> {
  let compiledMain: string | undefined;
  if (!options.gatewayThroughTsx) {
    progress('compiling the gateway (tsc -p tsconfig.build.json → bench/.build/)');
    compiledMain = buildGateway();
  }
  const wants = (...ids: string[]): boolean => !options.only || ids.some((id) => options.only!.has(id));
  progress('starting the fake upstream');
  const fake = await startFakeUpstream({ delayMs: options.upstreamDelayMs, tokensPerSecond: 0, answerTokens: options.answerTokens });
  const forThroughput = (): Promise<void> => fake.configure({ delayMs: options.upstreamDelayMs, tokensPerSecond: 0 });
  const forStreams = (): Promise<void> => fake.configure({ delayMs: options.streamDelayMs, tokensPerSecond: options.tokensPerSecond });
  const fakeTarget: Target = { url: fake.url, pids: () => [fake.managed.pid] };
  const hitBody = JSON.stringify(chatBody({ tag: 'hit' }));
  const hitStreamBody = JSON.stringify(chatBody({ tag: 'hit-stream', stream: true }));
  const helpers: number[] = [fake.managed.pid];

  if (wants('direct', 'miss-redis', 'miss-memory')) {
    await record('direct', () => throughput({ id: 'direct', title: '1 upstream direct (floor), unique bodies', server: 'fake upstream' }, fakeTarget, options, () => uniqueChatBody()));
  }
  if (wants('direct-c1', 'miss-redis-c1')) {
    await record('direct-c1', () => sequential({ id: 'direct-c1', title: '1 upstream direct, concurrency 1', server: 'fake upstream' }, fakeTarget, options, () => uniqueChatBody()));
  }
  if (wants('stream-direct', 'stream-miss')) {
    await forStreams();
    await record('stream-direct', () => sequential({ id: 'stream-direct', title: '7 stream direct, concurrency 1', server: 'fake upstream' }, fakeTarget, options, () => uniqueChatBody(true)));
    await forThroughput();
  }

  const answer = (await post(fake.url, hitBody)).body;
  if (wants('constant', 'hit-redis', 'hit-memory', 'nginx')) {
    progress('starting the bare Fastify server');
    const constant = await startConstantServer(tmp, answer);
    await record('constant', () =>
      throughput({ id: 'constant', title: `2 constant JSON, bare Fastify (${Buffer.byteLength(answer)} B)`, server: 'fastify' }, { url: constant.url, pids: () => [constant.managed.pid] }, options, hitBody),
    );
    await constant.managed.stop();
  }

  if (wants('nginx')) {
    const binary = nginxBinary();
    if (!binary) {
      skipped.push('nginx: not installed, scenario 3 skipped (apt-get install nginx)');
    } else {
      progress('starting nginx');
      const nginx = await startNginx(binary, join(tmp, 'nginx'), await freePort(), fake.port);
      await primeHit(nginx.url, hitBody);
      const calls = async (): Promise<number> => (await fake.stats()).chat;
      let callsBefore = 0;
      await record('nginx', () =>
        throughput({ id: 'nginx', title: '3 Nginx proxy_cache POST hit (1 worker)', server: 'nginx' }, { url: nginx.url, pids: nginx.pids }, options, hitBody, {
          before: async () => {
            callsBefore = await calls();
          },
          after: async () => ({ details: { upstreamCalls: (await calls()) - callsBefore } }),
        }),
      );
      await nginx.managed.stop();
    }
  }

  if (wants('miss-redis', 'miss-redis-c1', 'hit-redis', 'stream-miss', 'stream-hit', 'storm', 'mixed')) {
    progress('starting redis-server and the gateway (Redis)');
    const redis = await startRedisServer(join(tmp, 'redis'));
    const gateway = await startGateway({ name: 'gateway-redis', upstreamUrl: fake.url, redisUrl: redis.url, logLevel: 'warn', cpuProfDir: profileDir, compiledMain });
    const target = gatewayTarget(gateway, () => [...helpers, redis.managed.pid]);
    if (wants('miss-redis')) {
      await record('miss-redis', () =>
        throughput({ id: 'miss-redis', title: '4 gateway miss, Redis, unique bodies', server: 'gateway' }, target, options, () => uniqueChatBody(), cacheCheck(gateway, fake)),
      );
    }
    if (wants('miss-redis-c1')) {
      await record('miss-redis-c1', () => sequential({ id: 'miss-redis-c1', title: '4 gateway miss, Redis, concurrency 1', server: 'gateway' }, target, options, () => uniqueChatBody()));
    }
    if (wants('hit-redis')) {
      await primeHit(gateway.url, hitBody);
      await record('hit-redis', () => throughput({ id: 'hit-redis', title: '5 gateway hit, Redis', server: 'gateway' }, target, options, hitBody, cacheCheck(gateway, fake)));
    }
    if (wants('stream-miss', 'stream-hit')) {
      await forStreams();
      if (wants('stream-miss')) {
        await record('stream-miss', () => sequential({ id: 'stream-miss', title: '7 stream gateway miss, Redis, concurrency 1', server: 'gateway' }, target, options, () => uniqueChatBody(true)));
      }
      if (wants('stream-hit')) {
        await primeHit(gateway.url, hitStreamBody);
        await record('stream-hit', () => sequential({ id: 'stream-hit', title: '7 stream gateway hit, Redis, concurrency 1', server: 'gateway' }, target, options, () => hitStreamBody));
      }
      await forThroughput();
    }
    if (wants('storm')) await record('storm', () => storm(gateway, fake, options));
    if (wants('mixed')) await record('mixed', () => mixed(gateway, fake, options));
    await forThroughput();
    await gateway.managed.stop();
    await redis.managed.stop();
  }

  if (wants('hit-memory', 'miss-memory')) {
    progress('starting the gateway (embedded cache)');
    const gateway = await startGateway({ name: 'gateway-memory', upstreamUrl: fake.url, logLevel: 'warn', cpuProfDir: profileDir, compiledMain });
    const target = gatewayTarget(gateway, () => helpers);
    if (wants('hit-memory')) {
      await primeHit(gateway.url, hitBody);
      await record('hit-memory', () => throughput({ id: 'hit-memory', title: '6 gateway hit, embedded', server: 'gateway' }, target, options, hitBody, cacheCheck(gateway, fake)));
    }
    if (wants('miss-memory')) {
      await record('miss-memory', async () => {
        const result = await throughput({ id: 'miss-memory', title: '4 gateway miss, embedded, unique bodies', server: 'gateway' }, target, options, () => uniqueChatBody(), cacheCheck(gateway, fake));
        const misses = metricSum(await gateway.metrics(), 'gateway_cache_misses_total');
        result.details = { ...result.details, storedAnswers: misses, cacheHeldMbEstimate: heldBytesEstimate(answer, misses) / 2 ** 20 };
        return result;
      });
    }
    await gateway.managed.stop();
  }

  if (wants('hit-memory-info')) {
    progress('starting the gateway (embedded cache, LOG_LEVEL=info)');
    const gateway = await startGateway({ name: 'gateway-memory-info', upstreamUrl: fake.url, logLevel: 'info', cpuProfDir: profileDir, compiledMain });
    await primeHit(gateway.url, hitBody);
    await record('hit-memory-info', async () => {
      const result = await throughput({ id: 'hit-memory-info', title: '6 gateway hit, embedded, LOG_LEVEL=info', server: 'gateway' }, gatewayTarget(gateway, () => helpers), options, hitBody, cacheCheck(gateway, fake));
      (result.notes ??= []).push('one JSON log line per request, piped to the driver (as to a container log driver)');
      return result;
    });
    await gateway.managed.stop();
  }
  await fake.managed.stop();
}

function version(command: string, args: string[]): string | undefined {
  try {
    // nginx -v writes to stderr.
    return execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim() || undefined;
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr?.trim();
    return stderr || undefined;
  }
}

function machine(): Machine {
  const nginx = nginxBinary();
  let nginxVersion: string | undefined;
  if (nginx) {
    const result = (() => {
      try {
        return execFileSync(nginx, ['-v'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      } catch (error) {
        return (error as { stderr?: string }).stderr ?? '';
      }
    })();
    nginxVersion = result.trim() || undefined;
  }
  return {
    cpuModel: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memoryGb: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    os: `Linux ${release()}`,
    nginx: nginxVersion,
    redis: version('redis-server', ['--version'])?.split(' ').find((part) => part.startsWith('v='))?.slice(2),
  };
}

async function main(): Promise<void> {
  const options = loadOptions();
  const startedAt = new Date();
  const tmp = mkdtempSync(join(tmpdir(), 'cachegate-bench-'));
  // nginx's worker runs unprivileged when the driver is root: it must reach its directory.
  chmodSync(tmp, 0o755);
  const resultsDir = join(REPO_ROOT, 'bench/results');
  const stamp = startedAt.toISOString().replace(/[:.]/g, '-');
  const profileDir = options.cpuProfile ? join(resultsDir, `profiles-${stamp}`) : undefined;
  if (profileDir) mkdirSync(profileDir, { recursive: true });
  const interrupt = (): void => {
    progress('interrupted: stopping everything');
    void stopAll().finally(() => process.exit(130));
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
    machine: machine(),
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
    `\ncachegate bench, ${run.startedAt}, ${run.durationSeconds.toFixed(0)} s: ${m.cpuModel}, ${m.cores} cores, ${m.memoryGb} GB, Node ${m.node}, ${m.os}\n\n${tables}\n${skipped.map((s) => `skipped: ${s}\n`).join('')}results: ${file}\n${profileDir ? `profiles: ${profileDir}\n` : ''}`,
  );
  if (failure) {
    process.stderr.write(`bench failed: ${failure instanceof Error ? (failure.stack ?? failure.message) : String(failure)}\n`);
    process.exitCode = 1;
  }
}

await main();
