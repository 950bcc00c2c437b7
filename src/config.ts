/**
 * Environment → validated, frozen Config. Every check fails fast with one line naming the
 * variable, so an operator sees exactly what to fix (and never a key: values are not echoed
 * for the variables that hold secrets).
 */
import { isIP } from 'node:net';
import { type LimitsConfig, limitsFromEnv } from './limits/limits-config.js';
import { type RedisTopologyConfig, redisTopologyFromEnv } from './redis-topology-config.js';
import { type TaskPromptsConfig, taskPromptsFromEnv } from './cache/task-prompts.js';
import { type Env, envValue } from './env-value.js';

export type CacheScope = 'shared' | 'per-key' | 'per-user';

export interface Config extends LimitsConfig, RedisTopologyConfig, TaskPromptsConfig {
  readonly host: string;
  readonly port: number;
  readonly openaiKeys: readonly string[];
  readonly groqKeys: readonly string[];
  readonly openaiBaseUrl: string;
  readonly groqBaseUrl: string;
  readonly keysFile: string | undefined;
  /** The model policy's file (aliases, allow list, fallbacks), re-read like KEYS_FILE. */
  readonly modelsFile: string | undefined;
  readonly gatewayApiKeys: readonly string[];
  readonly redisUrl: string | undefined;
  readonly cacheEnabled: boolean;
  readonly cacheTtlSeconds: number;
  readonly cacheMaxBytes: number;
  readonly cacheScope: CacheScope;
  readonly metricsToken: string | undefined;
  readonly logLevel: string;
  readonly pricesFile: string | undefined;
  readonly bodyLimitBytes: number;
  readonly upstreamConnectTimeoutMs: number;
  readonly upstreamHeadersTimeoutMs: number;
  readonly upstreamIdleTimeoutMs: number;
  readonly upstreamMaxRetries: number;
  readonly keyCooldownMs: number;
  readonly modelsCacheSeconds: number;
  readonly shutdownGraceMs: number;
  readonly redisCommandTimeoutMs: number;
  /** Time a client has to send a request's headers, from its first byte. */
  readonly requestHeadersTimeoutMs: number;
  /** Time a client has to send a whole request, headers and body (not the answer's time). */
  readonly requestTimeoutMs: number;
  /** How long an idle keep-alive connection is kept between two requests. */
  readonly keepAliveTimeoutMs: number;
  /** Most client connections open at once (0: no cap); more are closed as they arrive. */
  readonly maxConnections: number;
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

const LOG_LEVELS = new Set(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);
const SCOPES = new Set<CacheScope>(['shared', 'per-key', 'per-user']);

function list(env: Env, name: string): string[] {
  const value = envValue(env, name);
  if (value === undefined) return [];
  return [
    ...new Set(
      value
        .split(',')
        .map((item) => item.trim())
        .filter((item) => item !== ''),
    ),
  ];
}

function integer(env: Env, name: string, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const value = envValue(env, name);
  if (value === undefined) return fallback;
  if (!/^-?\d+$/.test(value)) throw new ConfigError(`${name} must be a whole number, got "${value}"`);
  const parsed = Number(value);
  if (parsed < min || parsed > max) {
    throw new ConfigError(`${name} must be between ${min} and ${max}, got ${parsed}`);
  }
  return parsed;
}

function boolean(env: Env, name: string, fallback: boolean): boolean {
  const value = envValue(env, name)?.toLowerCase();
  if (value === undefined) return fallback;
  if (['true', '1', 'yes', 'on'].includes(value)) return true;
  if (['false', '0', 'no', 'off'].includes(value)) return false;
  throw new ConfigError(`${name} must be true or false, got "${value}"`);
}

function httpUrl(env: Env, name: string, fallback: string): string {
  const value = envValue(env, name) ?? fallback;
  let url: URL;
  try {
    url = new URL(value);
  } catch (cause) {
    throw new ConfigError(`${name} is not a valid URL: "${value}"`, { cause });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ConfigError(`${name} must be an http:// or https:// URL, got "${value}"`);
  }
  if (url.username || url.password) throw new ConfigError(`${name} must not carry credentials`);
  return value.replace(/\/+$/, '');
}

function redisUrl(env: Env): string | undefined {
  const value = envValue(env, 'REDIS_URL');
  if (value === undefined) return undefined;
  let url: URL;
  try {
    url = new URL(value);
  } catch (cause) {
    // The URL may hold a password: do not echo it.
    throw new ConfigError('REDIS_URL is not a valid URL (expected redis://host:port or rediss://…)', { cause });
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
    throw new ConfigError(`REDIS_URL must start with redis:// or rediss://, got "${url.protocol}//…"`);
  }
  return value;
}

function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  if (isIP(host) === 6) return host === '::1';
  return false;
}

function hostName(env: Env): string {
  const host = envValue(env, 'HOST') ?? '127.0.0.1';
  if (isIP(host) === 0 && !/^[A-Za-z0-9.-]+$/.test(host)) throw new ConfigError(`HOST is not a valid address: "${host}"`);
  return host;
}

/** Keys given as a comma list, or one key in the singular variable. */
function providerKeys(env: Env, plural: string, singular: string): string[] {
  const many = list(env, plural);
  if (many.length > 0) return many;
  const one = envValue(env, singular);
  return one === undefined ? [] : [one];
}

/** What a client may take to send a request, and how many connections it may hold. */
function clientLimits(env: Env): Pick<Config, 'requestHeadersTimeoutMs' | 'requestTimeoutMs' | 'keepAliveTimeoutMs' | 'maxConnections'> {
  const requestTimeoutMs = integer(env, 'REQUEST_TIMEOUT_MS', 300_000, 1);
  const requestHeadersTimeoutMs = integer(env, 'REQUEST_HEADERS_TIMEOUT_MS', Math.min(30_000, requestTimeoutMs), 1);
  // Node refuses a headers timeout longer than the whole request's.
  if (requestHeadersTimeoutMs > requestTimeoutMs) {
    throw new ConfigError(`REQUEST_HEADERS_TIMEOUT_MS (${requestHeadersTimeoutMs}) must not exceed REQUEST_TIMEOUT_MS (${requestTimeoutMs})`);
  }
  return {
    requestHeadersTimeoutMs,
    requestTimeoutMs,
    keepAliveTimeoutMs: integer(env, 'KEEP_ALIVE_TIMEOUT_MS', 65_000, 1),
    maxConnections: integer(env, 'MAX_CONNECTIONS', 0, 0),
  };
}

export function loadConfig(env: Env = process.env): Config {
  const host = hostName(env);
  const gatewayApiKeys = list(env, 'GATEWAY_API_KEYS');
  if (!isLoopback(host) && gatewayApiKeys.length === 0) {
    throw new ConfigError(
      `HOST=${host} is not a loopback address and GATEWAY_API_KEYS is empty: refusing to expose provider keys to the network without client auth`,
    );
  }
  const scope = envValue(env, 'CACHE_SCOPE') ?? 'shared';
  if (!SCOPES.has(scope as CacheScope)) {
    throw new ConfigError(`CACHE_SCOPE must be one of shared, per-key, per-user, got "${scope}"`);
  }
  const logLevel = envValue(env, 'LOG_LEVEL') ?? 'info';
  if (!LOG_LEVELS.has(logLevel)) {
    throw new ConfigError(`LOG_LEVEL must be one of ${[...LOG_LEVELS].join(', ')}, got "${logLevel}"`);
  }
  const config: Config = {
    host,
    port: integer(env, 'PORT', 8080, 0, 65535),
    openaiKeys: providerKeys(env, 'OPENAI_API_KEYS', 'OPENAI_API_KEY'),
    groqKeys: providerKeys(env, 'GROQ_API_KEYS', 'GROQ_API_KEY'),
    openaiBaseUrl: httpUrl(env, 'OPENAI_BASE_URL', 'https://api.openai.com/v1'),
    groqBaseUrl: httpUrl(env, 'GROQ_BASE_URL', 'https://api.groq.com/openai/v1'),
    keysFile: envValue(env, 'KEYS_FILE'),
    modelsFile: envValue(env, 'MODELS_FILE'),
    gatewayApiKeys,
    redisUrl: redisUrl(env),
    cacheEnabled: boolean(env, 'CACHE_ENABLED', true),
    cacheTtlSeconds: integer(env, 'CACHE_TTL_SECONDS', 86_400, 0),
    cacheMaxBytes: integer(env, 'CACHE_MAX_BYTES', 268_435_456, 0),
    cacheScope: scope as CacheScope,
    metricsToken: envValue(env, 'METRICS_TOKEN'),
    logLevel,
    pricesFile: envValue(env, 'PRICES_FILE'),
    bodyLimitBytes: integer(env, 'BODY_LIMIT_BYTES', 25 * 1024 * 1024, 1024),
    upstreamConnectTimeoutMs: integer(env, 'UPSTREAM_CONNECT_TIMEOUT_MS', 10_000, 1),
    upstreamHeadersTimeoutMs: integer(env, 'UPSTREAM_HEADERS_TIMEOUT_MS', 600_000, 1),
    upstreamIdleTimeoutMs: integer(env, 'UPSTREAM_IDLE_TIMEOUT_MS', 300_000, 1),
    upstreamMaxRetries: integer(env, 'UPSTREAM_MAX_RETRIES', 2, 0, 10),
    keyCooldownMs: integer(env, 'KEY_COOLDOWN_MS', 10_000, 1),
    modelsCacheSeconds: integer(env, 'MODELS_CACHE_SECONDS', 60, 0),
    shutdownGraceMs: integer(env, 'SHUTDOWN_GRACE_MS', 30_000, 0),
    redisCommandTimeoutMs: integer(env, 'REDIS_COMMAND_TIMEOUT_MS', 250, 1),
    ...clientLimits(env),
    ...limitsFromEnv(env),
    ...redisTopologyFromEnv(env),
    ...taskPromptsFromEnv(env),
  };
  return Object.freeze(config);
}
