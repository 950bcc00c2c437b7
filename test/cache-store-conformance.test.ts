/**
 * One behavioural suite every CacheStore must pass (the undici cache-store pattern): the embedded
 * LRU and Redis are interchangeable behind the interface, so they are held to the same tests.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryStore } from '../src/cache/memory-store.js';
import { RedisStore } from '../src/cache/redis-store.js';
import type { CacheStore } from '../src/cache/store.js';
import { redisForTests } from './helpers/redis-server.js';

interface StoreHarness {
  store: CacheStore;
  teardown(): Promise<void>;
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
      got.forEach((value, i) => expect(value?.toString()).toBe(`value ${i}`));
    });

    it('answers ping', async () => {
      expect(await store.ping()).toBe(true);
      expect(store.isUp()).toBe(true);
    });
  });
}

describeCacheStore('memory', async () => {
  const store = new MemoryStore({ maxBytes: 64 * 1024 * 1024 });
  return { store, teardown: () => store.close() };
});

describeCacheStore('redis', async () => {
  const server = await redisForTests();
  // A generous timeout: this suite checks behaviour, not speed, on a possibly busy CI box.
  const store = await RedisStore.connect(server.url, { commandTimeoutMs: 5_000 });
  return {
    store,
    teardown: async () => {
      await store.close();
      await server.stop();
    },
  };
});
