/**
 * `tsx bench/replica-storm.ts [requests] [rounds]`: the coalescing storm across replicas. N
 * identical requests (JSON, then streams) sent at once and split evenly over two gateway
 * processes on one Redis, against the same storm on one process: how many upstream calls each
 * makes, and the clients' latency (p50, p99, max). The fake upstream answers after 300 ms and
 * streams 60 tokens at 300 tokens/s, so the storm arrives while the first call is in flight.
 * Not part of `npm run bench`: it needs no load generator, and its figures are counts and
 * latencies, not throughput.
 */
import { stopAll } from './processes.js';
import { startFakeUpstream, startGateway } from './services.js';
import { startRedis } from '../test/helpers/redis-server.js';
import { chatBody } from './workload.js';

const requests = Number(process.argv[2] ?? 200);
const rounds = Number(process.argv[3] ?? 3);

const redis = await startRedis();
const fake = await startFakeUpstream({ delayMs: 300, tokensPerSecond: 300, answerTokens: 60 });
const common = { upstreamUrl: fake.url, logLevel: 'warn', redisUrl: redis.url, env: { REDIS_COMMAND_TIMEOUT_MS: '2000' } };
const one = await startGateway({ ...common, name: 'replica-storm-one' });
const pair = [await startGateway({ ...common, name: 'replica-storm-a' }), await startGateway({ ...common, name: 'replica-storm-b' })];

async function storm(urls: string[], stream: boolean, tag: string): Promise<{ calls: number; latencies: number[]; failed: number }> {
  const body = JSON.stringify({ ...chatBody({ tag }), stream });
  const before = await fake.stats();
  const latencies: number[] = [];
  let failed = 0;
  await Promise.all(
    Array.from({ length: requests }, async (_, i) => {
      const started = performance.now();
      const response = await fetch(`${urls[i % urls.length]}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
      });
      await response.text();
      if (response.status !== 200) failed++;
      latencies.push(performance.now() - started);
    }),
  );
  const after = await fake.stats();
  return { calls: after.chat + after.chatStreams - before.chat - before.chatStreams, latencies: latencies.sort((a, b) => a - b), failed };
}

const at = (sorted: number[], share: number): number => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * share))] ?? 0;

console.log(`${requests} identical requests at once, ${rounds} rounds; upstream: 300 ms to the head, 60 tokens at 300/s`);
console.log('| replicas | form | upstream calls | p50 ms | p99 ms | max ms | failed |');
console.log('| --- | --- | ---: | ---: | ---: | ---: | ---: |');
for (let round = 0; round < rounds; round++) {
  for (const stream of [false, true]) {
    for (const [label, urls] of [
      ['1', [one.url]],
      ['2', pair.map((gateway) => gateway.url)],
    ] as const) {
      const result = await storm([...urls], stream, `replica-storm-${label}-${stream}-${round}-${Date.now()}`);
      const ms = (value: number): string => value.toFixed(0);
      console.log(
        `| ${label} | ${stream ? 'stream' : 'JSON'} | ${result.calls} | ${ms(at(result.latencies, 0.5))} | ${ms(at(result.latencies, 0.99))} | ${ms(result.latencies.at(-1) ?? 0)} | ${result.failed} |`,
      );
    }
  }
}
await stopAll();
await redis.stop();
