/**
 * Counters in Redis are shared by replicas, and Redis never decides whether a request is served:
 * two gateway processes on one redis-server enforce one budget between them (and report the same
 * spend); while Redis does not answer, requests are still served and counted by the replica, and
 * what it counted meanwhile reaches Redis when it answers again.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { chat, chatBody, unique } from './helpers/cache-e2e.js';
import { startFakeUpstream, type FakeUpstream } from './helpers/fake-upstream.js';
import { startGatedUpstream, type GatedUpstream } from './helpers/gated-upstream.js';
import { fakeUpstreamEnv, type RunningGateway, TEST_CLIENT_KEY } from './helpers/gateway.js';
import { untilReplicasMeet } from './helpers/gateway-replicas.js';
import { startGatewayProcess } from './helpers/gateway-process.js';
import { as, centPerPromptTokenPrices, paidAnswer, spend, useLimitedGateways } from './helpers/limits.js';
import { scrape, waitForModelLists } from './helpers/metrics-scrape.js';
import { Redis } from 'ioredis';
import { startRedis, type RedisServer } from './helpers/redis-server.js';

describe('two gateway processes sharing one Redis', () => {
  let fake: FakeUpstream;
  let redis: RedisServer;
  beforeAll(async () => {
    fake = await startFakeUpstream();
    redis = await startRedis();
  });
  afterAll(async () => {
    await fake.close();
    await redis.stop();
  });

  it('enforce one budget between them, at the cent, and report the same spend', { timeout: 90_000 }, async () => {
    const env = { ...fakeUpstreamEnv(fake), LOG_LEVEL: 'info', REDIS_URL: redis.url, PRICES_FILE: centPerPromptTokenPrices(), BUDGET_DAILY_USD: '0.03' };
    const [one, two] = await Promise.all([startGatewayProcess(env), startGatewayProcess(env)]);
    try {
      await Promise.all([waitForModelLists(one.url), waitForModelLists(two.url)]);
      fake.reset();
      const send = async (url: string, user: string) => {
        const response = await fetch(`${url}/v1/chat/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-openwebui-user-id': user },
          body: JSON.stringify(chatBody(unique('replica'))),
        });
        return { status: response.status, body: await response.text() };
      };
      fake.queue.push(paidAnswer(1), paidAnswer(1), paidAnswer(1));
      expect((await send(one.url, 'ann')).status).toBe(200);
      expect((await send(two.url, 'bob')).status).toBe(200);
      expect((await send(one.url, 'bob')).status).toBe(200);
      for (const url of [two.url, one.url]) {
        const refused = await send(url, 'carl');
        expect(refused.status).toBe(429);
        expect(JSON.parse(refused.body).error.message).toMatch(/^This gateway's daily budget of \$0\.03 is spent \(\$0\.03 used today\)/);
      }
      expect(fake.completionCalls()).toHaveLength(3);
      for (const url of [one.url, two.url]) {
        const metrics = await scrape(url);
        expect(metrics.sum('gateway_budget_spent_usd', { budget: 'daily' })).toBeCloseTo(0.03, 9);
        const usage = await (await fetch(`${url}/admin/usage`)).json();
        expect(usage.day.spentUsd).toBeCloseTo(0.03, 9);
        expect(usage.users.map((user: { user: string }) => user.user)).toEqual(['bob', 'ann', 'carl']);
      }
    } finally {
      one.kill();
      two.kill();
    }
  });
});

describe('replicas coalescing on one Redis', () => {
  const setup = useLimitedGateways('redis');
  let gate: GatedUpstream;
  beforeAll(async () => {
    gate = await startGatedUpstream(setup.fake.url);
  });
  afterAll(async () => {
    gate.release();
    await gate.close();
  });

  /**
   * A gateway process leading calls beside `follower` on the same Redis (a replica that can be
   * killed): Ann asks it, and her call waits at the gate; how many followers announced themselves
   * on its lease is read from Redis.
   */
  async function leaderBeside(follower: RunningGateway, upstream: { openaiBaseUrl: string; groqBaseUrl: string }) {
    const leader = await startGatewayProcess({
      ...fakeUpstreamEnv(upstream),
      PORT: '0',
      LOG_LEVEL: 'info',
      GATEWAY_API_KEYS: TEST_CLIENT_KEY,
      ...setup.redisEnv(),
    });
    const inspector = new Redis(setup.redis!.url);
    const close = (): void => {
      gate.release();
      inspector.disconnect();
      leader.kill();
    };
    try {
      await waitForModelLists(leader.url);
      await untilReplicasMeet([leader, follower], 2);
    } catch (error) {
      close();
      throw error;
    }
    return {
      leader,
      close,
      /** Ann's request, once her call waits at the gate; `answer` settles when the leader dies. */
      async annAsksHeld(body: unknown): Promise<{ answer: Promise<unknown> }> {
        gate.hold();
        const answer = fetch(`${leader.url}/v1/chat/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...as('ann') },
          body: JSON.stringify(body),
        }).catch(() => undefined);
        await expect.poll(() => gate.waiting, { timeout: 5_000 }).toBe(1);
        // Wrapped: an async function returning the promise itself would wait for it.
        return { answer };
      },
      async announcedFollowers(): Promise<number> {
        const leases = (await inspector.keys('cachegate:flight:*')).filter((key) => key.endsWith('}'));
        return (await Promise.all(leases.map((lease) => inspector.hget(lease, 'f')))).reduce((sum, f) => sum + Number(f ?? 0), 0);
      },
    };
  }

  it("a user past their budget still follows another replica's call (COALESCED), and only the leader's user pays", async () => {
    const upstream = { openaiBaseUrl: `${gate.url}/v1`, groqBaseUrl: `${gate.url}/openai/v1` };
    const one = await setup.start({ USER_BUDGET_DAILY_USD: '0.01' }, upstream);
    const two = await setup.start({ USER_BUDGET_DAILY_USD: '0.01' }, upstream);
    // Until the replicas found each other in Redis, each takes its misses alone.
    await untilReplicasMeet([one, two], 2);
    gate.calls.splice(0);
    expect((await spend(setup, two, 'bob', 1)).status).toBe(200);
    expect((await chat(two, chatBody(unique('bob again')), as('bob'))).status).toBe(429);
    // Ann leads a call on one replica; Bob asks the same on the other while it runs.
    const same = chatBody(unique('asked on both replicas'));
    gate.hold();
    setup.fake.queue.push(paidAnswer(1));
    const annAnswer = chat(one, same, as('ann'));
    await expect.poll(() => gate.calls.length, { timeout: 5_000 }).toBe(2);
    const bobAnswer = chat(two, same, as('bob'));
    await new Promise((resolve) => setTimeout(resolve, 300));
    gate.release();
    const [ann, bob] = await Promise.all([annAnswer, bobAnswer]);
    expect(ann.status).toBe(200);
    expect(ann.xCache).toBe('MISS');
    expect(bob.status).toBe(200);
    expect(bob.xCache).toBe('COALESCED');
    expect(gate.calls).toHaveLength(2);
    const usage = await (await fetch(`${one.url}/admin/usage`)).json();
    const spentBy = Object.fromEntries(usage.users.map((u: { user: string; day: { spentUsd: number } }) => [u.user, u.day.spentUsd]));
    expect(spentBy).toEqual({ ann: 0.01, bob: 0.01 });
  });
  it("a call taken over from a replica that died is a paid call like any: refused while the follower's user is past the budget", async () => {
    const upstream = { openaiBaseUrl: `${gate.url}/v1`, groqBaseUrl: `${gate.url}/openai/v1` };
    const two = await setup.start({ USER_BUDGET_DAILY_USD: '0.01' }, upstream);
    expect((await spend(setup, two, 'bob', 1)).status).toBe(200);
    expect((await chat(two, chatBody(unique('bob again')), as('bob'))).status).toBe(429);
    const leading = await leaderBeside(two, upstream);
    try {
      const same = chatBody(unique('leader dies'));
      const callsBefore = gate.calls.length;
      const { answer: doomed } = await leading.annAsksHeld(same);
      const bobAnswer = chat(two, same, as('bob'));
      // Bob follows Ann's call (announced on its lease), then the replica holding it dies.
      await expect.poll(leading.announcedFollowers, { timeout: 5_000 }).toBe(1);
      leading.leader.kill();
      await doomed;
      const bob = await bobAnswer;
      expect(bob.status).toBe(429);
      expect(JSON.parse(bob.text).error.code).toBe('budget_exceeded');
      expect(bob.xCache).toBe('BYPASS');
      // Nothing was sent upstream for Bob: only the dead leader's call went through the gate.
      expect(gate.calls.length - callsBefore).toBe(1);
    } finally {
      leading.close();
    }
  }, 30_000);

  it('a taken-over call refused for one user is paid by the next user still waiting: only the spent user is refused', async () => {
    const upstream = { openaiBaseUrl: `${gate.url}/v1`, groqBaseUrl: `${gate.url}/openai/v1` };
    const two = await setup.start({ USER_BUDGET_DAILY_USD: '0.01' }, upstream);
    expect((await spend(setup, two, 'bob', 1)).status).toBe(200);
    const leading = await leaderBeside(two, upstream);
    try {
      const same = chatBody(unique('leader dies, two users wait'));
      const callsBefore = gate.calls.length;
      const { answer: doomed } = await leading.annAsksHeld(same);
      // Bob (past his budget) follows Ann's call first, then Carl (within his) asks the same on that replica.
      const bobAnswer = chat(two, same, as('bob'));
      await expect.poll(leading.announcedFollowers, { timeout: 5_000 }).toBe(1);
      const carlAnswer = chat(two, same, as('carl'));
      await new Promise((resolve) => setTimeout(resolve, 300));
      setup.fake.queue.push(paidAnswer(1));
      leading.leader.kill();
      await doomed;
      // The answer Carl's call takes over with is not held back.
      gate.release();
      const [bob, carl] = await Promise.all([bobAnswer, carlAnswer]);
      expect(bob.status).toBe(429);
      expect(JSON.parse(bob.text).error.code).toBe('budget_exceeded');
      // Refused before any upstream call, like any refusal: no answer rode on a call for him.
      expect(bob.xCache).toBe('BYPASS');
      expect(carl.status).toBe(200);
      expect(carl.xCache).toBe('MISS');
      // The dead leader's call, then Carl's: none for Bob.
      expect(gate.calls.length - callsBefore).toBe(2);
      const usage = await (await fetch(`${two.url}/admin/usage`)).json();
      const spentBy = Object.fromEntries(usage.users.map((u: { user: string; day: { spentUsd: number } }) => [u.user, u.day.spentUsd]));
      expect(spentBy.carl).toBeCloseTo(0.01, 9);
      expect(spentBy.bob).toBeCloseTo(0.01, 9);
    } finally {
      leading.close();
    }
  }, 30_000);
});

describe('while Redis does not answer', () => {
  const setup = useLimitedGateways('redis');
  beforeEach(() => setup.redis?.resume());

  it('requests are served and counted by the replica, and the count reaches Redis when it answers again', async () => {
    const running = await setup.start({ BUDGET_DAILY_USD: '0.03', REDIS_COMMAND_TIMEOUT_MS: '150' });
    expect((await spend(setup, running, 'ann', 1)).status).toBe(200);
    setup.redis!.pause();
    try {
      // Served (from upstream: the cache is down too), never refused for the outage.
      const during = await spend(setup, running, 'bob', 1);
      expect(during.status).toBe(200);
      expect((await spend(setup, running, 'ann', 1)).status).toBe(200);
      // The budget still holds on what this replica knows: $0.01 seen in Redis plus $0.02 since.
      const refused = await chat(running, chatBody(unique('over')), as('carl'));
      expect(refused.status).toBe(429);
      expect(JSON.parse(refused.text).error.code).toBe('budget_exceeded');
      expect(running.logs.some((line) => line.includes('usage counters: Redis does not answer'))).toBe(true);
    } finally {
      setup.redis!.resume();
    }
    // Answering again: what was counted meanwhile is sent, and Redis holds the whole day.
    await expect
      .poll(async () => (await (await fetch(`${running.url}/admin/usage`)).json()).day.spentUsd, { timeout: 10_000, interval: 200 })
      .toBeCloseTo(0.03, 9);
    const { Redis } = await import('ioredis');
    const client = new Redis(setup.redis!.url);
    const stored = await client.hget('cachegate:limits:{usage}:day:2099-06-15', 'g');
    // Each period's counters expire exactly when it ends (UTC).
    const dayEnds = await client.call('PEXPIRETIME', 'cachegate:limits:{usage}:day:2099-06-15');
    const monthEnds = await client.call('PEXPIRETIME', 'cachegate:limits:{usage}:month:2099-06');
    client.disconnect();
    expect(Number(stored)).toBe(30_000_000);
    expect(Number(dayEnds)).toBe(Date.parse('2099-06-16T00:00:00Z'));
    expect(Number(monthEnds)).toBe(Date.parse('2099-07-01T00:00:00Z'));
    expect(running.logs.some((line) => line.includes('usage counters: Redis answers again'))).toBe(true);
  });
});
