/**
 * Usage counted locally and sent to Redis in batches must never be counted twice: a read sent
 * while a batch is on its way reaches Redis after that batch (one connection runs its commands
 * in order), so the read already has it from Redis and must not add it again from what this
 * replica still holds as unconfirmed. (The gauge of the gateway's spend and /admin/usage read so.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisCounters } from '../src/limits/counters-redis.js';
import { connectCounterRedis } from '../src/limits/create-limits.js';
import { type RedisServer, startRedis } from './helpers/redis-server.js';

let redis: RedisServer;

beforeAll(async () => {
  redis = await startRedis();
});

afterAll(async () => {
  await redis?.stop();
});

describe('a batch on its way to Redis', () => {
  it('is counted once by a read sent right after it (value and whole hash)', async () => {
    const connection = await connectCounterRedis({ kind: 'url', url: redis.url }, 2_000);
    const now = Date.now();
    const counters = new RedisCounters(connection, { now: () => now });
    try {
      const hash = `day:test-${now}`;
      const endsAt = now + 60_000;
      for (let round = 1; round <= 5; round++) {
        counters.addLater([{ hash, endsAt, field: 'g', by: 7 }]);
        // The batch's command is written first, then the reads', in the same turn.
        const flushed = counters.flush();
        const read = counters.read([{ hash, endsAt, field: 'g' }]);
        const all = counters.readAll(hash);
        expect(await read).toEqual([7 * round]);
        expect((await all).get('g')).toBe(7 * round);
        await flushed;
        expect(await counters.read([{ hash, endsAt, field: 'g' }])).toEqual([7 * round]);
      }
    } finally {
      await counters.close();
      await connection.close();
    }
  });
});
