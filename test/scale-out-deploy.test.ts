/**
 * The deployment runs N gateway replicas: the compose file lets `--scale gateway=N` work (no
 * container name, no published port), passes the Redis topology variables through (and an
 * override points the replicas at a Cluster instead of the bundled Redis), Nginx reaches the
 * replicas through one upstream block with keepalive, SSE unbuffered, and reloads when the set of
 * replicas changes.
 */
import { execFile, spawn } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { redisTargetOf } from '../src/cache/redis-connection.js';
import { loadConfig } from '../src/config.js';
import { COMPOSE_FILE, readComposeConfig, REPO_ROOT, TEST_COMPOSE_ENV, yamlToJson, type ComposeConfig } from './deploy-harness.js';
import { renderTemplate, TEMPLATE_DIR } from './nginx-harness.js';

const run = promisify(execFile);
const WATCHER = join(REPO_ROOT, 'nginx/docker-entrypoint.d/41-reload-on-gateway-change.sh');
let dir: string;
let config: ComposeConfig;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cachegate-scale-out-'));
  config = await readComposeConfig();
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const gatewayEnv = (compose: ComposeConfig): Record<string, string> =>
  Object.fromEntries(Object.entries(compose.services.gateway?.environment ?? {}).map(([k, v]) => [k, v ?? '']));

describe('docker-compose.yml with several gateway replicas', () => {
  it('lets the gateway scale: no container name, no published port', async () => {
    const text = await readFile(COMPOSE_FILE, 'utf8');
    const gateway = config.services.gateway as Record<string, unknown>;
    expect(gateway['container_name']).toBeUndefined();
    expect(gateway['ports']).toBeUndefined();
    // No service pins a name either (a fixed name would make a second container of it impossible).
    expect(text).not.toMatch(/^\s+container_name:/m);
  });

  it('keeps the bundled Redis by default and passes the topology variables through', () => {
    const env = gatewayEnv(config);
    expect(env.REDIS_URL).toBe('redis://redis:6379');
    for (const name of ['REDIS_CLUSTER_NODES', 'REDIS_SENTINELS', 'REDIS_SENTINEL_MASTER', 'REDIS_PASSWORD']) expect(env).toHaveProperty(name);
    expect(redisTargetOf(loadConfig({ ...env, OPENAI_API_KEYS: 'sk-fake-test' }))).toEqual({ kind: 'url', url: 'redis://redis:6379' });
  });

  it('with deploy/external-redis.yml and REDIS_CLUSTER_NODES in .env, the replicas dial the Cluster', async () => {
    const envFile = join(dir, 'cluster.env');
    const values = { ...TEST_COMPOSE_ENV, REDIS_CLUSTER_NODES: 'redis-a:6379,redis-b:6379,redis-c:6379', REDIS_PASSWORD: 'fake-redis-pass' };
    await writeFile(
      envFile,
      `${Object.entries(values)
        .map(([k, v]) => `${k}=${v}`)
        .join('\n')}\n`,
    );
    const { stdout } = await run('docker-compose', ['--env-file', envFile, '-f', COMPOSE_FILE, '-f', join(REPO_ROOT, 'deploy/external-redis.yml'), 'config'], {
      cwd: REPO_ROOT,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root' },
    });
    const merged = (await yamlToJson(stdout)) as ComposeConfig;
    const env = gatewayEnv(merged);
    expect(redisTargetOf(loadConfig({ ...env, OPENAI_API_KEYS: 'sk-fake-test' }))).toEqual({
      kind: 'cluster',
      nodes: [
        { host: 'redis-a', port: 6379 },
        { host: 'redis-b', port: 6379 },
        { host: 'redis-c', port: 6379 },
      ],
      password: 'fake-redis-pass',
    });
  });

  it('starts Nginx after the gateway (its upstream block resolves the replicas at load) with the reload watcher mounted', () => {
    const nginx = config.services.nginx!;
    expect(nginx.depends_on).toMatchObject({ gateway: {} });
    const mounts = (nginx.volumes ?? []).map((volume) => (typeof volume === 'string' ? volume.split(':')[1] : volume.target));
    expect(mounts).toContain('/docker-entrypoint.d/41-reload-on-gateway-change.sh');
  });
});

describe('Nginx in front of the replicas', () => {
  it('sends the API to one upstream block of every replica, with keepalive, unbuffered', async () => {
    const template = await readFile(join(TEMPLATE_DIR, 'cachegate.conf.template'), 'utf8');
    const nginxEnv = Object.fromEntries(Object.entries(config.services.nginx?.environment ?? {}).map(([k, v]) => [k, v ?? '']));
    const rendered = renderTemplate(template, nginxEnv);
    const upstream = /upstream cachegate_gateway \{([^}]*)\}/.exec(rendered)?.[1] ?? '';
    expect(upstream).toMatch(/^\s*server gateway:8080\b/m);
    expect(upstream).toMatch(/^\s*keepalive \d+;/m);
    const api = /location ~ \^\/\(\?:openai\/\)\?v1\/ \{([\s\S]*?)\n {4}\}/.exec(rendered)?.[1] ?? '';
    expect(api).toContain('proxy_pass http://cachegate_gateway;');
    expect(api).toContain('proxy_http_version 1.1;');
    expect(api).toContain('proxy_set_header Connection "";');
    expect(api).toContain('proxy_buffering off;');
  });

  it('41-reload-on-gateway-change.sh reloads Nginx when the replicas change, and only then', async () => {
    const bin = join(dir, 'bin');
    const addresses = join(dir, 'addresses');
    const log = join(dir, 'nginx-calls.log');
    await run('mkdir', ['-p', bin]);
    await writeFile(addresses, '10.0.0.2\n');
    await writeFile(log, '');
    // Stand-ins: getent answers from a file (one line per replica, as glibc's ahostsv4 does),
    // nslookup knows nothing, nginx records what it was asked.
    await writeFile(join(bin, 'getent'), `#!/bin/sh\n[ "$2" = gateway ] && awk '{ print $1 "  STREAM gateway" }' "${addresses}"\n`);
    await writeFile(join(bin, 'nslookup'), '#!/bin/sh\nexit 1\n');
    await writeFile(join(bin, 'nginx'), `#!/bin/sh\necho "$*" >> "${log}"\n`);
    for (const name of ['getent', 'nslookup', 'nginx']) await chmod(join(bin, name), 0o755);
    const child = spawn('sh', [WATCHER], {
      detached: true,
      stdio: 'ignore',
      env: { PATH: `${bin}:${process.env.PATH ?? ''}`, NGINX_GATEWAY_UPSTREAM: 'gateway:8080', NGINX_GATEWAY_CHECK_SECONDS: '0.1' },
    });
    const reloads = async (): Promise<number> => (await readFile(log, 'utf8')).split('\n').filter((line) => line === '-s reload').length;
    const waitFor = async (count: number): Promise<number> => {
      for (let i = 0; i < 100 && (await reloads()) < count; i++) await new Promise((resolve) => setTimeout(resolve, 50));
      return reloads();
    };
    try {
      await new Promise((resolve) => setTimeout(resolve, 400));
      expect(await reloads()).toBe(0); // the same replica: no reload
      await writeFile(addresses, '10.0.0.2\n10.0.0.3\n10.0.0.4\n'); // --scale gateway=3
      expect(await waitFor(1)).toBe(1);
      await new Promise((resolve) => setTimeout(resolve, 400));
      expect(await reloads()).toBe(1); // unchanged since: no second reload
      await writeFile(addresses, ''); // the name does not resolve for a moment: keep the configuration
      await new Promise((resolve) => setTimeout(resolve, 400));
      expect(await reloads()).toBe(1);
      await writeFile(addresses, '10.0.0.3\n10.0.0.2\n'); // scaled down to two
      expect(await waitFor(2)).toBe(2);
    } finally {
      process.kill(-(child.pid ?? 0), 'SIGKILL');
    }
  });
});
