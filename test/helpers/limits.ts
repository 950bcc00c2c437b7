/**
 * Plumbing for the budget and rate-limit tests: a price table where one prompt token of
 * gpt-4o-mini costs exactly one cent (completion tokens are free), canned upstream answers whose
 * usage sets what a call costs and how many tokens it used, and a clock the tests move.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach } from 'vitest';
import { type Backend, chat, chatBody, unique } from './cache-e2e.js';
import { type CannedResponse, type FakeUpstream, startFakeUpstream } from './fake-upstream.js';
import { type RunningGateway, startGateway, TEST_CLIENT_KEY } from './gateway.js';
import { waitForModelLists } from './metrics-scrape.js';
import { type RedisServer, startRedis } from './redis-server.js';

/** A PRICES_FILE: gpt-4o-mini at $10,000 per 1M prompt tokens ($0.01 each), completions free. */
export function centPerPromptTokenPrices(): string {
  const dir = mkdtempSync(join(tmpdir(), 'cachegate-limits-prices-'));
  const file = join(dir, 'prices.json');
  writeFileSync(file, JSON.stringify({ openai: { 'gpt-4o-mini': { input: 10_000, output: 0 } } }));
  return file;
}

/** A chat completion whose usage costs `cents` cents and counts `cents + freeTokens` tokens. */
export function paidAnswer(cents: number, freeTokens = 0, text = 'paid answer'): CannedResponse {
  return {
    status: 200,
    body: {
      id: `chatcmpl-paid-${Math.random().toString(36).slice(2)}`,
      object: 'chat.completion',
      created: 1_700_000_000,
      model: 'gpt-4o-mini',
      choices: [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: 'stop' }],
      usage: { prompt_tokens: cents, completion_tokens: freeTokens, total_tokens: cents + freeTokens },
    },
  };
}

/** A clock for the gateway's periods, set and moved by the test (far in the future: Redis expiries stay ahead of real time). */
export class TestClock {
  constructor(public ms: number) {}
  readonly now = (): number => this.ms;
  set(iso: string): void {
    this.ms = Date.parse(iso);
  }
  advance(ms: number): void {
    this.ms += ms;
  }
}

export function limitsFileIn(dir: string, content: unknown): string {
  const file = join(dir, 'limits.json');
  writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content));
  return file;
}

/** The pieces a limits test works with: one fake upstream and (Redis backend) one redis-server per describe, a gateway per test. */
export interface LimitedGateways {
  fake: FakeUpstream;
  redis: RedisServer | undefined;
  clock: TestClock;
  prices: string;
  /** The Redis variables of the backend ({} for memory). */
  redisEnv(): Record<string, string>;
  /** Starts a gateway (closed after the test) with these variables on top of the test's defaults; the model lists are fetched first. */
  start(env: Record<string, string>, upstream?: { openaiBaseUrl: string; groqBaseUrl: string }): Promise<RunningGateway>;
}

export const LIMITS_START = '2099-06-15T12:00:00Z';

/** Registers the hooks: a fresh clock at LIMITS_START and empty counters before each test. */
export function useLimitedGateways(backend: Backend): LimitedGateways {
  const gateways: RunningGateway[] = [];
  const setup: LimitedGateways = {
    fake: undefined as unknown as FakeUpstream,
    redis: undefined,
    clock: new TestClock(Date.parse(LIMITS_START)),
    prices: centPerPromptTokenPrices(),
    redisEnv: (): Record<string, string> => (setup.redis ? { REDIS_URL: setup.redis.url, REDIS_COMMAND_TIMEOUT_MS: '2000' } : {}),
    async start(env, upstream) {
      const front = upstream ? { OPENAI_BASE_URL: upstream.openaiBaseUrl, GROQ_BASE_URL: upstream.groqBaseUrl } : {};
      const running = await startGateway(
        setup.fake,
        { LOG_LEVEL: 'info', GATEWAY_API_KEYS: TEST_CLIENT_KEY, PRICES_FILE: setup.prices, ...setup.redisEnv(), ...front, ...env },
        { clock: setup.clock.now },
      );
      gateways.push(running);
      // The lists' fetch would take a canned answer the test queues.
      await waitForModelLists(running.url, undefined, env.METRICS_TOKEN);
      setup.fake.reset();
      return running;
    },
  };
  beforeAll(async () => {
    setup.fake = await startFakeUpstream();
    setup.redis = backend === 'redis' ? await startRedis() : undefined;
  });
  afterAll(async () => {
    await setup.fake.close();
    await setup.redis?.stop();
  });
  beforeEach(async () => {
    setup.fake.reset();
    setup.clock.set(LIMITS_START);
    if (setup.redis) {
      const client = new Redis(setup.redis.url);
      await client.flushall();
      client.disconnect();
    }
  });
  afterEach(async () => {
    for (const running of gateways.splice(0)) await running.close();
  });
  return setup;
}

export const AUTH = { authorization: `Bearer ${TEST_CLIENT_KEY}` };

/** The headers Open WebUI sends for one of its users. */
export function as(user: string): Record<string, string> {
  return { ...AUTH, 'x-openwebui-user-id': user };
}

/** A miss for `user` that costs `cents` cents. */
export function spend(setup: LimitedGateways, running: RunningGateway, user: string, cents: number, freeTokens = 0) {
  setup.fake.queue.push(paidAnswer(cents, freeTokens));
  return chat(running, chatBody(unique('spend')), as(user));
}
