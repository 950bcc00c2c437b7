/**
 * `tsx bench/replica-lease.ts [misses]`: what coalescing across replicas adds to a miss on a
 * Redis-backed gateway with no other replica calling: the lease taken as the miss starts (one
 * script) and released as it ends (another), measured as this process's CPU and the wall time of
 * the two round trips, beside one GET of the same connection for scale. Redis on this machine.
 */
import { randomBytes } from 'node:crypto';
import { RedisStore } from '../src/cache/redis-store.js';
import { ReplicaFlights } from '../src/pipeline/replica-flights.js';
import { startRedis } from '../test/helpers/redis-server.js';

const misses = Number(process.argv[2] ?? 5_000);
const ROUNDS = 3;
const redis = await startRedis();
const store = await RedisStore.connect(redis.url, { commandTimeoutMs: 5_000 });
const flights = new ReplicaFlights(store.redisClient(), 5_000);
const keys = Array.from({ length: misses }, () => `gw:v1:${randomBytes(32).toString('base64url')}`);

async function measure(name: string, one: (key: string) => Promise<unknown>): Promise<void> {
  for (const key of keys.slice(0, 200)) await one(key); // warm-up
  const results: string[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const cpu = process.cpuUsage();
    const started = performance.now();
    for (const key of keys) await one(key);
    const wall = performance.now() - started;
    const used = process.cpuUsage(cpu);
    results.push(`${((used.user + used.system) / misses).toFixed(1)} µs CPU, ${((wall * 1000) / misses).toFixed(0)} µs wall`);
  }
  console.log(`${name.padEnd(24)} ${results.join(' | ')}`);
}

console.log(`${misses} sequential misses, ${ROUNDS} rounds each`);
await measure('one GET (for scale)', (key) => store.get(key));
await measure('lease: claim + finish', async (key) => {
  const claim = await flights.claim(key);
  await flights.finish(key, claim.token);
});
await store.close();
await redis.stop();
