/**
 * The cache backend the config asks for, wired to the cache metrics: Redis when REDIS_URL,
 * REDIS_CLUSTER_NODES or REDIS_SENTINELS is set, else embedded.
 */
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { GatewayMetrics } from '../metrics.js';
import { MemoryStore } from './memory-store.js';
import { redisTargetOf } from './redis-connection.js';
import { RedisStore } from './redis-store.js';
import type { CacheStore } from './store.js';

export async function createCacheStore(config: Config, metrics: GatewayMetrics, log: Logger): Promise<CacheStore> {
  const target = redisTargetOf(config);
  if (target === undefined) return new MemoryStore({ maxBytes: Math.max(1, config.cacheMaxBytes) });
  metrics.cacheUp.set(0);
  return RedisStore.connect(target, {
    commandTimeoutMs: config.redisCommandTimeoutMs,
    onError: (op) => metrics.cacheErrors.inc({ op }),
    onStatus: (up) => {
      metrics.cacheUp.set(up ? 1 : 0);
      if (up) log.info('cache backend (Redis) connected');
      else log.warn('cache backend (Redis) unreachable: serving from upstream until it returns');
    },
    warn: (message) => log.warn(message),
  });
}
