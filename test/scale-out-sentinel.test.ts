/**
 * Two gateway replicas on a real Sentinel deployment (one master, one replica, three sentinels,
 * nodes behind a password): they share entries through the master the sentinels name; the master
 * killed under traffic costs no failed request (BYPASS meanwhile) and the gateways follow the
 * failover to the promoted replica, where caching resumes.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chat, chatBody, unique, untilStored } from './helpers/cache-e2e.js';
import { startFakeUpstream, type FakeUpstream } from './helpers/fake-upstream.js';
import type { RunningGateway } from './helpers/gateway.js';
import { startReplicas, steadyTraffic } from './helpers/gateway-replicas.js';
import { scrape } from './helpers/metrics-scrape.js';
import { startRedisSentinels, type RedisSentinels } from './helpers/redis-sentinel.js';

const PASSWORD = 'fake-redis-password-for-tests';
let sentinels: RedisSentinels;
let fake: FakeUpstream;
let replicas: RunningGateway[];

beforeAll(async () => {
  sentinels = await startRedisSentinels({ masterName: 'cachegate-test', downAfterMs: 1_500, password: PASSWORD });
  fake = await startFakeUpstream();
  replicas = await startReplicas(fake, {
    REDIS_SENTINELS: sentinels.sentinels,
    REDIS_SENTINEL_MASTER: 'cachegate-test',
    REDIS_PASSWORD: PASSWORD,
    REDIS_COMMAND_TIMEOUT_MS: '400',
  });
}, 60_000);

afterAll(async () => {
  await Promise.all((replicas ?? []).map((replica) => replica.close()));
  await fake?.close();
  await sentinels?.stop();
});

describe('two replicas on Redis Sentinel', () => {
  it('share entries through the master the sentinels name', async () => {
    const prompt = unique('sentinel');
    expect((await chat(replicas[0]!, chatBody(prompt))).xCache).toBe('MISS');
    expect((await untilStored(() => chat(replicas[1]!, chatBody(prompt)))).xCache).toBe('HIT');
    expect(fake.completionCalls()).toHaveLength(1);
    expect((await scrape(replicas[0]!.url)).sum('gateway_cache_up')).toBe(1);
  }, 20_000);

  it('the master killed under traffic: no request fails, BYPASS meanwhile, the failover is followed', async () => {
    const prompts = Array.from({ length: 4 }, () => unique('sentinel-failover'));
    for (const prompt of prompts) await untilStored(() => chat(replicas[0]!, chatBody(prompt)));
    await sleep(200); // the entries reach the replica (asynchronous replication)
    const oldMaster = sentinels.master.port;

    const traffic = steadyTraffic(replicas, prompts);
    await sleep(300);
    const killedAt = Date.now();
    sentinels.master.kill();
    const deadline = Date.now() + 25_000;
    while ((await sentinels.currentMasterPort()) === oldMaster && Date.now() < deadline) await sleep(100);
    const promotedAt = Date.now();
    expect(await sentinels.currentMasterPort()).toBe(sentinels.replica.port);
    await sleep(1_500);
    await traffic.stop();

    expect(traffic.samples.filter((sample) => sample.status !== 200)).toEqual([]);
    const during = traffic.samples.filter((sample) => sample.at > killedAt && sample.at < promotedAt);
    expect(during.some((sample) => sample.xCache === 'BYPASS')).toBe(true);

    // Both replicas read the promoted master: the old entries (replicated) and new ones.
    for (const prompt of prompts) {
      for (const replica of replicas) expect((await untilStored(() => chat(replica, chatBody(prompt)), 10_000)).xCache).toBe('HIT');
    }
    const fresh = unique('after-failover');
    expect((await chat(replicas[1]!, chatBody(fresh))).xCache).toBe('MISS');
    expect((await untilStored(() => chat(replicas[0]!, chatBody(fresh)), 5_000)).xCache).toBe('HIT');
    for (const replica of replicas) expect((await scrape(replica.url)).sum('gateway_cache_up')).toBe(1);
  }, 50_000);
});
