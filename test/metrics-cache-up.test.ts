/**
 * gateway_cache_up and gateway_cache_errors_total against a real redis-server: killed, the gauge
 * drops to 0 and failed operations are counted while requests are still served (BYPASS);
 * restarted, the gauge returns to 1 without a gateway restart. A hung server (SIGSTOP) too.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeUpstream, type FakeUpstream } from './helpers/fake-upstream.js';
import { startGateway, type RunningGateway } from './helpers/gateway.js';
import { scrape, waitForModelLists, type Scrape } from './helpers/metrics-scrape.js';
import { startRedis, type RedisServer } from './helpers/redis-server.js';

let fake: FakeUpstream;
let redis: RedisServer;
let gw: RunningGateway;

async function ask(content: string): Promise<{ status: number; cache: string | null }> {
  const response = await fetch(`${gw.baseURL}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content }] }),
  });
  await response.arrayBuffer();
  return { status: response.status, cache: response.headers.get('x-cache') };
}

/** Scrapes until the condition holds (the gauge follows connection events, not our clock). */
async function scrapeUntil(condition: (s: Scrape) => boolean, what: string, timeoutMs = 10_000): Promise<Scrape> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const current = await scrape(gw.url);
    if (condition(current)) return current;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const up = (s: Scrape) => s.sum('gateway_cache_up');

beforeAll(async () => {
  fake = await startFakeUpstream();
  redis = await startRedis();
  gw = await startGateway(fake, { REDIS_URL: redis.url, REDIS_COMMAND_TIMEOUT_MS: '200' });
  await waitForModelLists(gw.url);
});
afterAll(async () => {
  await gw?.close();
  await redis?.stop();
  await fake?.close();
});

describe('gateway_cache_up with Redis', () => {
  it('is 1 while Redis answers, and the cache works', async () => {
    const first = await scrape(gw.url);
    expect(up(first)).toBe(1);
    expect(first.sum('gateway_cache_errors_total')).toBe(0);
    expect((await ask('before the crash')).cache).toBe('MISS');
    // The entry is written after the answer: wait for the HIT rather than guess a delay.
    const deadline = Date.now() + 5_000;
    let second = await ask('before the crash');
    while (second.cache !== 'HIT' && Date.now() < deadline) second = await ask('before the crash');
    expect(second.cache).toBe('HIT');
  });

  it('drops to 0 when redis-server is killed; requests are still answered (BYPASS) and failed operations counted', async () => {
    const before = await scrape(gw.url);
    redis.kill();
    await scrapeUntil((s) => up(s) === 0, 'gateway_cache_up to drop to 0');
    const answer = await ask('while Redis is dead');
    expect(answer).toEqual({ status: 200, cache: 'BYPASS' });
    const after = await scrape(gw.url);
    expect(up(after)).toBe(0);
    expect(after.sum('gateway_cache_errors_total')).toBeGreaterThan(before.sum('gateway_cache_errors_total'));
    expect(after.sum('gateway_cache_errors_total', { op: 'get' }) - before.sum('gateway_cache_errors_total', { op: 'get' })).toBe(1);
    expect(after.sum('gateway_requests_total', { cache: 'BYPASS', status: '200', endpoint: 'chat.completions' })).toBe(1);
    // Only contract op names, never an error text, as label values.
    for (const op of after.labelValues('gateway_cache_errors_total', 'op')) expect(['get', 'set', 'delete', 'connect']).toContain(op);
  });

  it('returns to 1 after redis-server restarts, without restarting the gateway, and caching resumes', async () => {
    await redis.restart();
    await scrapeUntil((s) => up(s) === 1, 'gateway_cache_up to return to 1');
    expect((await ask('after the restart')).cache).toBe('MISS');
  });

  it('drops to 0 when Redis hangs (a command times out), and returns when it answers again', async () => {
    const before = await scrape(gw.url);
    redis.pause();
    try {
      const answer = await ask('while Redis hangs');
      expect(answer).toEqual({ status: 200, cache: 'BYPASS' });
      const hung = await scrape(gw.url);
      expect(up(hung)).toBe(0);
      expect(hung.sum('gateway_cache_errors_total', { op: 'get' })).toBeGreaterThan(before.sum('gateway_cache_errors_total', { op: 'get' }));
    } finally {
      redis.resume();
    }
    // The next request's lookup succeeds and the gauge follows (the periodic ping would too, later).
    const deadline = Date.now() + 10_000;
    let current = await scrape(gw.url);
    while (up(current) !== 1 && Date.now() < deadline) {
      await ask('after the hang');
      current = await scrape(gw.url);
    }
    expect(up(current)).toBe(1);
  });
});
