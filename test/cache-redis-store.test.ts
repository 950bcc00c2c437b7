/**
 * Redis-specific behaviour the conformance suite cannot show: eviction under memory pressure,
 * failing fast while the server is dead or frozen, re-connecting by itself, start-up advice.
 */
import { Redis } from 'ioredis';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { RedisStore } from '../src/cache/redis-store.js';
import type { CacheStoreOp } from '../src/cache/store.js';
import { startRedis, type RedisServer } from './helpers/redis-server.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

async function server(args?: string[]): Promise<RedisServer> {
  const redis = await startRedis(args ? { args } : {});
  cleanups.push(() => redis.stop());
  return redis;
}

function track(store: RedisStore): RedisStore {
  cleanups.push(() => store.close());
  return store;
}

async function until(check: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await sleep(100);
  }
  return false;
}

describe('RedisStore', () => {
  it('keeps answering and keeps the newest entries when filled past maxmemory (allkeys-lru)', async () => {
    const redis = await server();
    const store = track(await RedisStore.connect(redis.url, { commandTimeoutMs: 10_000 }));
    const filler = new Redis(redis.url);
    cleanups.push(async () => void filler.disconnect());

    const megabyte = Buffer.alloc(1024 * 1024, 0x61);
    const fill = async (from: number, to: number): Promise<void> => {
      for (let batch = from; batch < to; batch += 20) {
        const pipeline = filler.pipeline();
        for (let i = batch; i < Math.min(batch + 20, to); i++) {
          megabyte.writeUInt32BE(i, 0); // each value names its index
          pipeline.set(`fill:${i}`, Buffer.from(megabyte));
        }
        const results = await pipeline.exec();
        for (const [err] of results ?? []) expect(err).toBeNull(); // evicts, never refuses (OOM)
      }
    };
    await fill(0, 300); // ~300 MB into a 256 MB server
    // Redis's LRU clock ticks once a second: entries written within the same second are equally old
    // to it. Let the first wave age, then check that a newer wave survives the next evictions.
    await sleep(2_100);
    await fill(300, 340);

    const info = await filler.info('stats');
    expect(Number(/evicted_keys:(\d+)/.exec(info)?.[1])).toBeGreaterThan(40);
    for (let i = 300; i < 340; i++) {
      const value = await store.get(`fill:${i}`);
      expect(value?.readUInt32BE(0)).toBe(i);
    }
    await store.set('after-pressure', Buffer.from('ok'), 60);
    expect((await store.get('after-pressure'))?.toString()).toBe('ok');
  });

  it('rejects quickly while the server is dead, then works again after a restart without a new store', async () => {
    const redis = await server();
    const statuses: boolean[] = [];
    const errors: CacheStoreOp[] = [];
    const store = track(
      await RedisStore.connect(redis.url, {
        commandTimeoutMs: 250,
        maxReconnectDelayMs: 200,
        onStatus: (up) => statuses.push(up),
        onError: (op) => errors.push(op),
      }),
    );
    await store.set('k', Buffer.from('v'), 60);
    expect(store.isUp()).toBe(true);

    redis.kill();
    await until(async () => !store.isUp(), 5_000);
    const started = Date.now();
    await expect(store.get('k')).rejects.toThrow(/cache get failed/);
    await expect(store.set('k', Buffer.from('w'), 60)).rejects.toThrow(/cache set failed/);
    // Bound chosen to catch queued-forever commands, not to time the client.
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(await store.ping()).toBe(false);
    expect(errors).toContain('get');
    expect(errors).toContain('set');
    expect(statuses).toContain(false);

    await redis.restart(); // an empty server: nothing persisted
    expect(await until(() => store.ping(), 10_000)).toBe(true);
    await store.set('k', Buffer.from('again'), 60);
    expect((await store.get('k'))?.toString()).toBe('again');
    expect(store.isUp()).toBe(true);
    expect(statuses.at(-1)).toBe(true);
  });

  it('rejects within the command timeout when the server hangs, and reports itself down', async () => {
    const redis = await server();
    const statuses: boolean[] = [];
    const store = track(await RedisStore.connect(redis.url, { commandTimeoutMs: 250, onStatus: (up) => statuses.push(up) }));
    await store.set('k', Buffer.from('v'), 60);

    redis.pause();
    try {
      const started = Date.now();
      await expect(store.get('k')).rejects.toThrow(/cache get failed/);
      expect(Date.now() - started).toBeLessThan(3_000);
      expect(store.isUp()).toBe(false);
      expect(statuses.at(-1)).toBe(false);
    } finally {
      redis.resume();
    }
    expect(await until(() => store.ping(), 10_000)).toBe(true);
    expect((await store.get('k'))?.toString()).toBe('v');
    expect(store.isUp()).toBe(true);
  });

  it('sends reads made in the same turn as one MGET, each caller getting its own value', async () => {
    const redis = await server();
    const errors: CacheStoreOp[] = [];
    const store = track(await RedisStore.connect(redis.url, { commandTimeoutMs: 250, onError: (op) => errors.push(op) }));
    const admin = new Redis(redis.url);
    cleanups.push(async () => void admin.disconnect());
    await store.set('a', Buffer.from([0, 1, 2]), 60);
    await store.set('c', Buffer.from('three'), 60);
    await admin.config('RESETSTAT');
    const values = await Promise.all(['a', 'b', 'c', 'a'].map((key) => store.get(key)));
    expect(values).toEqual([Buffer.from([0, 1, 2]), undefined, Buffer.from('three'), Buffer.from([0, 1, 2])]);
    // A lone read stays a plain GET.
    expect((await store.get('c'))?.toString()).toBe('three');
    const stats = await admin.info('commandstats');
    expect(/cmdstat_mget:calls=(\d+)/.exec(stats)?.[1]).toBe('1');
    expect(/cmdstat_get:calls=(\d+)/.exec(stats)?.[1]).toBe('1');

    // A batch that fails fails every read in it, each counted.
    redis.pause();
    try {
      const results = await Promise.allSettled([store.get('a'), store.get('c')]);
      expect(results.map((result) => result.status)).toEqual(['rejected', 'rejected']);
      expect(errors.filter((op) => op === 'get')).toHaveLength(2);
    } finally {
      redis.resume();
    }
  });

  it('starts while the server is unreachable and connects once it appears', async () => {
    const redis = await server();
    await redis.stop();
    const store = track(await RedisStore.connect(redis.url, { startupWaitMs: 300, maxReconnectDelayMs: 200 }));
    expect(store.isUp()).toBe(false);
    await expect(store.get('k')).rejects.toThrow(/cache get failed/);
    await redis.restart();
    expect(await until(() => store.ping(), 10_000)).toBe(true);
    expect(await store.get('k')).toBeUndefined();
  });

  it('warns at start-up when the eviction policy would refuse writes', async () => {
    const redis = await server(['--maxmemory-policy', 'noeviction']);
    const warnings: string[] = [];
    track(await RedisStore.connect(redis.url, { warn: (m) => warnings.push(m) }));
    expect(await until(async () => warnings.length > 0, 5_000)).toBe(true);
    expect(warnings[0]).toMatch(/maxmemory-policy allkeys-lru/);
  });

  it('does not warn for allkeys-lru, nor fail when CONFIG is disabled', async () => {
    const good = await server();
    const warnings: string[] = [];
    track(await RedisStore.connect(good.url, { warn: (m) => warnings.push(m) }));
    const managed = await server(['--rename-command', 'CONFIG', '']);
    const store = track(await RedisStore.connect(managed.url, { warn: (m) => warnings.push(m) }));
    await store.set('k', Buffer.from('v'), 60);
    await sleep(200);
    expect(warnings).toEqual([]);
    expect((await store.get('k'))?.toString()).toBe('v');
  });

  it('stores with EX when a TTL is given and without expiry for ttl 0', async () => {
    const redis = await server();
    const store = track(await RedisStore.connect(redis.url));
    const inspector = new Redis(redis.url);
    cleanups.push(async () => void inspector.disconnect());
    await store.set('with-ttl', Buffer.from('a'), 120);
    await store.set('no-ttl', Buffer.from('b'), 0);
    expect(await inspector.ttl('with-ttl')).toBeGreaterThan(100);
    expect(await inspector.ttl('no-ttl')).toBe(-1);
  });
});
