/**
 * docker-compose.yml, as docker-compose itself resolves it: the production shape on a 2 GB VPS.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import {
  activeServices,
  COMPOSE_FILE,
  memoryBytes,
  readComposeConfig,
  REPO_ROOT,
  TEST_COMPOSE_ENV,
  validateCompose,
  type ComposeConfig,
  type ComposeService,
} from './deploy-harness.js';

const HOST_RAM_BYTES = 2 * 1024 ** 3;
const LONG_RUNNING = ['nginx', 'gateway', 'redis', 'open-webui', 'prometheus', 'grafana'];

function service(config: ComposeConfig, name: string): ComposeService {
  const found = config.services[name];
  if (!found) throw new Error(`docker-compose.yml has no service ${name}`);
  return found;
}

function env(svc: ComposeService): Record<string, string> {
  return Object.fromEntries(Object.entries(svc.environment ?? {}).map(([k, v]) => [k, v ?? '']));
}

function commandList(svc: ComposeService): string[] {
  if (Array.isArray(svc.command)) return svc.command;
  throw new Error('expected the command in list form');
}

function networksOf(svc: ComposeService): string[] {
  if (!svc.networks) return ['default'];
  return Array.isArray(svc.networks) ? svc.networks : Object.keys(svc.networks);
}

let config: ComposeConfig;

beforeAll(async () => {
  config = await readComposeConfig({ profiles: ['observability'] });
});

describe('docker-compose config', () => {
  it('accepts the file without the observability profile', async () => {
    const result = await validateCompose();
    expect(result.stderr).not.toMatch(/ERROR/);
    expect(result.ok).toBe(true);
  });

  it('accepts the file with the observability profile', async () => {
    const result = await validateCompose({ profiles: ['observability'] });
    expect(result.ok).toBe(true);
  });

  it('refuses to start without the required variables, naming the missing one', async () => {
    const { DOMAIN: _omitted, ...withoutDomain } = TEST_COMPOSE_ENV;
    const result = await validateCompose({ env: withoutDomain });
    expect(result.ok).toBe(false);
    expect(result.stderr).toMatch(/DOMAIN/);
  });
});

describe('services', () => {
  it('runs Redis 7 as a bounded LRU cache without persistence', () => {
    const redis = service(config, 'redis');
    expect(redis.image).toBe('redis:7-alpine');
    const cmd = commandList(redis);
    const flag = (name: string) => cmd[cmd.indexOf(name) + 1];
    expect(cmd[0]).toBe('redis-server');
    expect(flag('--maxmemory')).toBe('256mb');
    expect(flag('--maxmemory-policy')).toBe('allkeys-lru');
    expect(cmd).toContain('--save');
    expect(flag('--save')).toBe('');
    expect(flag('--appendonly')).toBe('no');
  });

  it('gives every service a memory limit, all together within the 2 GB host', () => {
    for (const profiles of [[], ['observability']]) {
      const services = activeServices(config, profiles);
      let total = 0;
      for (const [name, svc] of services) {
        expect(svc.mem_limit, `${name} has no mem_limit`).toBeDefined();
        total += memoryBytes(svc.mem_limit ?? 0);
      }
      expect(total).toBeLessThanOrEqual(HOST_RAM_BYTES);
    }
    // Redis needs room above its 256 MB of data for allocator overhead and client buffers.
    expect(memoryBytes(service(config, 'redis').mem_limit ?? 0)).toBeGreaterThan(256 * 1024 ** 2);
  });

  it('publishes ports only from Nginx: 80 and 443', () => {
    for (const [name, svc] of Object.entries(config.services)) {
      if (name === 'nginx') continue;
      expect(svc.ports ?? [], `${name} publishes a port`).toEqual([]);
    }
    const published = (service(config, 'nginx').ports ?? []).map((p) => (typeof p === 'string' ? p.split(':').at(-2) : String(p.published)));
    expect(published.sort()).toEqual(['443', '80']);
  });

  it('points Open WebUI at the gateway with one of its client keys and user headers on', () => {
    const webui = env(service(config, 'open-webui'));
    const gateway = env(service(config, 'gateway'));
    expect(service(config, 'open-webui').image).toBe('ghcr.io/open-webui/open-webui:main');
    expect(webui.OPENAI_API_BASE_URL).toBe(`http://gateway:${gateway.PORT}/v1`);
    expect(gateway.GATEWAY_API_KEYS?.split(',')).toContain(webui.OPENAI_API_KEY);
    expect(webui.ENABLE_FORWARD_USER_INFO_HEADERS).toBe('true');
    const dataVolume = (service(config, 'open-webui').volumes ?? []).find((v) => (typeof v === 'string' ? v.split(':')[1] : v.target) === '/app/backend/data');
    const source = typeof dataVolume === 'string' ? dataVolume.split(':')[0] : dataVolume?.source;
    expect(Object.keys(config.volumes ?? {})).toContain(source);
  });

  it('configures the gateway so that it starts: a valid config listening on all interfaces', () => {
    const gateway = service(config, 'gateway');
    expect(gateway.build).toBeDefined();
    // Passing the resolved environment through the gateway's own validation catches a value the
    // gateway would refuse at start (e.g. HOST=0.0.0.0 without client keys, a bad scope).
    const parsed = loadConfig({ ...env(gateway), OPENAI_API_KEYS: 'sk-test' });
    expect(parsed.host).toBe('0.0.0.0');
    expect(parsed.redisUrl).toBe('redis://redis:6379');
    expect(parsed.gatewayApiKeys.length).toBeGreaterThan(0);
    // tini forwards SIGTERM/SIGHUP (key reload) to node and reaps children.
    expect(gateway.init).toBe(true);
  });

  it('passes every variable of .env.example on to the gateway (or compose or the certificate bootstrap uses it)', async () => {
    const example = await readFile(join(REPO_ROOT, '.env.example'), 'utf8');
    const names = [...example.matchAll(/^([A-Z][A-Z0-9_]*)=/gm)].map((m) => m[1] ?? '');
    const composeText = await readFile(COMPOSE_FILE, 'utf8');
    const bootstrap = await readFile(join(REPO_ROOT, 'deploy/bootstrap-cert.sh'), 'utf8');
    const gatewayEnv = Object.keys(service(config, 'gateway').environment ?? {});
    expect(names.length).toBeGreaterThan(10);
    for (const name of names) {
      const used = gatewayEnv.includes(name) || composeText.includes(`\${${name}`) || bootstrap.includes(`env_value ${name}`);
      expect(used, `${name} from .env.example never reaches a container`).toBe(true);
    }
  });

  it('has health checks and restart policies for every long-running service', () => {
    for (const name of LONG_RUNNING) {
      const svc = service(config, name);
      expect(svc.healthcheck?.test, `${name} has no health check`).toBeDefined();
      expect(svc.healthcheck?.disable ?? false).toBe(false);
      expect(svc.restart, `${name} has no restart policy`).toBe('unless-stopped');
    }
    expect(JSON.stringify(service(config, 'gateway').healthcheck?.test)).toContain('/healthz');
    expect(service(config, 'certbot').restart).toBe('unless-stopped');
  });

  it('keeps Redis and the metrics path on an internal network', () => {
    expect(config.networks?.backend?.internal).toBe(true);
    expect(networksOf(service(config, 'redis'))).toEqual(['backend']);
    expect(networksOf(service(config, 'gateway'))).toContain('backend');
    expect(networksOf(service(config, 'prometheus'))).toEqual(['backend']);
    expect(networksOf(service(config, 'nginx'))).not.toContain('backend');
  });

  it('renews certificates in a loop and lets Nginx reload on a new certificate', () => {
    const certbot = service(config, 'certbot');
    expect(JSON.stringify(certbot.entrypoint)).toMatch(/while :; do certbot renew --webroot/);
    const nginxVolumes = JSON.stringify(service(config, 'nginx').volumes);
    expect(nginxVolumes).toContain('/docker-entrypoint.d/40-reload-on-certificate-change.sh');
    expect(nginxVolumes).toContain('/etc/nginx/templates');
  });

  it('keeps Prometheus and Grafana off by default, behind the observability profile', () => {
    expect(service(config, 'prometheus').profiles).toEqual(['observability']);
    expect(service(config, 'grafana').profiles).toEqual(['observability']);
    const defaults = activeServices(config, []).map(([name]) => name);
    expect(defaults.sort()).toEqual(['certbot', 'gateway', 'nginx', 'open-webui', 'redis']);
    expect(JSON.stringify(service(config, 'prometheus').volumes)).toContain('/etc/prometheus/rules');
    expect(JSON.stringify(service(config, 'grafana').volumes)).toContain('/etc/grafana/provisioning');
  });
});
