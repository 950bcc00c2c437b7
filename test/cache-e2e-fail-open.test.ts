/**
 * End to end: the cache fails open. A real redis-server is killed in the middle of a run
 * of requests and started again: no request fails, answers are X-Cache: BYPASS meanwhile (from
 * upstream), and hits come back on their own once Redis is back. A frozen Redis (SIGSTOP) too.
 */
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { CACHE_KEY_PREFIX } from '../src/cache/key.js';
import { chat, chatBody, parseStream, unique, until, useGateway, type GatewayResponse } from './helpers/cache-e2e.js';
import type { RunningGateway } from './helpers/gateway.js';

interface Traffic {
  results: GatewayResponse[];
  stop(): Promise<void>;
}

/** Sends requests one after another until stopped: a cached body and fresh ones, JSON and streams. */
function steadyTraffic(gateway: RunningGateway, cachedBody: Record<string, unknown>): Traffic {
  const results: GatewayResponse[] = [];
  let running = true;
  const loop = (async () => {
    for (let i = 0; running && i < 2_000; i++) {
      const body = i % 3 === 0 ? chatBody(unique('fresh')) : cachedBody;
      results.push(await chat(gateway, i % 2 === 0 ? body : { ...body, stream: true }));
    }
  })();
  return {
    results,
    async stop() {
      running = false;
      await loop;
    },
  };
}

async function readyStatus(gateway: RunningGateway): Promise<number> {
  return (await fetch(`${gateway.url}/readyz`)).status;
}

describe('fail-open with a real Redis', () => {
  // Long enough for a busy box, short enough that requests to a frozen Redis give up quickly.
  const setup = useGateway('redis', { env: { REDIS_COMMAND_TIMEOUT_MS: '1000' } });

  it('serves every request while Redis is killed and restarted; BYPASS meanwhile, hits come back', async () => {
    const redis = setup.redis;
    if (!redis) throw new Error('the Redis backend was not started');
    const cachedBody = chatBody(unique('survivor'));
    expect((await chat(setup.gateway, cachedBody)).xCache).toBe('MISS');
    expect((await chat(setup.gateway, cachedBody)).xCache).toBe('HIT');

    const traffic = steadyTraffic(setup.gateway, cachedBody);
    expect(await until(() => traffic.results.length >= 5, 5_000)).toBe(true);
    redis.kill();
    const killedAt = traffic.results.length;
    // Wait until the outage shows, and check readiness says why while it lasts.
    expect(await until(() => traffic.results.slice(killedAt).filter((r) => r.xCache === 'BYPASS').length >= 5, 10_000)).toBe(true);
    expect(await readyStatus(setup.gateway)).toBe(503);
    const duringOutage = traffic.results.length;

    await redis.restart(); // empty: the old entries are gone
    // Bounded: the store re-dials with a capped back-off and the entry is refilled by the traffic.
    const recovered = await until(() => traffic.results.slice(duringOutage).some((r) => r.xCache === 'HIT'), 15_000);
    await traffic.stop();
    expect(recovered).toBe(true);

    for (const result of traffic.results) {
      expect(result.status).toBe(200);
      if (result.headers.get('content-type')?.startsWith('text/event-stream')) expect(parseStream(result.text).done).toBe(true);
    }
    // While Redis was down, nothing claimed to come from the cache.
    const outage = traffic.results.slice(killedAt + 1, duringOutage);
    expect(outage.length).toBeGreaterThan(0);
    for (const result of outage) expect(['BYPASS']).toContain(result.xCache);
    expect(await readyStatus(setup.gateway)).toBe(200);
  });

  it('serves from upstream while Redis is frozen (SIGSTOP), then hits again after it resumes', async () => {
    const redis = setup.redis;
    if (!redis) throw new Error('the Redis backend was not started');
    const body = chatBody(unique('frozen'));
    const inspector = new Redis(redis.url);
    const entries = async (): Promise<number> => (await inspector.keys(`${CACHE_KEY_PREFIX}*`)).length;
    const before = await entries();
    await chat(setup.gateway, body);
    expect((await chat(setup.gateway, body)).xCache).toBe('HIT');
    // The entry is in Redis before it freezes: until its write ends, the answered flight would
    // serve identical requests itself (rightly a HIT, whatever Redis does meanwhile).
    expect(await until(async () => (await entries()) > before, 5_000)).toBe(true);
    inspector.disconnect();
    redis.pause();
    try {
      // One after another: overlapping identical requests would (rightly) be COALESCED.
      const answers = [
        await chat(setup.gateway, body),
        await chat(setup.gateway, { ...body, stream: true }),
        await chat(setup.gateway, chatBody(unique('new'))),
      ];
      for (const answer of answers) {
        expect(answer.status).toBe(200);
        expect(answer.xCache).toBe('BYPASS');
      }
    } finally {
      redis.resume();
    }
    expect(await until(async () => (await chat(setup.gateway, body)).xCache === 'HIT', 10_000, 100)).toBe(true);
  });
});
