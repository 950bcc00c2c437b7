/**
 * The variables that put the shared cache on a replicated Redis: a Cluster's seed nodes, or the
 * Sentinels that name the current master. Validated like every other variable: a bad value stops
 * start-up with one line naming it, and a password is never echoed.
 */
import { isIP } from 'node:net';
import { ConfigError } from './config.js';
import { type Env, envValue } from './env-value.js';

export interface RedisAddress {
  readonly host: string;
  readonly port: number;
}

export interface RedisTopologyConfig {
  /** Seeds of a Redis Cluster; empty when none is configured. */
  readonly redisClusterNodes: readonly RedisAddress[];
  /** Sentinels that watch `redisSentinelMaster`; empty when none is configured. */
  readonly redisSentinels: readonly RedisAddress[];
  readonly redisSentinelMaster: string;
  /** Password of the cluster's or the sentinel-managed nodes, or of REDIS_URL's server when the URL carries none. */
  readonly redisPassword: string | undefined;
}

const REDIS_SOURCES = ['REDIS_URL', 'REDIS_CLUSTER_NODES', 'REDIS_SENTINELS'] as const;

/** `host:port,host:port`, where host is a name, an IPv4 address or a bracketed IPv6 address. */
function addresses(env: Env, name: string): RedisAddress[] {
  const raw = envValue(env, name);
  if (raw === undefined) return [];
  const items = raw
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
  if (items.length === 0) throw new ConfigError(`${name} must list at least one host:port`);
  return items.map((item) => {
    const match = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(item);
    const port = Number(match?.[2]);
    if (!match || port < 1 || port > 65_535) throw new ConfigError(`${name} must be comma-separated host:port pairs, got "${item}"`);
    const host = match[1]!.startsWith('[') ? match[1]!.slice(1, -1) : match[1]!;
    if (match[1]!.startsWith('[') && isIP(host) !== 6) throw new ConfigError(`${name} has an invalid IPv6 address: "${item}"`);
    return { host, port };
  });
}

/** The password a redis:// URL carries (decoded), if any; an unreadable URL is REDIS_URL's own check to refuse. */
function urlPassword(value: string): string | undefined {
  try {
    const password = new URL(value).password;
    return password === '' ? undefined : decodeURIComponent(password);
  } catch {
    return undefined;
  }
}

export function redisTopologyFromEnv(env: Env): RedisTopologyConfig {
  const set = REDIS_SOURCES.filter((name) => envValue(env, name) !== undefined);
  if (set.length > 1) throw new ConfigError(`set only one of REDIS_URL, REDIS_CLUSTER_NODES, REDIS_SENTINELS (got ${set.join(' and ')})`);
  const password = envValue(env, 'REDIS_PASSWORD');
  // REDIS_URL carries its own password; REDIS_PASSWORD serves a URL without one (the usual
  // container set-up keeps the password in a variable of its own). Two different ones: a mistake.
  if (password !== undefined && set[0] === 'REDIS_URL' && urlPassword(envValue(env, 'REDIS_URL')!) !== undefined) {
    if (urlPassword(envValue(env, 'REDIS_URL')!) !== password) {
      throw new ConfigError('REDIS_URL carries a password and REDIS_PASSWORD another one: keep one of them');
    }
  }
  const master = envValue(env, 'REDIS_SENTINEL_MASTER') ?? 'mymaster';
  // Sentinel master names are plain words; anything else is a typo or a pasted URL.
  if (!/^[A-Za-z0-9._-]+$/.test(master)) throw new ConfigError(`REDIS_SENTINEL_MASTER must be a name such as mymaster, got "${master}"`);
  return {
    redisClusterNodes: addresses(env, 'REDIS_CLUSTER_NODES'),
    redisSentinels: addresses(env, 'REDIS_SENTINELS'),
    redisSentinelMaster: master,
    redisPassword: password,
  };
}
