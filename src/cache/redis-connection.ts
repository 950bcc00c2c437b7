/**
 * Which Redis the gateway talks to (one server by URL, a Cluster by its seeds, or the master that
 * Sentinels name) and the ioredis client for it, tuned the same way for all three: commands fail
 * fast instead of queueing while the server is away, and the client re-dials on its own.
 */
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import type { Config } from '../config.js';
import type { RedisAddress } from '../redis-topology-config.js';

export type RedisTarget =
  | { readonly kind: 'url'; readonly url: string; readonly password?: string | undefined }
  | { readonly kind: 'cluster'; readonly nodes: readonly RedisAddress[]; readonly password: string | undefined }
  | { readonly kind: 'sentinel'; readonly sentinels: readonly RedisAddress[]; readonly masterName: string; readonly password: string | undefined };

/** One server or the current master: both are a plain ioredis client. */
export type RedisClient = Redis | Cluster;

export interface RedisConnectionTuning {
  commandTimeoutMs: number;
  socketTimeoutMs: number;
  connectTimeoutMs: number;
  maxReconnectDelayMs: number;
}

/** The Redis the config names, or undefined for the embedded cache. */
export function redisTargetOf(config: Config): RedisTarget | undefined {
  if (config.redisUrl !== undefined) return { kind: 'url', url: config.redisUrl, password: config.redisPassword };
  if (config.redisClusterNodes.length > 0) return { kind: 'cluster', nodes: config.redisClusterNodes, password: config.redisPassword };
  if (config.redisSentinels.length > 0) {
    return { kind: 'sentinel', sentinels: config.redisSentinels, masterName: config.redisSentinelMaster, password: config.redisPassword };
  }
  return undefined;
}

/** What log lines and /readyz call the backend. */
export function redisLabel(target: RedisTarget): string {
  return target.kind === 'url' ? 'redis' : `redis-${target.kind}`;
}

export function createRedisClient(target: RedisTarget, tuning: RedisConnectionTuning): RedisClient {
  const reconnectDelay = (attempt: number): number => Math.min(50 * 2 ** Math.min(attempt, 10), tuning.maxReconnectDelayMs);
  const common: RedisOptions = {
    // Without this, commands issued while disconnected wait in memory for a reconnect that may
    // take minutes, and every request would hang with them.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: tuning.commandTimeoutMs,
    socketTimeout: tuning.socketTimeoutMs,
    connectTimeout: tuning.connectTimeoutMs,
    connectionName: 'cachegate',
  };
  switch (target.kind) {
    case 'url':
      // `rediss://` URLs turn TLS on inside ioredis; nothing to do here. A password in the URL
      // wins over the option (ioredis fills options from the URL first).
      return new Redis(target.url, { ...common, lazyConnect: true, retryStrategy: reconnectDelay, ...(target.password ? { password: target.password } : {}) });
    case 'sentinel':
      return new Redis({
        ...common,
        lazyConnect: true,
        sentinels: target.sentinels.map(({ host, port }) => ({ host, port })),
        name: target.masterName,
        ...(target.password ? { password: target.password } : {}),
        retryStrategy: reconnectDelay,
        sentinelRetryStrategy: reconnectDelay,
        // Reconnects to the new master as soon as a sentinel announces the switch, instead of
        // waiting for the old master's socket to fail.
        failoverDetector: true,
      });
    case 'cluster': {
      const { enableOfflineQueue: _queue, ...nodeOptions } = common;
      return new Cluster(
        target.nodes.map(({ host, port }) => ({ host, port })),
        {
          lazyConnect: true,
          enableOfflineQueue: false,
          clusterRetryStrategy: reconnectDelay,
          // A command whose node went away is retried (on the promoted replica once the slots are
          // refreshed) within the command timeout, which bounds it: the request then bypasses.
          retryDelayOnFailover: 100,
          retryDelayOnClusterDown: 100,
          slotsRefreshTimeout: Math.max(500, tuning.commandTimeoutMs),
          redisOptions: { ...nodeOptions, ...(target.password ? { password: target.password } : {}) },
        },
      );
    }
  }
}

/**
 * A Cluster retries a command whose node went away (after a slot refresh, on the promoted replica)
 * and may hold it in its own queues before any node's command timeout starts: the deadline bounds
 * the whole, so a request waits at most this long before it bypasses the cache.
 */
export function withDeadline<T>(command: Promise<T>, timeoutMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Command timed out after ${timeoutMs} ms`)), timeoutMs);
  });
  return Promise.race([command, deadline]).finally(() => clearTimeout(timer));
}
