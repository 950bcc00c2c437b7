/**
 * One behavioural suite every CacheStore must pass (the undici cache-store pattern): the embedded
 * LRU and Redis are interchangeable behind the interface, so they are held to the same tests.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryStore } from '../src/cache/memory-store.js';
import { RedisStore } from '../src/cache/redis-store.js';
import { readStore } from '../src/cache/store-read.js';
import { CacheStoreError, type CacheStore } from '../src/cache/store.js';
import { until } from './helpers/raw-socket.js';
import { redisForTests, startRedis } from './helpers/redis-server.js';
import { ThrowingStore } from './helpers/throwing-store.js';

interface StoreHarness {
  store: CacheStore;
  /** The backend holds its entries in this process: get() and ping() answer with the value itself. */
  answersAtOnce: boolean;
  teardown(): Promise<void>;
}

function isPromise(value: unknown): boolean {
  return typeof (value as { then?: unknown } | undefined)?.then === 'function';
}

function describeCacheStore(name: string, open: () => Promise<StoreHarness>): void {
  describe(`CacheStore conformance: ${name}`, () => {
    let harness: StoreHarness;
    let store: CacheStore;
    // Unique per run so a shared REDIS_URL server never mixes runs.
    const prefix = `test:${randomUUID()}:`;
    const key = (suffix: string): string => prefix + suffix;

    beforeAll(async () => {
      harness = await open();
      store = harness.store;
    });
    afterAll(async () => {
      await harness.teardown();
    });

    it('misses on an unknown key', async () => {
      expect(await store.get(key('absent'))).toBeUndefined();
    });

    it('returns what was set, overwrites, and deletes', async () => {
      await store.set(key('a'), Buffer.from('first'), 60);
      expect((await store.get(key('a')))?.toString()).toBe('first');
      await store.set(key('a'), Buffer.from('second'), 60);
      expect((await store.get(key('a')))?.toString()).toBe('second');
      await store.delete(key('a'));
      expect(await store.get(key('a'))).toBeUndefined();
      await store.delete(key('never-set')); // deleting a missing key is not an error
    });

    it('expires an entry after its TTL while a ttl-0 entry stays', async () => {
      await store.set(key('short'), Buffer.from('x'), 1);
      await store.set(key('forever'), Buffer.from('y'), 0);
      expect((await store.get(key('short')))?.toString()).toBe('x');
      const deadline = Date.now() + 6_000;
      while ((await store.get(key('short'))) !== undefined && Date.now() < deadline) await sleep(100);
      expect(await store.get(key('short'))).toBeUndefined();
      expect((await store.get(key('forever')))?.toString()).toBe('y');
    });

    it('is binary-safe: every byte value, NUL bytes, and an empty value', async () => {
      const allBytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
      const zeros = Buffer.alloc(1024);
      await store.set(key('bin'), allBytes, 60);
      await store.set(key('zeros'), zeros, 60);
      await store.set(key('empty'), Buffer.alloc(0), 60);
      expect((await store.get(key('bin')))?.equals(allBytes)).toBe(true);
      expect((await store.get(key('zeros')))?.equals(zeros)).toBe(true);
      expect((await store.get(key('empty')))?.length).toBe(0);
    });

    it('stores a large value intact', async () => {
      const big = randomBytes(4 * 1024 * 1024);
      await store.set(key('big'), big, 60);
      expect((await store.get(key('big')))?.equals(big)).toBe(true);
    });

    it('keeps one whole value when concurrent writers race on one key', async () => {
      const values = Array.from({ length: 40 }, (_, i) => Buffer.alloc(10_000, i));
      await Promise.all(values.map((v) => store.set(key('race'), v, 60)));
      const got = await store.get(key('race'));
      expect(got).toBeDefined();
      expect(values.some((v) => v.equals(got as Buffer))).toBe(true);
    });

    it('keeps every value when concurrent writers use different keys', async () => {
      const entries = Array.from({ length: 200 }, (_, i) => [key(`many:${i}`), Buffer.from(`value ${i}`)] as const);
      await Promise.all(entries.map(([k, v]) => store.set(k, v, 60)));
      const got = await Promise.all(entries.map(([k]) => store.get(k)));
      for (const [i, value] of got.entries()) expect(value?.toString()).toBe(`value ${i}`);
    });

    it('answers ping', async () => {
      expect(await store.ping()).toBe(true);
      expect(store.isUp()).toBe(true);
    });

    it('answers a read with the value itself when it holds its entries here, else with a promise', async () => {
      await store.set(key('form'), Buffer.from('held'), 60);
      const hit = store.get(key('form'));
      const miss = store.get(key('form-absent'));
      const pong = store.ping();
      expect(isPromise(hit)).toBe(!harness.answersAtOnce);
      expect(isPromise(miss)).toBe(!harness.answersAtOnce);
      expect(isPromise(pong)).toBe(!harness.answersAtOnce);
      if (harness.answersAtOnce) {
        // No promise to wait for: the hit fast path reads the embedded store in the request's own turn.
        expect(Buffer.isBuffer(hit) && hit.toString()).toBe('held');
        expect(miss).toBeUndefined();
        expect(pong).toBe(true);
      }
      expect((await hit)?.toString()).toBe('held');
      expect(await miss).toBeUndefined();
    });

    it('is read by readStore in the form it answers: a hit, a miss, never a failure', async () => {
      await store.set(key('read'), Buffer.from('through'), 60);
      const hit = readStore(store, key('read'));
      const miss = readStore(store, key('read-absent'));
      expect(isPromise(hit)).toBe(!harness.answersAtOnce);
      expect(isPromise(miss)).toBe(!harness.answersAtOnce);
      expect(await hit).toEqual({ failed: false, value: Buffer.from('through') });
      expect(await miss).toEqual({ failed: false, value: undefined });
    });
  });
}

describeCacheStore('memory', async () => {
  const store = new MemoryStore({ maxBytes: 64 * 1024 * 1024 });
  return { store, answersAtOnce: true, teardown: () => store.close() };
});

describeCacheStore('redis', async () => {
  const server = await redisForTests();
  // A generous timeout: this suite checks behaviour, not speed, on a possibly busy CI box.
  const store = await RedisStore.connect(server.url, { commandTimeoutMs: 5_000 });
  return {
    store,
    answersAtOnce: false,
    teardown: async () => {
      await store.close();
      await server.stop();
    },
  };
});

describe('a store that cannot answer: the read fails open', () => {
  it('a Redis that is down rejects its reads, and readStore resolves to a failure instead', async () => {
    const redis = await startRedis();
    const store = await RedisStore.connect(redis.url, { commandTimeoutMs: 1_000, maxReconnectDelayMs: 200 });
    try {
      await store.set('k', Buffer.from('v'), 60);
      expect(await readStore(store, 'k')).toEqual({ failed: false, value: Buffer.from('v') });
      redis.kill();
      expect(await until(() => !store.isUp(), 5_000)).toBe(true);
      await expect(store.get('k')).rejects.toThrow(CacheStoreError);
      const read = readStore(store, 'k');
      expect(isPromise(read)).toBe(true);
      expect(await read).toEqual({ failed: true });
      expect(await store.ping()).toBe(false);
    } finally {
      await store.close();
      await redis.stop();
    }
  });

  it('a read that throws at once comes back as a failure at once, not as a throw', () => {
    const store = new ThrowingStore();
    expect(() => store.get()).toThrow('the store is broken');
    expect(readStore(store, 'k')).toEqual({ failed: true });
  });
});
