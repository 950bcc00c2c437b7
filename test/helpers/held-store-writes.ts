/**
 * A real cache store (embedded or Redis, made as the gateway makes it) whose writes a test can
 * hold: while held, set() waits before it reaches the store, so the flight that answered stays
 * "answered, entry still being written" for as long as the test needs, with no timer to race.
 * Passed to the gateway through ServerDeps.store; every other operation goes to the store as is
 * (its reads are counted).
 */
import pino from 'pino';
import { createCacheStore } from '../../src/cache/create-store.js';
import type { CacheStore } from '../../src/cache/store.js';
import type { Config } from '../../src/config.js';
import { GatewayMetrics } from '../../src/metrics.js';

export interface HeldStoreWrites {
  /** The store to hand to buildServer. */
  readonly store: CacheStore;
  /** Hold every write from now on. */
  hold(): void;
  /** Let the held writes through (and stop holding); resolves once they reached the store. */
  release(): Promise<void>;
  /** Writes waiting right now. */
  readonly waiting: number;
  /** Writes that reached the store. */
  readonly written: number;
  /** Reads asked of the store (a hit answered by a flight whose entry is being written asks none). */
  readonly reads: number;
  close(): Promise<void>;
}

export async function heldStoreWrites(config: Config): Promise<HeldStoreWrites> {
  // Its own metrics: gateway_cache_up of this store is not what the tests compare.
  const inner = await createCacheStore(config, new GatewayMetrics(() => []), pino({ level: 'silent' }));
  let holding = false;
  let gates: Array<() => void> = [];
  let inFlight: Array<Promise<void>> = [];
  let written = 0;
  let reads = 0;
  const set = (key: string, value: Buffer, ttlSeconds: number): Promise<void> => {
    const write = async (): Promise<void> => {
      if (holding) await new Promise<void>((resolve) => gates.push(resolve));
      await inner.set(key, value, ttlSeconds);
      written++;
    };
    const done = write();
    inFlight.push(done.catch(() => undefined));
    return done;
  };
  // A proxy, not a class implementing CacheStore: whatever the interface holds, only set changes.
  const store = new Proxy(inner, {
    get(target, property, receiver) {
      if (property === 'set') return set;
      if (property === 'get') reads++;
      const value: unknown = Reflect.get(target, property, receiver);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
  const release = async (): Promise<void> => {
    holding = false;
    const open = gates;
    gates = [];
    for (const gate of open) gate();
    const pending = inFlight;
    inFlight = [];
    await Promise.all(pending);
  };
  return {
    store,
    hold() {
      holding = true;
    },
    release,
    get waiting() {
      return gates.length;
    },
    get written() {
      return written;
    },
    get reads() {
      return reads;
    },
    async close() {
      await release();
      await inner.close();
    },
  };
}
