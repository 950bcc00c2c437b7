/**
 * The scale-out variables: REDIS_CLUSTER_NODES, REDIS_SENTINELS, REDIS_SENTINEL_MASTER and
 * REDIS_PASSWORD parsed and validated by loadConfig (and turned into the Redis the store dials),
 * and at most one of REDIS_URL / REDIS_CLUSTER_NODES / REDIS_SENTINELS: more stops the real
 * process with one line, without echoing a password. REDIS_PASSWORD also serves a REDIS_URL that
 * carries no password (tested on a real redis-server that requires one).
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { redisTargetOf } from '../src/cache/redis-connection.js';
import { ConfigError, loadConfig } from '../src/config.js';
import { chat, chatBody, unique, untilStored } from './helpers/cache-e2e.js';
import { type FakeUpstream, startFakeUpstream } from './helpers/fake-upstream.js';
import { type RunningGateway, startGateway } from './helpers/gateway.js';
import { runGatewayProcess } from './helpers/gateway-process.js';
import { scrape } from './helpers/metrics-scrape.js';
import { type RedisServer, startRedis } from './helpers/redis-server.js';

describe('loadConfig: the Redis topology', () => {
  it('nothing set: the embedded cache, master name mymaster', () => {
    const config = loadConfig({});
    expect(config.redisClusterNodes).toEqual([]);
    expect(config.redisSentinels).toEqual([]);
    expect(config.redisSentinelMaster).toBe('mymaster');
    expect(config.redisPassword).toBeUndefined();
    expect(redisTargetOf(config)).toBeUndefined();
  });

  it('REDIS_CLUSTER_NODES: host:port seeds (names, IPv4, bracketed IPv6) with the password', () => {
    const config = loadConfig({ REDIS_CLUSTER_NODES: 'redis-1:7000, 10.0.0.2:7001,[::1]:7002', REDIS_PASSWORD: 'fake-pass' });
    expect(redisTargetOf(config)).toEqual({
      kind: 'cluster',
      nodes: [
        { host: 'redis-1', port: 7000 },
        { host: '10.0.0.2', port: 7001 },
        { host: '::1', port: 7002 },
      ],
      password: 'fake-pass',
    });
  });

  it('REDIS_SENTINELS with REDIS_SENTINEL_MASTER', () => {
    const config = loadConfig({ REDIS_SENTINELS: 's1:26379,s2:26379,s3:26379', REDIS_SENTINEL_MASTER: 'cache' });
    expect(redisTargetOf(config)).toEqual({
      kind: 'sentinel',
      sentinels: [
        { host: 's1', port: 26379 },
        { host: 's2', port: 26379 },
        { host: 's3', port: 26379 },
      ],
      masterName: 'cache',
      password: undefined,
    });
  });

  it('REDIS_URL alone is the one server', () => {
    expect(redisTargetOf(loadConfig({ REDIS_URL: 'redis://cache:6379' }))).toEqual({ kind: 'url', url: 'redis://cache:6379', password: undefined });
  });

  it('REDIS_PASSWORD serves a REDIS_URL that carries none, or the same one', () => {
    expect(redisTargetOf(loadConfig({ REDIS_URL: 'redis://cache:6379', REDIS_PASSWORD: 'fake-pass' }))).toEqual({
      kind: 'url',
      url: 'redis://cache:6379',
      password: 'fake-pass',
    });
    expect(() => loadConfig({ REDIS_URL: 'redis://:fake%2Fpass@cache:6379', REDIS_PASSWORD: 'fake/pass' })).not.toThrow();
  });

  it.each([
    [{ REDIS_URL: 'redis://a:6379', REDIS_CLUSTER_NODES: 'b:7000' }, 'REDIS_URL and REDIS_CLUSTER_NODES'],
    [{ REDIS_URL: 'redis://a:6379', REDIS_SENTINELS: 'b:26379' }, 'REDIS_URL and REDIS_SENTINELS'],
    [{ REDIS_CLUSTER_NODES: 'a:7000', REDIS_SENTINELS: 'b:26379' }, 'REDIS_CLUSTER_NODES and REDIS_SENTINELS'],
  ])('more than one Redis is refused, naming them: %j', (env, named) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(named);
  });

  it.each([
    [{ REDIS_CLUSTER_NODES: 'redis-1' }, 'REDIS_CLUSTER_NODES'],
    [{ REDIS_CLUSTER_NODES: 'redis-1:0' }, 'REDIS_CLUSTER_NODES'],
    [{ REDIS_CLUSTER_NODES: 'redis-1:70000' }, 'REDIS_CLUSTER_NODES'],
    [{ REDIS_CLUSTER_NODES: 'redis://redis-1:7000' }, 'REDIS_CLUSTER_NODES'],
    [{ REDIS_CLUSTER_NODES: ' , ' }, 'REDIS_CLUSTER_NODES'],
    [{ REDIS_SENTINELS: 's1:26379,[nope]:1' }, 'REDIS_SENTINELS'],
    [{ REDIS_SENTINELS: 's1:26379', REDIS_SENTINEL_MASTER: 'my master' }, 'REDIS_SENTINEL_MASTER'],
    [{ REDIS_URL: 'redis://:fake-url-pass@a:6379', REDIS_PASSWORD: 'fake-pass' }, 'REDIS_URL carries a password and REDIS_PASSWORD another'],
  ])('a bad value stops start-up naming the variable: %j', (env, named) => {
    expect(() => loadConfig(env)).toThrow(named);
  });

  it('a refusal never echoes the password', () => {
    const messageOf = (env: Record<string, string>): string => {
      try {
        loadConfig(env);
      } catch (error) {
        return (error as Error).message;
      }
      return '';
    };
    const twoRedis = messageOf({ REDIS_URL: 'redis://:fake-secret-pass@a:6379', REDIS_PASSWORD: 'fake-other-secret', REDIS_CLUSTER_NODES: 'b:7000' });
    expect(twoRedis).toContain('REDIS_URL and REDIS_CLUSTER_NODES');
    const twoPasswords = messageOf({ REDIS_URL: 'redis://:fake-secret-pass@a:6379', REDIS_PASSWORD: 'fake-other-secret' });
    expect(twoPasswords).toContain('REDIS_PASSWORD');
    for (const message of [twoRedis, twoPasswords]) {
      expect(message).not.toContain('fake-secret-pass');
      expect(message).not.toContain('fake-other-secret');
    }
  });
});

describe('REDIS_URL without a password and REDIS_PASSWORD, on a server that requires one', () => {
  const PASSWORD = 'fake-redis-url-less-password';
  let redis: RedisServer;
  let fake: FakeUpstream;
  let gateway: RunningGateway | undefined;
  beforeAll(async () => {
    redis = await startRedis();
    // Set once it answers: startRedis's readiness check is an unauthenticated PING.
    const admin = new Redis(redis.url);
    await admin.config('SET', 'requirepass', PASSWORD);
    admin.disconnect();
    fake = await startFakeUpstream();
  });
  afterAll(async () => {
    await gateway?.close();
    await fake?.close();
    await redis?.stop();
  });

  it('the gateway authenticates with REDIS_PASSWORD and caches there', async () => {
    gateway = await startGateway(fake, { REDIS_URL: redis.url, REDIS_PASSWORD: PASSWORD });
    const prompt = unique('url-less-password');
    expect((await chat(gateway, chatBody(prompt))).xCache).toBe('MISS');
    expect((await untilStored(() => chat(gateway!, chatBody(prompt)))).xCache).toBe('HIT');
    expect((await scrape(gateway.url)).sum('gateway_cache_up')).toBe(1);
    expect(fake.completionCalls()).toHaveLength(1);
  });
});

describe('the real process', () => {
  it('REDIS_URL and REDIS_SENTINELS together: exit 1 and one stderr line naming both', async () => {
    const { code, stderr } = await runGatewayProcess({ REDIS_URL: 'redis://:fake-secret-pass@127.0.0.1:1', REDIS_SENTINELS: '127.0.0.1:2' });
    expect(code).toBe(1);
    const lines = stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('REDIS_URL and REDIS_SENTINELS');
    expect(stderr).not.toContain('fake-secret-pass');
  }, 30_000);

  it('REDIS_URL carrying one password and REDIS_PASSWORD another: exit 1 and one stderr line naming both, echoing neither', async () => {
    const { code, stderr } = await runGatewayProcess({ REDIS_URL: 'redis://:fake-secret-pass@127.0.0.1:1', REDIS_PASSWORD: 'fake-other-secret' });
    expect(code).toBe(1);
    const lines = stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('REDIS_URL carries a password and REDIS_PASSWORD another');
    expect(stderr).not.toContain('fake-secret-pass');
    expect(stderr).not.toContain('fake-other-secret');
  }, 30_000);

  it('a malformed REDIS_CLUSTER_NODES: exit 1 and one stderr line naming it', async () => {
    const { code, stderr } = await runGatewayProcess({ REDIS_CLUSTER_NODES: 'redis-1:7000,redis-2' });
    expect(code).toBe(1);
    expect(stderr.trim().split('\n')).toHaveLength(1);
    expect(stderr).toContain('REDIS_CLUSTER_NODES');
  }, 30_000);
});
