/** The embedded store's byte bound: what CACHE_MAX_BYTES promises an operator. */
import { describe, expect, it } from 'vitest';
import { MemoryStore, memoryStoreEntrySize } from '../src/cache/memory-store.js';

describe('MemoryStore', () => {
  it('never exceeds maxBytes and evicts the least recently used entries first', async () => {
    const store = new MemoryStore({ maxBytes: 100_000 });
    const value = Buffer.alloc(1_000, 1);
    for (let i = 0; i < 500; i++) {
      await store.set(`k${i}`, value, 0);
      if (i === 50) await store.get('k0'); // touched: becomes recent
      expect(store.calculatedSize).toBeLessThanOrEqual(100_000);
    }
    expect(await store.get('k499')).toBeDefined();
    expect(await store.get('k1')).toBeUndefined();
    // Bound is in charged bytes, so a bit under 100 entries of ~1 KB fit.
    const perEntry = memoryStoreEntrySize('k499', value);
    expect(store.entryCount).toBe(Math.floor(100_000 / perEntry));
  });

  it('does not store an entry larger than the whole bound, and keeps the others', async () => {
    const store = new MemoryStore({ maxBytes: 10_000 });
    await store.set('small', Buffer.from('s'), 0);
    await store.set('huge', Buffer.alloc(20_000), 0);
    expect(await store.get('huge')).toBeUndefined();
    expect((await store.get('small'))?.toString()).toBe('s');
    expect(store.calculatedSize).toBeLessThanOrEqual(10_000);
  });

  it('charges a pooled slice only its own bytes by copying it', async () => {
    const store = new MemoryStore({ maxBytes: 10_000 });
    const pool = Buffer.alloc(64 * 1024);
    const slice = pool.subarray(0, 10);
    slice.write('0123456789');
    await store.set('slice', slice, 0);
    pool.fill(0); // the caller reuses its pool
    const got = await store.get('slice');
    expect(got?.toString()).toBe('0123456789');
    expect(got?.buffer.byteLength).toBe(10);
  });

  it('rejects a nonsensical bound at construction', () => {
    expect(() => new MemoryStore({ maxBytes: 0 })).toThrow(RangeError);
  });
});
