/**
 * Budgets on a Redis Cluster: two gateways given the cluster's seeds share one budget (their
 * counters' keys share a hash tag, so every script runs on the one node that owns them).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chat, chatBody, unique } from './helpers/cache-e2e.js';
import { startFakeUpstream, type FakeUpstream } from './helpers/fake-upstream.js';
import { startGateway, TEST_CLIENT_KEY, type RunningGateway } from './helpers/gateway.js';
import { as, centPerPromptTokenPrices, LIMITS_START, paidAnswer, TestClock } from './helpers/limits.js';
import { waitForModelLists } from './helpers/metrics-scrape.js';
import { startRedisCluster, type RedisCluster } from './helpers/redis-cluster.js';

describe('budgets on a Redis Cluster', () => {
  let fake: FakeUpstream;
  let cluster: RedisCluster;
  const gateways: RunningGateway[] = [];
  beforeAll(async () => {
    fake = await startFakeUpstream();
    cluster = await startRedisCluster();
  }, 60_000);
  afterAll(async () => {
    for (const gateway of gateways) await gateway.close();
    await fake.close();
    await cluster.stop();
  });

  it('two gateways enforce one budget at the cent, on the node that owns the counters', async () => {
    const clock = new TestClock(Date.parse(LIMITS_START));
    const env = {
      LOG_LEVEL: 'warn',
      GATEWAY_API_KEYS: TEST_CLIENT_KEY,
      PRICES_FILE: centPerPromptTokenPrices(),
      REDIS_CLUSTER_NODES: cluster.seeds,
      REDIS_COMMAND_TIMEOUT_MS: '2000',
      BUDGET_DAILY_USD: '0.03',
    };
    for (let i = 0; i < 2; i++) gateways.push(await startGateway(fake, env, { clock: clock.now }));
    const [one, two] = gateways as [RunningGateway, RunningGateway];
    await Promise.all(gateways.map((gateway) => waitForModelLists(gateway.url)));
    fake.reset();
    for (const [gateway, user] of [
      [one, 'ann'],
      [two, 'bob'],
      [one, 'bob'],
    ] as const) {
      fake.queue.push(paidAnswer(1));
      expect((await chat(gateway, chatBody(unique('cluster')), as(user))).status).toBe(200);
    }
    for (const gateway of [two, one]) {
      const refused = await chat(gateway, chatBody(unique('over')), as('carl'));
      expect(refused.status).toBe(429);
      expect(JSON.parse(refused.text).error.message).toMatch(/^This gateway's daily budget of \$0\.03 is spent \(\$0\.03 used today\)/);
    }
    expect(fake.completionCalls()).toHaveLength(3);
    const owners = new Set([...(await cluster.keysByMaster()).entries()].filter(([key]) => key.startsWith('cachegate:limits:')).map(([, node]) => node.port));
    expect(owners.size).toBe(1);
  });
});
