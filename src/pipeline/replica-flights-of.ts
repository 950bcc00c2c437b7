/** Coalescing across replicas runs on the store's own Redis connection; without Redis there is none. */
import { RedisStore } from '../cache/redis-store.js';
import type { CacheStore } from '../cache/store.js';
import { ReplicaFlights } from './replica-flights.js';

export function replicaFlightsOf(store: CacheStore | undefined, commandTimeoutMs: number): ReplicaFlights | undefined {
  return store instanceof RedisStore ? new ReplicaFlights(store.redisClient(), commandTimeoutMs) : undefined;
}
