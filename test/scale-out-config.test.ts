/**
 * The scale-out variables: REDIS_CLUSTER_NODES, REDIS_SENTINELS, REDIS_SENTINEL_MASTER and
 * REDIS_PASSWORD parsed and validated by loadConfig (and turned into the Redis the store dials),
 * and at most one of REDIS_URL / REDIS_CLUSTER_NODES / REDIS_SENTINELS: more stops the real
 * process with one line, without echoing a password.
 */
import { describe, expect, it } from 'vitest';
import { redisTargetOf } from '../src/cache/redis-connection.js';
import { ConfigError, loadConfig } from '../src/config.js';
import { runGatewayProcess } from './helpers/gateway-process.js';

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
    expect(redisTargetOf(loadConfig({ REDIS_URL: 'redis://cache:6379' }))).toEqual({ kind: 'url', url: 'redis://cache:6379' });
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
    [{ REDIS_URL: 'redis://a:6379', REDIS_PASSWORD: 'fake-pass' }, 'REDIS_PASSWORD'],
  ])('a bad value stops start-up naming the variable: %j', (env, named) => {
    expect(() => loadConfig(env)).toThrow(named);
  });

  it('a refusal never echoes the password', () => {
    let message = '';
    try {
      loadConfig({ REDIS_URL: 'redis://:fake-secret-pass@a:6379', REDIS_PASSWORD: 'fake-other-secret', REDIS_CLUSTER_NODES: 'b:7000' });
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toContain('REDIS_URL and REDIS_CLUSTER_NODES');
    expect(message).not.toContain('fake-secret-pass');
    expect(message).not.toContain('fake-other-secret');
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

  it('a malformed REDIS_CLUSTER_NODES: exit 1 and one stderr line naming it', async () => {
    const { code, stderr } = await runGatewayProcess({ REDIS_CLUSTER_NODES: 'redis-1:7000,redis-2' });
    expect(code).toBe(1);
    expect(stderr.trim().split('\n')).toHaveLength(1);
    expect(stderr).toContain('REDIS_CLUSTER_NODES');
  }, 30_000);
});
