/**
 * The budgets and rate limits the config asks for, on the counters it allows: Redis (its own
 * small connection to the cache's Redis, so replicas share the counts) when one is configured,
 * else this process's memory. LIMITS_FILE is read before anything is opened: a bad one stops
 * start-up.
 */
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { createRedisClient, type RedisTarget, redisTargetOf } from '../cache/redis-connection.js';
import type { Config } from '../config.js';
import type { UsageCounters } from './counters.js';
import { MemoryCounters } from './counters-memory.js';
import { type CounterRedis, RedisCounters } from './counters-redis.js';
import { registerLimitMetrics } from './limit-metrics.js';
import { Limits } from './limits.js';
import { loadLimitsFile, startLimitsReloading } from './limits-reloading.js';

export interface CreatedLimits {
  limits: Limits;
  close(): Promise<void>;
}

export async function createLimits(config: Config, registry: Registry, log: Logger, now: () => number = Date.now): Promise<CreatedLimits> {
  const overrides = await loadLimitsFile(config.limitsFile);
  const target = redisTargetOf(config);
  const redis = target === undefined ? undefined : await connectCounterRedis(target, config.redisCommandTimeoutMs);
  const counters: UsageCounters = redis
    ? new RedisCounters(redis, {
        now,
        onStatus: (up) => {
          if (up) log.info('usage counters: Redis answers again; counts made meanwhile are sent');
          else log.warn('usage counters: Redis does not answer; budgets and limits counted by this replica alone until it does');
        },
      })
    : new MemoryCounters(now);
  let limits: Limits | undefined;
  const metrics = registerLimitMetrics(registry, () => limits!.gatewaySpend(), {
    daily: config.budgetDailyUsd,
    monthly: config.budgetMonthlyUsd,
  });
  limits = new Limits(config, counters, metrics, now);
  limits.setOverrides(overrides);
  const reloading = startLimitsReloading(config.limitsFile, limits, log);
  return {
    limits,
    async close() {
      reloading.close();
      limits.close();
      await counters.close();
      await redis?.close();
    },
  };
}

/** How long start-up waits for the counters' first connection (the gateway starts without it after that). */
const STARTUP_WAIT_MS = 2_000;

/**
 * A connection of its own to the cache's Redis (a server, a Cluster or Sentinel's master), tuned
 * like the store's: commands fail fast instead of queueing while Redis is away (counters-redis.ts
 * answers then). Its keys share one hash tag, so on a Cluster every script runs on one node.
 */
export async function connectCounterRedis(target: RedisTarget, commandTimeoutMs: number): Promise<CounterRedis> {
  const client = createRedisClient(target, {
    commandTimeoutMs,
    socketTimeoutMs: 5_000,
    connectTimeoutMs: STARTUP_WAIT_MS,
    maxReconnectDelayMs: 2_000,
  });
  // Reported through the counters' own up/down line; an unhandled 'error' event would crash the process.
  client.on('error', () => {});
  await Promise.race([client.connect().catch(() => {}), new Promise((resolve) => setTimeout(resolve, STARTUP_WAIT_MS).unref())]);
  return {
    evalScript: (script, keys, args) => client.eval(script, keys.length, ...keys, ...args),
    hgetall: (key) => client.hgetall(key),
    close: async () => {
      client.disconnect();
    },
  };
}
