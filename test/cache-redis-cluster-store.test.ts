/**
 * The Redis store on a real Redis Cluster (3 masters, 3 replicas): reads of one loop turn whose
 * keys live in different slots and on different nodes come back right (a plain MGET would be
 * refused as cross-slot); with a master killed every read settles within the command timeout
 * (it fails, so the request bypasses; none hangs), and after the promotion reads and writes work
 * again, on the promoted replica.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisStore } from '../src/cache/redis-store.js';
import { keySlot } from '../src/cache/redis-slots.js';
import { ReplicaFlights } from '../src/pipeline/replica-flights.js';
import { startRedisCluster, type RedisCluster } from './helpers/redis-cluster.js';

let cluster: RedisCluster;
let store: RedisStore;
const errors: string[] = [];

beforeAll(async () => {
  cluster = await startRedisCluster({ nodeTimeoutMs: 1_500 });
  store = await RedisStore.connect(
    { kind: 'cluster', nodes: cluster.nodes.map((node) => ({ host: '127.0.0.1', port: node.port })), password: undefined },
    { commandTimeoutMs: 400, onError: (op) => errors.push(op) },
  );
}, 30_000);

afterAll(async () => {
  await store?.close();
  await cluster?.stop();
});

const keysOf = (label: string, count: number): string[] => Array.from({ length: count }, (_, i) => `cachegate:test:${label}:${i}`);

describe('RedisStore on a Redis Cluster', () => {
  it('says which backend it is and is up', () => {
    expect(store.label).toBe('redis-cluster');
    expect(store.isUp()).toBe(true);
  });

  it("coalescing's lease, announcements and answer stream work on a Cluster (one slot per key by hash tag)", async () => {
    const flights = new ReplicaFlights(store.redisClient(), 5_000);
    const key = 'gw:v1:cluster-flight';
    const leader = await flights.claim(key);
    expect(leader.leader).toBe(true);
    const follower = await flights.claim(key);
    expect(follower).toEqual({ leader: false, token: leader.token });
    flights.announceFollower(key, leader.token);
    expect(await flights.renew(key, leader.token)).toBe(1);
    const head = { statusCode: 200, headers: {} };
    const by = { provider: 'openai', model: 'gpt-4o-mini', upstreamModel: 'gpt-4o-mini', fellBack: false };
    await flights.publish(key, leader.token, [
      { kind: 'head', head, by },
      { kind: 'event', data: 'data: {}\n\n', usageOnly: false },
    ]);
    const first = await flights.read(key, leader.token, '0');
    expect(first.records.map((record) => record.kind)).toEqual(['head', 'event']);
    expect(first.holder).toBe(leader.token);
    await flights.publish(key, leader.token, [{ kind: 'completed', head, by, json: '{}' }]);
    expect(await flights.finish(key, leader.token)).toBe(1);
    const rest = await flights.read(key, leader.token, first.lastId);
    expect(rest.records.map((record) => record.kind)).toEqual(['completed']);
    expect(errors).toEqual([]);
  });

  it('a batch of reads across slots and nodes: every value, no error', async () => {
    const keys = keysOf('batch', 60);
    expect(new Set(keys.map(keySlot)).size).toBeGreaterThan(50);
    await Promise.all(keys.map((key, i) => store.set(key, Buffer.from(`value ${i}`), 60)));
    // Issued in one loop turn: they go out as one batch.
    const values = await Promise.all([...keys, 'cachegate:test:absent'].map((key) => store.get(key)));
    expect(values.map((value) => value?.toString())).toEqual([...keys.map((_, i) => `value ${i}`), undefined]);
    expect(errors).toEqual([]);
  });

  it('a master killed: reads settle within the command timeout; after the promotion they work again', async () => {
    const keys = keysOf('failover', 30);
    await Promise.all(keys.map((key) => store.set(key, Buffer.from(key), 60)));
    const victim = await cluster.masterOf(keys[0]!);
    // Every write replicated to the victim's replica before it dies (a fixed pause was too short
    // on a loaded machine: the promoted replica then lacked some of the keys).
    const direct = new Redis({ host: '127.0.0.1', port: victim.port });
    try {
      // WAIT covers this connection's writes, and the replication stream keeps their order: one
      // write of the same value here, acknowledged, means every earlier write arrived too.
      await direct.call('SET', keys[0]!, keys[0]!, 'KEEPTTL');
      expect(Number(await direct.call('WAIT', '1', '10000'))).toBe(1);
    } finally {
      direct.disconnect();
    }
    victim.kill();
    // While the cluster notices and fails over, reads answer or fail, each within the bound.
    const outage = Date.now() + 2_000;
    let failures = 0;
    while (Date.now() < outage) {
      const started = performance.now();
      const settled = await Promise.allSettled(keys.map((key) => store.get(key)));
      expect(performance.now() - started).toBeLessThan(400 + 600);
      failures += settled.filter((result) => result.status === 'rejected').length;
    }
    expect(failures).toBeGreaterThan(0);
    await cluster.waitUntilHealthy(20_000);
    const deadline = Date.now() + 10_000;
    let values: Array<Buffer | undefined> = [];
    while (Date.now() < deadline) {
      values = await Promise.all(keys.map((key) => store.get(key))).catch(() => []);
      if (values.length === keys.length) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(values.map((value) => value?.toString())).toEqual(keys);
    await store.set(keys[0]!, Buffer.from('after'), 60);
    expect((await store.get(keys[0]!))?.toString()).toBe('after');
    expect((await cluster.masterOf(keys[0]!)).port).not.toBe(victim.port);
  }, 40_000);
});
