/**
 * docs/deploy.md and the operator scripts point at things that exist: files of this repository,
 * variables the compose file reads, services it defines. A renamed file or variable fails here
 * instead of in an operator's terminal.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { COMPOSE_FILE, readComposeConfig, REPO_ROOT, type ComposeConfig } from './deploy-harness.js';

const run = promisify(execFile);
const SCRIPTS = ['deploy/bootstrap-cert.sh', 'deploy/check-ops.sh', 'nginx/docker-entrypoint.d/40-reload-on-certificate-change.sh'];

let guide: string;
let composeText: string;
let config: ComposeConfig;

beforeAll(async () => {
  guide = await readFile(join(REPO_ROOT, 'docs/deploy.md'), 'utf8');
  composeText = await readFile(COMPOSE_FILE, 'utf8');
  config = await readComposeConfig({ profiles: ['observability'] });
});

/** Repository paths named in a text: deploy/…, nginx/…, docs/…, and the root files. */
function repoPaths(text: string): string[] {
  const found = text.match(/(?<![\w/.-])(?:deploy|nginx|docs)\/[\w./-]*\w|\bdocker-compose\.yml\b|\.env\.example\b/g) ?? [];
  return [...new Set(found)];
}

describe('docs/deploy.md', () => {
  it('names only files that exist', () => {
    const paths = repoPaths(guide);
    expect(paths.length).toBeGreaterThan(8);
    for (const path of paths) expect(existsSync(join(REPO_ROOT, path)), path).toBe(true);
  });

  it('documents every variable the compose file requires, and only variables something reads', async () => {
    const bootstrap = await readFile(join(REPO_ROOT, 'deploy/bootstrap-cert.sh'), 'utf8');
    const required = [...composeText.matchAll(/\$\{([A-Z_]+):\?/g)].map((m) => m[1] ?? '');
    expect(required.length).toBeGreaterThan(0);
    for (const name of required) expect(guide, name).toContain(`\`${name}\``);
    const table = guide.slice(guide.indexOf('## 2. Configure'), guide.indexOf('## 3.'));
    for (const [, name] of table.matchAll(/^\| `([A-Z_]+)` \|/gm)) {
      const read = composeText.includes(`\${${name}`) || bootstrap.includes(`env_value ${name}`);
      expect(read, `${name} is documented but neither compose nor the bootstrap reads it`).toBe(true);
    }
  });

  it('uses the compose services it talks about', () => {
    for (const [, service] of guide.matchAll(
      /docker compose (?:[\w-]+ )*?(?:kill -s \w+|logs(?: --since \w+)?|exec(?: -T)?|ps|build|stop|start|pull(?: [\w-]+)*?|up -d) ([a-z][\w-]*)/g,
    )) {
      if (service === 'gateway' || Object.keys(config.services).includes(service ?? '')) continue;
      expect.fail(`docs/deploy.md uses an unknown service: ${service}`);
    }
    expect(guide).toContain('docker compose kill -s SIGHUP gateway');
  });
});

describe('operator scripts', () => {
  it('are valid shell and executable', async () => {
    for (const script of SCRIPTS) {
      await run('bash', ['-n', join(REPO_ROOT, script)]);
      const { stdout } = await run('stat', ['-c', '%A', join(REPO_ROOT, script)]);
      expect(stdout, script).toMatch(/^-rwx/);
    }
  });

  it('refer only to files and services that exist', async () => {
    for (const script of SCRIPTS) {
      const text = await readFile(join(REPO_ROOT, script), 'utf8');
      for (const path of repoPaths(text)) expect(existsSync(join(REPO_ROOT, path)), `${script}: ${path}`).toBe(true);
      for (const [, service] of text.matchAll(/\b(?:run --rm [^\n]*?|exec -T |up -d |ps -q )(nginx|gateway|certbot|prometheus|redis|open-webui|grafana)\b/g)) {
        expect(Object.keys(config.services), script).toContain(service);
      }
    }
  });
});
