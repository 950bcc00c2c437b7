/**
 * Two gateway replicas on a real Redis Cluster (3 masters, 3 replicas): they share every entry,
 * a batch of concurrent hits whose keys live on all three masters is read in one loop turn
 * without a cross-slot error, and a master killed under traffic costs no failed request: answers
 * are BYPASS while the cluster fails over, and caching resumes on the promoted replica.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chat, chatBody, unique, untilStored } from './helpers/cache-e2e.js';
import { startFakeUpstream, type FakeUpstream } from './helpers/fake-upstream.js';
import type { RunningGateway } from './helpers/gateway.js';
import { startReplicas, steadyTraffic } from './helpers/gateway-replicas.js';
import { scrape } from './helpers/metrics-scrape.js';
import { startRedisCluster, type RedisCluster } from './helpers/redis-cluster.js';

let cluster: RedisCluster;
let fake: FakeUpstream;
let replicas: RunningGateway[];

beforeAll(async () => {
  cluster = await startRedisCluster({ nodeTimeoutMs: 1_500 });
  fake = await startFakeUpstream();
  // 400 ms: long enough for a busy machine's cluster round trip, short enough that a request
  // stuck on the dead master bypasses quickly.
  replicas = await startReplicas(fake, { REDIS_CLUSTER_NODES: cluster.seeds, REDIS_COMMAND_TIMEOUT_MS: '400' });
}, 30_000);

afterAll(async () => {
  await Promise.all((replicas ?? []).map((replica) => replica.close()));
  await fake?.close();
  await cluster?.stop();
});

describe('two replicas on a Redis Cluster', () => {
  it('share entries: a miss on one replica is a hit on the other, for keys on every master, read in one batch', async () => {
    const prompts = Array.from({ length: 24 }, () => unique('cluster'));
    for (const [i, prompt] of prompts.entries()) {
      const first = await chat(replicas[i % 2]!, chatBody(prompt));
      expect(first.status).toBe(200);
      expect(first.xCache).toBe('MISS');
    }
    // The entries sit on all three masters (24 hashed keys: a master without any is a 1-in-16,000 chance).
    const holders = new Set((await cluster.keysByMaster()).values());
    expect(holders.size).toBe(3);
    const callsBefore = fake.completionCalls().length;
    // Concurrent: the reads of one loop turn go out together, across slots and nodes.
    const answers = await Promise.all(prompts.map((prompt, i) => untilStored(() => chat(replicas[(i + 1) % 2]!, chatBody(prompt)))));
    expect(answers.map((answer) => answer.xCache)).toEqual(prompts.map(() => 'HIT'));
    expect(fake.completionCalls().length).toBe(callsBefore);
    const metrics = await scrape(replicas[1]!.url);
    expect(metrics.sum('gateway_cache_up')).toBe(1);
    expect(metrics.sum('gateway_cache_errors_total')).toBe(0);
  }, 30_000);

  it('a master killed under traffic: no request fails, BYPASS while it fails over, caching resumes after the promotion', async () => {
    const prompts = Array.from({ length: 6 }, () => unique('failover'));
    for (const prompt of prompts) await untilStored(() => chat(replicas[0]!, chatBody(prompt)));
    const holders = await cluster.keysByMaster();
    const victim = [...holders.values()][0]!;
    await sleep(200); // the entries reach the victim's replica (asynchronous replication)

    const traffic = steadyTraffic(replicas, prompts);
    await sleep(300);
    const killedAt = Date.now();
    victim.kill();
    await cluster.waitUntilHealthy(20_000);
    const promotedAt = Date.now();
    await sleep(1_500);
    await traffic.stop();

    const failed = traffic.samples.filter((sample) => sample.status !== 200);
    expect(failed).toEqual([]);
    const during = traffic.samples.filter((sample) => sample.at > killedAt && sample.at < promotedAt);
    expect(during.length).toBeGreaterThan(0);
    expect(during.some((sample) => sample.xCache === 'BYPASS')).toBe(true);
    // Every answer came from the cache or, while it was away, from upstream (BYPASS).
    const outcomes = new Set(traffic.samples.map((sample) => sample.xCache));
    expect([...outcomes].filter((outcome) => !['HIT', 'BYPASS', 'COALESCED'].includes(outcome ?? ''))).toEqual([]);

    // After the promotion: every entry is readable again on both replicas (the replica had them)…
    for (const prompt of prompts) {
      for (const replica of replicas) expect((await untilStored(() => chat(replica, chatBody(prompt)), 10_000)).xCache).toBe('HIT');
    }
    // …and a new answer whose key lives on the promoted master is stored and shared.
    const promoted = await cluster.masterOf([...holders.entries()].find(([, node]) => node === victim)![0]);
    expect(promoted.port).not.toBe(victim.port);
    let fresh: string | undefined;
    for (let i = 0; i < 40 && fresh === undefined; i++) {
      const prompt = unique('promoted');
      expect((await chat(replicas[0]!, chatBody(prompt))).xCache).toBe('MISS');
      const other = await untilStored(() => chat(replicas[1]!, chatBody(prompt)), 5_000);
      expect(other.xCache).toBe('HIT');
      const now = await cluster.keysByMaster();
      if ([...now.entries()].some(([key, node]) => node === promoted && !holders.has(key))) fresh = prompt;
    }
    expect(fresh).toBeDefined();
    expect((await scrape(replicas[0]!.url)).sum('gateway_cache_up')).toBe(1);
  }, 50_000);
});
