/**
 * The Nginx template renders the way the official image renders it, with exactly the variables
 * docker-compose.yml gives the nginx service, and `nginx -t` accepts the result.
 */
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readComposeConfig } from './deploy-harness.js';
import { prepareNginx, renderTemplate, TEMPLATE_DIR, templateVariables, type PreparedNginx } from './nginx-harness.js';

const TEMPLATE = join(TEMPLATE_DIR, 'cachegate.conf.template');

let template: string;
let composeEnv: Record<string, string>;

beforeAll(async () => {
  template = await readFile(TEMPLATE, 'utf8');
  const config = await readComposeConfig();
  composeEnv = Object.fromEntries(Object.entries(config.services.nginx?.environment ?? {}).map(([k, v]) => [k, v ?? '']));
});

/** What the image's 20-envsubst-on-templates.sh does: envsubst over the filtered defined names. */
async function renderLikeTheImage(env: Record<string, string>): Promise<string> {
  const filter = new RegExp(env.NGINX_ENVSUBST_FILTER ?? '');
  const defined = Object.keys(env)
    .filter((name) => filter.test(name))
    .map((name) => `\${${name}}`)
    .join(' ');
  const child = spawn('envsubst', [defined], { env: { PATH: process.env.PATH, ...env }, stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  const done = new Promise<number | null>((resolve) => child.on('close', resolve));
  child.stdin.end(template);
  expect(await done).toBe(0);
  return out;
}

describe('nginx template', () => {
  it('uses only variables the compose file sets, all passed by its envsubst filter', () => {
    const used = templateVariables(template);
    const filter = new RegExp(composeEnv.NGINX_ENVSUBST_FILTER ?? '^$');
    expect(used.length).toBeGreaterThan(5);
    for (const name of used) {
      expect(composeEnv[name], `${name} is not set for the nginx service`).toBeDefined();
      expect(name).toMatch(filter);
    }
  });

  it('renders identically with the image envsubst mechanism and the test renderer', async () => {
    const rendered = await renderLikeTheImage(composeEnv);
    expect(rendered).toBe(renderTemplate(template, composeEnv));
    // No variable left for nginx to choke on, and nginx's own variables untouched.
    expect(rendered).not.toMatch(/\$\{[A-Z_]+\}/);
    expect(rendered).toContain('$request_uri');
    expect(rendered).toContain('server_name chat.example.test;');
    expect(rendered).toContain('/etc/letsencrypt/live/chat.example.test/fullchain.pem');
  });
});

describe('nginx -t', () => {
  let nginx: PreparedNginx;

  beforeAll(async () => {
    // The compose values, with only what must live in a temporary prefix replaced, and the
    // gateway's service name (resolved by Docker's DNS, when the upstream block loads) by loopback.
    expect(composeEnv.NGINX_GATEWAY_UPSTREAM).toBe('gateway:8080');
    nginx = await prepareNginx({
      gatewayUpstream: (composeEnv.NGINX_GATEWAY_UPSTREAM ?? '').replace(/^gateway:/, '127.0.0.1:'),
      openWebuiUpstream: composeEnv.NGINX_OPEN_WEBUI_UPSTREAM ?? '',
      grafanaUpstream: composeEnv.NGINX_GRAFANA_UPSTREAM ?? '',
      domain: composeEnv.DOMAIN ?? '',
      vars: { NGINX_RESOLVER: composeEnv.NGINX_RESOLVER ?? '' },
    });
  });

  afterAll(async () => {
    await nginx?.cleanup();
  });

  it('accepts the rendered configuration with a test certificate', async () => {
    const result = await nginx.test();
    expect(result.output).toContain('syntax is ok');
    expect(result.ok).toBe(true);
  });

  it('rejects it when the certificate is missing (the check is real)', async () => {
    const broken = await prepareNginx({
      gatewayUpstream: '127.0.0.1:1',
      openWebuiUpstream: '127.0.0.1:1',
      vars: { NGINX_TLS_DIR: join(nginx.prefix, 'no-such-dir') },
    });
    try {
      const result = await broken.test();
      expect(result.ok).toBe(false);
      expect(result.output).toMatch(/fullchain\.pem/);
    } finally {
      await broken.cleanup();
    }
  });
});
