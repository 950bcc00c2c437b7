/**
 * `tsx bench/hit-path.ts [requests]`: the CPU cost of one cache hit inside the gateway, without
 * sockets or a load generator competing for the two cores: light-my-request (what Fastify's
 * inject() uses) drives the real buildServer()'s HTTP request listener (embedded cache), the cached
 * routes' pipeline included, and a bare Fastify route with the same answer; the costs of the hit path's parts
 * are timed on their own. Run it under `node --cpu-prof --import tsx` for a
 * profile free of network noise.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import injectRequest, { type InjectOptions } from 'light-my-request';
import { decodeEntry } from '../src/cache/entry.js';
import { cacheKey } from '../src/cache/key.js';
import { loadConfig } from '../src/config.js';
import { buildServer } from '../src/server.js';
import { startFakeUpstream } from './services.js';
import { stopAll } from './processes.js';
import { chatBody } from './workload.js';

const requests = Number(process.argv[2] ?? 20_000);
/** `gateway`: drive only the gateway (for a profile of its hit path alone); `miss`: the same with unique bodies. */
const only = process.argv[3];
let unique = 0;
const body = JSON.stringify(chatBody({ tag: 'hit-path' }));
const headers = { 'content-type': 'application/json', authorization: 'Bearer sk-bench-client' };

let lastSplit = '';
/** How each app under test is driven (default: its inject()). */
const sends = new Map<FastifyInstance, Dispatch>();

/** Sends requests to the server's own request listener, as a socket would (inject() would skip the cached routes' pipeline). */
function viaServer(app: FastifyInstance): Dispatch {
  const listener = app.server.listeners('request')[0] as Dispatch;
  return (options) => injectRequest(listener, options);
}
type Dispatch = (options: InjectOptions) => Promise<{ statusCode: number; body: string; headers: Record<string, unknown> }>;

async function perRequest(app: FastifyInstance, count: number): Promise<number> {
  const send: Dispatch = sends.get(app) ?? ((options) => app.inject(options));
  const cpu = process.cpuUsage();
  for (let i = 0; i < count; i++) {
    const payload = only === 'miss' ? JSON.stringify(chatBody({ tag: `miss-${++unique}` })) : body;
    const response = await send({ method: 'POST', url: '/v1/chat/completions', payload, headers });
    if (response.statusCode !== 200) throw new Error(`status ${response.statusCode}: ${response.body.slice(0, 200)}`);
  }
  const used = process.cpuUsage(cpu);
  lastSplit = `user ${(used.user / count).toFixed(1)} µs, system ${(used.system / count).toFixed(1)} µs`;
  return (used.user + used.system) / count;
}

function timeIt(name: string, count: number, run: () => unknown): string {
  const started = performance.now();
  for (let i = 0; i < count; i++) run();
  return `  ${name.padEnd(34)} ${(((performance.now() - started) * 1000) / count).toFixed(2).padStart(7)} µs`;
}

try {
  const fake = await startFakeUpstream({ delayMs: 0, tokensPerSecond: 0, answerTokens: 120 });
  const config = loadConfig({ HOST: '127.0.0.1', PORT: '0', OPENAI_BASE_URL: `${fake.url}/v1`, OPENAI_API_KEYS: 'sk-bench-1', LOG_LEVEL: 'warn' });
  const gateway = await buildServer(config);
  await gateway.ready();
  sends.set(gateway, viaServer(gateway));
  const first = await sends.get(gateway)!({ method: 'POST', url: '/v1/chat/completions', payload: body, headers });
  let answer = first.body;
  for (let i = 0; i < 50; i++) {
    const again = await sends.get(gateway)!({ method: 'POST', url: '/v1/chat/completions', payload: body, headers });
    if (again.headers['x-cache'] === 'HIT') {
      answer = again.body;
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  if (only === 'gateway' || only === 'miss') {
    process.stdout.write(
      `gateway ${only === 'miss' ? 'miss' : 'hit'} alone: ${(await perRequest(gateway, requests)).toFixed(1)} µs CPU per request (this process: ${lastSplit})\n`,
    );
  } else {
    await compareWithBare(gateway, answer);
  }
  await gateway.close();
} finally {
  await stopAll();
}

async function compareWithBare(gateway: FastifyInstance, answer: string): Promise<void> {
  const bare = Fastify({ logger: false });
  bare.post('/v1/chat/completions', async (_request, reply) => reply.type('application/json').send(answer));
  await bare.ready();
  // Warm both (JIT), then measure alternately so background load hits both alike.
  await perRequest(gateway, requests / 4);
  await perRequest(bare, requests / 4);
  const rounds = 4;
  let gatewayCost = 0;
  let bareCost = 0;
  for (let round = 0; round < rounds; round++) {
    gatewayCost += (await perRequest(gateway, requests / rounds)) / rounds;
    bareCost += (await perRequest(bare, requests / rounds)) / rounds;
  }
  process.stdout.write(
    `in process (light-my-request), CPU per request over ${requests}: gateway hit ${gatewayCost.toFixed(1)} µs, bare Fastify ${bareCost.toFixed(1)} µs, difference ${(gatewayCost - bareCost).toFixed(1)} µs\n`,
  );

  const parsed = JSON.parse(body) as Record<string, unknown>;
  const { MemoryStore } = await import('../src/cache/memory-store.js');
  const { encodeEntry } = await import('../src/cache/entry.js');
  const stored = encodeEntry({
    storedAt: Date.now(),
    form: 'json',
    endpoint: 'chat.completions',
    provider: 'openai',
    model: 'gpt-4o-mini',
    body: Buffer.from(answer),
    usage: { prompt_tokens: 60, completion_tokens: 120, total_tokens: 180 },
  });
  const store = new MemoryStore({ maxBytes: 1 << 20 });
  const key = cacheKey({ provider: 'openai', endpoint: 'chat.completions', body: parsed });
  await store.set(key, stored, 0);
  const parts = [
    timeIt('JSON.parse(request body)', 20_000, () => JSON.parse(body)),
    timeIt('cacheKey (canonical JSON + SHA-256)', 20_000, () => cacheKey({ provider: 'openai', endpoint: 'chat.completions', body: parsed })),
    timeIt(`decodeEntry (${stored.byteLength} B stored)`, 20_000, () => decodeEntry(stored)),
    timeIt('crypto.randomUUID', 20_000, () => crypto.randomUUID()),
  ];
  process.stdout.write(`parts of the hit path, each alone:\n${parts.join('\n')}\n`);
  await bare.close();
}
