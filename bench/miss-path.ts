/**
 * `tsx bench/miss-path.ts [requests] [stream]`: the CPU cost of one cache miss inside the gateway,
 * as bench/hit-path.ts measures a hit: light-my-request drives the real buildServer()'s HTTP
 * request listener (the cached routes' pipeline with it) with a body never seen before, so every
 * request is a miss that goes to the fake upstream (bench/servers/fake-upstream.ts, its own
 * process: its CPU is not counted) and is stored. What is counted is this process's CPU per
 * request: the gateway's work on the miss (reading, parsing, routing, key, lookup, the upstream
 * call through undici, the answer, the store write) plus light-my-request's small share.
 */
import injectRequest, { type InjectOptions } from 'light-my-request';
import type { FastifyInstance } from 'fastify';
import { loadConfig } from '../src/config.js';
import { buildServer } from '../src/server.js';
import { startFakeUpstream } from './services.js';
import { stopAll } from './processes.js';
import { chatBody } from './workload.js';

const requests = Number(process.argv[2] ?? 5_000);
const stream = process.argv[3] === 'stream';
const headers = { 'content-type': 'application/json', authorization: 'Bearer sk-bench-client' };
let unique = 0;

type Dispatch = (options: InjectOptions) => Promise<{ statusCode: number; body: string; headers: Record<string, unknown> }>;

/** Sends requests to the server's own request listener, as a socket would (inject() would skip the pipeline). */
function viaServer(app: FastifyInstance): Dispatch {
  const listener = app.server.listeners('request')[0] as Parameters<typeof injectRequest>[0];
  return (options) => injectRequest(listener, options);
}

async function misses(send: Dispatch, count: number): Promise<{ cpu: number; wall: number; split: string }> {
  const cpu = process.cpuUsage();
  const started = performance.now();
  for (let i = 0; i < count; i++) {
    const payload = JSON.stringify(chatBody({ tag: `miss-${process.pid}-${++unique}`, stream }));
    const response = await send({ method: 'POST', url: '/v1/chat/completions', payload, headers });
    if (response.statusCode !== 200 || response.headers['x-cache'] !== 'MISS')
      throw new Error(`status ${response.statusCode} ${String(response.headers['x-cache'])}: ${response.body.slice(0, 200)}`);
  }
  const wall = (performance.now() - started) * 1000;
  const used = process.cpuUsage(cpu);
  return {
    cpu: (used.user + used.system) / count,
    wall: wall / count,
    split: `user ${(used.user / count).toFixed(1)} µs, system ${(used.system / count).toFixed(1)} µs`,
  };
}

try {
  const fake = await startFakeUpstream({ delayMs: 0, tokensPerSecond: 0, answerTokens: 120 });
  const config = loadConfig({ HOST: '127.0.0.1', PORT: '0', OPENAI_BASE_URL: `${fake.url}/v1`, OPENAI_API_KEYS: 'sk-bench-1', LOG_LEVEL: 'warn' });
  const gateway = await buildServer(config);
  await gateway.ready();
  const send = viaServer(gateway);
  // Warm up (JIT, the upstream connections, the model lists).
  await misses(send, Math.min(1_000, Math.ceil(requests / 5)));
  const measured = await misses(send, requests);
  process.stdout.write(
    `gateway ${stream ? 'stream' : 'JSON'} miss: ${measured.cpu.toFixed(1)} µs CPU per request (this process: ${measured.split}), ${measured.wall.toFixed(0)} µs wall per request, over ${requests}\n`,
  );
  await gateway.close();
} finally {
  await stopAll();
}
