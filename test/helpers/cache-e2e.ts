/**
 * Shared plumbing for the end-to-end cache tests (test/cache-e2e-*.test.ts): a fake upstream, the
 * real gateway and, for the Redis backend, a real redis-server, wired per describe block; plus
 * small HTTP and SSE helpers. Each test uses a unique prompt (`unique()`), so entries never leak
 * from one test into another even though a backend lives for the whole block.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, beforeEach } from 'vitest';
import { startFakeUpstream, type FakeUpstream, type FakeUpstreamOptions } from './fake-upstream.js';
import { startGateway, type RunningGateway } from './gateway.js';
import { startGatedUpstream, type GatedUpstream } from './gated-upstream.js';
import { startFaultProxy, type FaultProxy } from './fault-proxy.js';
import { startRedis, type RedisServer } from './redis-server.js';

export type Backend = 'memory' | 'redis';
export const BACKENDS: readonly Backend[] = ['memory', 'redis'];

export interface E2eSetup {
  fake: FakeUpstream;
  /** With `gated: true`: the proxy between gateway and fake that can hold answers open. */
  gate: GatedUpstream | undefined;
  /** With `faulty: true`: the proxy between gateway and fake whose answers a test can break. */
  faults: FaultProxy | undefined;
  gateway: RunningGateway;
  /** Only for the Redis backend. */
  redis: RedisServer | undefined;
}

export interface E2eOptions {
  env?: Record<string, string | undefined>;
  upstream?: FakeUpstreamOptions;
  /** Put a GatedUpstream between the gateway and the fake. */
  gated?: boolean;
  /** Put a FaultProxy between the gateway and the fake (not together with `gated`). */
  faulty?: boolean;
}

/**
 * Registers beforeAll/afterAll hooks that start (and stop) a fake upstream, a redis-server when
 * the backend is Redis, and the gateway; the fake's request log is cleared before every test.
 * Returns a holder whose fields are filled once beforeAll ran.
 */
export function useGateway(backend: Backend, options: E2eOptions = {}): E2eSetup {
  const setup = {} as E2eSetup;
  beforeAll(async () => {
    setup.fake = await startFakeUpstream(options.upstream);
    setup.redis = backend === 'redis' ? await startRedis() : undefined;
    // A generous command timeout: on a busy CI box a slow Redis reply must not turn an expected
    // HIT into a (correct, fail-open) BYPASS. Tests of the timeout itself pass their own value.
    const redisEnv = setup.redis ? { REDIS_URL: setup.redis.url, REDIS_COMMAND_TIMEOUT_MS: '2000' } : {};
    setup.gate = options.gated ? await startGatedUpstream(setup.fake.url) : undefined;
    setup.faults = options.faulty ? await startFaultProxy(setup.fake.url) : undefined;
    const front = setup.gate ?? setup.faults;
    const gateEnv = front ? { OPENAI_BASE_URL: `${front.url}/v1`, GROQ_BASE_URL: `${front.url}/openai/v1` } : {};
    setup.gateway = await startGateway(setup.fake, { LOG_LEVEL: 'warn', ...redisEnv, ...gateEnv, ...options.env });
    // Fetch the model lists now, so a test that slows the fake down slows only its completions.
    const clientKey = setup.gateway.config.gatewayApiKeys[0];
    const auth: Record<string, string> = clientKey ? { authorization: `Bearer ${clientKey}` } : {};
    const models = await fetch(`${setup.gateway.url}/v1/models`, { headers: auth });
    if (models.status !== 200) throw new Error(`warming the model lists failed: ${models.status} ${await models.text()}`);
    await models.text();
  });
  afterAll(async () => {
    // A test that aborts a request can leave the fetch client holding a fresh connection that
    // never sends a request; Node's server would wait for it to time out before closing.
    setup.gateway?.app.server.closeAllConnections();
    await setup.gateway?.close();
    await setup.gate?.close();
    await setup.faults?.close();
    await setup.fake?.close();
    await setup.redis?.stop();
  });
  beforeEach(() => {
    setup.fake?.reset();
    setup.gate?.release();
    setup.gate?.calls.splice(0);
    if (setup.faults) setup.faults.fault = undefined;
  });
  return setup;
}

/** A prompt no other test uses. */
export function unique(label = 'q'): string {
  return `${label} ${randomUUID()}`;
}

export function chatBody(prompt: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { model: 'gpt-4o-mini', messages: [{ role: 'user', content: prompt }], ...extra };
}

export interface GatewayResponse {
  status: number;
  headers: Headers;
  text: string;
  xCache: string | null;
}

/** POSTs JSON to the gateway and reads the whole answer. */
export async function post(gateway: RunningGateway, path: string, body: unknown, headers: Record<string, string> = {}): Promise<GatewayResponse> {
  const response = await fetch(gateway.url + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, text, xCache: response.headers.get('x-cache') };
}

export function chat(gateway: RunningGateway, body: unknown, headers: Record<string, string> = {}): Promise<GatewayResponse> {
  return post(gateway, '/v1/chat/completions', body, headers);
}

export type Chunk = Record<string, unknown> & {
  id?: string;
  created?: number;
  model?: string;
  choices?: Array<Record<string, unknown> & { delta?: Record<string, unknown>; text?: string; finish_reason?: string | null }>;
  usage?: Record<string, number> | null;
};

export interface ParsedStream {
  chunks: Chunk[];
  done: boolean;
  /** Every `data:` payload, in order, `[DONE]` included. */
  data: string[];
}

/** Parses an SSE body into its JSON chunks; fails loudly on a line it cannot read. */
export function parseStream(text: string): ParsedStream {
  const data: string[] = [];
  for (const block of text.split(/\r?\n\r?\n/)) {
    const lines = block.split(/\r?\n/).filter((line) => line.startsWith('data:'));
    if (lines.length > 0) data.push(lines.map((line) => line.slice(5).trimStart()).join('\n'));
  }
  const done = data.at(-1) === '[DONE]';
  const chunks = data.filter((d) => d !== '[DONE]').map((d) => JSON.parse(d) as Chunk);
  return { chunks, done, data };
}

/** The text a stream spells out (chat deltas or legacy completion text). */
export function streamText(stream: ParsedStream): string {
  let text = '';
  for (const chunk of stream.chunks) {
    for (const choice of chunk.choices ?? []) {
      const piece = choice.delta?.['content'] ?? choice.text;
      if (typeof piece === 'string') text += piece;
    }
  }
  return text;
}

/** Polls `check` every `intervalMs` until it holds or `timeoutMs` passed; returns whether it held. */
export async function until(check: () => Promise<boolean> | boolean, timeoutMs: number, intervalMs = 50): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() >= deadline) return false;
    await sleep(intervalMs);
  }
}

/**
 * The store is written after the answer was sent (fire-and-forget): a request sent right after a
 * miss may still miss. Repeats `send` until it reports a HIT (bounded), counting nothing upstream
 * twice: callers compare upstream counts after this returns.
 */
export async function untilStored(send: () => Promise<GatewayResponse>, timeoutMs = 3_000): Promise<GatewayResponse> {
  let last: GatewayResponse | undefined;
  await until(async () => {
    last = await send();
    return last.xCache === 'HIT';
  }, timeoutMs);
  return last as GatewayResponse;
}
