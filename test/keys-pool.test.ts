import { describe, expect, it } from 'vitest';
import { isUnavailable, KeyPool, type KeyLease, type KeyUnavailable } from '../src/keys/pool.js';
import { createKeyPools, keyStateSamples, replaceAllKeys } from '../src/keys/pools.js';

function fakeClock(start = 1_000): { now: () => number; advance: (ms: number) => void } {
  let time = start;
  return { now: () => time, advance: (ms) => void (time += ms) };
}

function lease(result: KeyLease | KeyUnavailable): KeyLease {
  if (isUnavailable(result)) throw new Error(`expected a key, got ${result.unavailable}`);
  return result;
}

function takeKeys(pool: KeyPool, count: number, exclude?: ReadonlySet<string>): string[] {
  return Array.from({ length: count }, () => lease(pool.acquire(exclude)).key);
}

describe('KeyPool rotation', () => {
  it('spreads requests evenly over the keys', () => {
    const pool = new KeyPool('openai', ['k1', 'k2', 'k3']);
    const tally = new Map<string, number>();
    for (const key of takeKeys(pool, 300)) tally.set(key, (tally.get(key) ?? 0) + 1);
    expect(Object.fromEntries(tally)).toEqual({ k1: 100, k2: 100, k3: 100 });
  });

  it('hands out each lease with the key id', () => {
    const pool = new KeyPool('groq', ['only']);
    const first = lease(pool.acquire());
    expect(first.key).toBe('only');
    expect(first.id).toMatch(/^k_[0-9a-f]{10}$/);
    expect(pool.size).toBe(1);
  });

  it('ignores duplicate and empty keys', () => {
    const pool = new KeyPool('openai', ['a', '', 'a', 'b']);
    expect(pool.size).toBe(2);
    expect(takeKeys(pool, 4)).toEqual(['a', 'b', 'a', 'b']);
  });

  it('skips keys the request already tried', () => {
    const pool = new KeyPool('openai', ['a', 'b', 'c']);
    const first = lease(pool.acquire());
    const second = lease(pool.acquire(new Set([first.id])));
    const third = lease(pool.acquire(new Set([first.id, second.id])));
    expect(new Set([first.key, second.key, third.key]).size).toBe(3);
    expect(pool.acquire(new Set([first.id, second.id, third.id]))).toEqual({ unavailable: 'exhausted' });
  });

  it('has nothing to give without keys', () => {
    expect(new KeyPool('groq', []).acquire()).toEqual({ unavailable: 'empty' });
  });
});

describe('KeyPool cooldown on 429', () => {
  it('skips a cooling key for exactly its cooldown, then uses it again', () => {
    const clock = fakeClock();
    const pool = new KeyPool('openai', ['a', 'b'], { now: clock.now });
    const a = lease(pool.acquire());
    expect(a.key).toBe('a');
    pool.rateLimited(a, 5_289);

    expect(takeKeys(pool, 3)).toEqual(['b', 'b', 'b']);
    expect(pool.counts()).toEqual({ active: 1, cooling: 1, disabled: 0 });
    clock.advance(5_288);
    expect(takeKeys(pool, 2)).toEqual(['b', 'b']);
    clock.advance(1);
    expect(new Set(takeKeys(pool, 2))).toEqual(new Set(['a', 'b']));
    expect(pool.counts()).toEqual({ active: 2, cooling: 0, disabled: 0 });
  });

  it('uses the default cooldown when the provider gave no hint', () => {
    const clock = fakeClock();
    const pool = new KeyPool('openai', ['a'], { now: clock.now, defaultCooldownMs: 10_000 });
    pool.rateLimited(lease(pool.acquire()), undefined);
    clock.advance(9_999);
    expect(pool.acquire()).toEqual({ unavailable: 'cooling', retryAfterMs: 1 });
    clock.advance(1);
    expect(lease(pool.acquire()).key).toBe('a');
  });

  it('caps a cooldown at maxCooldownMs', () => {
    const clock = fakeClock();
    const pool = new KeyPool('openai', ['a'], { now: clock.now, maxCooldownMs: 60_000 });
    pool.rateLimited(lease(pool.acquire()), 86_400_000);
    expect(pool.acquire()).toEqual({ unavailable: 'cooling', retryAfterMs: 60_000 });
  });

  it('keeps the later end when a short hint follows a long one', () => {
    const clock = fakeClock();
    const pool = new KeyPool('openai', ['a'], { now: clock.now });
    const a = lease(pool.acquire());
    pool.rateLimited(a, 30_000);
    pool.rateLimited(a, 1_000);
    expect(pool.acquire()).toEqual({ unavailable: 'cooling', retryAfterMs: 30_000 });
  });

  it('when every key cools, reports the shortest remaining cooldown', () => {
    const clock = fakeClock();
    const pool = new KeyPool('groq', ['a', 'b', 'c'], { now: clock.now });
    const [a, b, c] = [lease(pool.acquire()), lease(pool.acquire()), lease(pool.acquire())];
    pool.rateLimited(a, 9_000);
    pool.rateLimited(b, 4_000);
    pool.rateLimited(c, 6_000);
    clock.advance(1_000);
    expect(pool.acquire()).toEqual({ unavailable: 'cooling', retryAfterMs: 3_000 });
    expect(pool.counts()).toEqual({ active: 0, cooling: 3, disabled: 0 });
  });

  it('a request that tried the only free key is told how long the cooling ones need', () => {
    const clock = fakeClock();
    const pool = new KeyPool('groq', ['a', 'b'], { now: clock.now });
    const a = lease(pool.acquire());
    const b = lease(pool.acquire());
    pool.rateLimited(a, 2_000);
    expect(pool.acquire(new Set([b.id]))).toEqual({ unavailable: 'cooling', retryAfterMs: 2_000 });
  });
});

describe('KeyPool disable on 401/403', () => {
  it('never hands out a rejected key again', () => {
    const pool = new KeyPool('openai', ['a', 'b']);
    pool.rejected(lease(pool.acquire()));
    expect(takeKeys(pool, 4)).toEqual(['b', 'b', 'b', 'b']);
    expect(pool.counts()).toEqual({ active: 1, cooling: 0, disabled: 1 });
  });

  it('reports disabled when every key is rejected', () => {
    const pool = new KeyPool('openai', ['a', 'b']);
    pool.rejected(lease(pool.acquire()));
    pool.rejected(lease(pool.acquire()));
    expect(pool.acquire()).toEqual({ unavailable: 'disabled' });
  });

  it('reports cooling, not disabled, while some key is only cooling', () => {
    const clock = fakeClock();
    const pool = new KeyPool('openai', ['a', 'b'], { now: clock.now });
    pool.rejected(lease(pool.acquire()));
    pool.rateLimited(lease(pool.acquire()), 700);
    expect(pool.acquire()).toEqual({ unavailable: 'cooling', retryAfterMs: 700 });
  });

  it('a rejected key stays disabled after its cooldown ends', () => {
    const clock = fakeClock();
    const pool = new KeyPool('openai', ['a'], { now: clock.now });
    const a = lease(pool.acquire());
    pool.rateLimited(a, 1_000);
    pool.rejected(a);
    clock.advance(5_000);
    expect(pool.acquire()).toEqual({ unavailable: 'disabled' });
  });
});

describe('KeyPool.replace', () => {
  it('never returns a removed key and ignores reports on its old leases', () => {
    const pool = new KeyPool('openai', ['old', 'stay']);
    const old = lease(pool.acquire());
    expect(old.key).toBe('old');
    pool.replace(['stay', 'new']);
    expect(new Set(takeKeys(pool, 10))).toEqual(new Set(['stay', 'new']));
    pool.rejected(old);
    pool.rateLimited(old, 60_000);
    expect(pool.counts()).toEqual({ active: 2, cooling: 0, disabled: 0 });
  });

  it('keeps the cooldown of keys that stay and re-enables rejected ones', () => {
    const clock = fakeClock();
    const pool = new KeyPool('openai', ['cool', 'bad', 'gone'], { now: clock.now });
    const cool = lease(pool.acquire());
    const bad = lease(pool.acquire());
    pool.rateLimited(cool, 8_000);
    pool.rejected(bad);
    pool.replace(['cool', 'bad']);
    expect(pool.counts()).toEqual({ active: 1, cooling: 1, disabled: 0 });
    expect(takeKeys(pool, 3)).toEqual(['bad', 'bad', 'bad']);
    clock.advance(8_000);
    expect(new Set(takeKeys(pool, 2))).toEqual(new Set(['cool', 'bad']));
  });

  it('keeps the same id for a key that stays', () => {
    const pool = new KeyPool('groq', ['a']);
    const before = lease(pool.acquire()).id;
    pool.replace(['b', 'a']);
    expect(pool.ids()).toContain(before);
  });

  it('to an empty set leaves nothing to hand out', () => {
    const pool = new KeyPool('groq', ['a']);
    pool.replace([]);
    expect(pool.acquire()).toEqual({ unavailable: 'empty' });
    expect(pool.size).toBe(0);
  });
});

describe('KeyPools for both providers', () => {
  it('replaces every provider at once and samples every state for the gauge', () => {
    const clock = fakeClock();
    const pools = createKeyPools({ openai: ['o1', 'o2'], groq: ['g1'] }, { now: clock.now });
    pools.openai.rateLimited(lease(pools.openai.acquire()), 1_000);
    pools.groq.rejected(lease(pools.groq.acquire()));
    expect(keyStateSamples(pools)).toEqual([
      { provider: 'openai', state: 'active', count: 1 },
      { provider: 'openai', state: 'cooling', count: 1 },
      { provider: 'openai', state: 'disabled', count: 0 },
      { provider: 'groq', state: 'active', count: 0 },
      { provider: 'groq', state: 'cooling', count: 0 },
      { provider: 'groq', state: 'disabled', count: 1 },
    ]);
    replaceAllKeys(pools, { openai: ['o3'], groq: ['g1', 'g2'] });
    expect(pools.openai.counts()).toEqual({ active: 1, cooling: 0, disabled: 0 });
    expect(pools.groq.counts()).toEqual({ active: 2, cooling: 0, disabled: 0 });
  });
});
