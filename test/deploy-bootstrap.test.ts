/**
 * The certificate life cycle without Docker or Let's Encrypt: the first-certificate bootstrap
 * script against a stand-in `docker` that records what it is asked to do, the temporary
 * certificate it makes (accepted by `nginx -t`), and the watcher that reloads Nginx when certbot
 * renews the certificate.
 */
import { execFile, spawn } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, writeFile, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from './deploy-harness.js';
import { prepareNginx } from './nginx-harness.js';

const run = promisify(execFile);
const BOOTSTRAP = join(REPO_ROOT, 'deploy/bootstrap-cert.sh');
const TEMPORARY_CERT = join(REPO_ROOT, 'deploy/temporary-cert.py');
const RELOAD_WATCHER = join(REPO_ROOT, 'nginx/docker-entrypoint.d/40-reload-on-certificate-change.sh');

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cachegate-bootstrap-'));
  // A stand-in `docker`: logs each call; STUB_* variables choose the answers.
  await writeFile(
    join(dir, 'docker'),
    `#!/usr/bin/env bash
printf '%s\\n' "$*" >> "$STUB_LOG"
case "$*" in
  *"test -f '/etc/letsencrypt/renewal/"*) exit "\${STUB_HAVE_CERT:-1}" ;;
  *"--entrypoint python3"*) cat > "$STUB_LOG.python"; exit 0 ;;
  *"--entrypoint certbot"*) exit "\${STUB_CERTBOT_EXIT:-0}" ;;
esac
exit 0
`,
  );
  await chmod(join(dir, 'docker'), 0o755);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface BootstrapRun {
  code: number;
  calls: string[];
  stderr: string;
  /** What the last `--entrypoint python3` call got on its standard input. */
  pythonInput: () => Promise<string>;
}

async function bootstrap(args: string[], stub: Record<string, string> = {}): Promise<BootstrapRun> {
  const log = join(dir, `calls-${Math.random().toString(36).slice(2)}.log`);
  await writeFile(log, '');
  const env = {
    PATH: `${dir}:${process.env.PATH ?? '/usr/bin:/bin'}`,
    ENV_FILE: join(dir, 'no-such.env'),
    DOMAIN: 'chat.example.test',
    LETSENCRYPT_EMAIL: 'ops@example.test',
    STUB_LOG: log,
    ...stub,
  };
  let code = 0;
  let stderr = '';
  try {
    await run('bash', [BOOTSTRAP, ...args], { env });
  } catch (error) {
    code = (error as { code?: number }).code ?? 1;
    stderr = (error as { stderr?: string }).stderr ?? '';
  }
  const calls = (await readFile(log, 'utf8')).split('\n').filter(Boolean);
  return { code, calls, stderr, pythonInput: () => readFile(`${log}.python`, 'utf8') };
}

/** Runs a command with `input` on its standard input, the way the bootstrap pipes the script. */
function pipeInto(command: string, args: string[], input: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['pipe', 'inherit', 'inherit'] });
    child.on('error', reject);
    child.on('exit', (c) => (c === 0 ? resolve() : reject(new Error(`${command} exited ${c}`))));
    child.stdin.end(input);
  });
}

/** Index of the first call containing every fragment (-1 when none). */
function step(calls: string[], ...fragments: string[]): number {
  return calls.findIndex((c) => fragments.every((f) => c.includes(f)));
}

describe('deploy/bootstrap-cert.sh', () => {
  it('makes a temporary certificate, starts Nginx, runs the webroot challenge, then reloads', async () => {
    const { code, calls, pythonInput } = await bootstrap([]);
    expect(code).toBe(0);
    const temporary = step(calls, '--entrypoint python3 certbot -', '/etc/letsencrypt/live/chat.example.test');
    const nginxUp = step(calls, 'compose up -d nginx');
    const cleared = step(calls, "rm -rf '/etc/letsencrypt/live/chat.example.test'");
    const challenge = step(calls, '--entrypoint certbot certbot certonly', '--webroot -w /var/www/certbot', '-d chat.example.test', '--email ops@example.test');
    const reload = step(calls, 'compose exec -T nginx nginx -s reload');
    expect([temporary, nginxUp, cleared, challenge, reload].every((i) => i >= 0)).toBe(true);
    expect(temporary).toBeLessThan(nginxUp);
    expect(nginxUp).toBeLessThan(cleared);
    expect(cleared).toBeLessThan(challenge);
    expect(challenge).toBeLessThan(reload);
    expect(calls[challenge]).not.toContain('--staging');
    // The temporary certificate comes from deploy/temporary-cert.py, tested below.
    expect(await pythonInput()).toBe(await readFile(TEMPORARY_CERT, 'utf8'));
  });

  it('passes --staging through to certbot', async () => {
    const { code, calls } = await bootstrap(['--staging']);
    expect(code).toBe(0);
    expect(calls[step(calls, 'certonly')]).toContain('--staging');
  });

  it('does nothing when a certificate exists already', async () => {
    const { code, calls } = await bootstrap([], { STUB_HAVE_CERT: '0' });
    expect(code).toBe(0);
    expect(calls).toHaveLength(1);
  });

  it('puts a temporary certificate back and fails when certbot fails, without reloading', async () => {
    const { code, calls, stderr } = await bootstrap([], { STUB_CERTBOT_EXIT: '1' });
    expect(code).toBe(1);
    expect(stderr).toMatch(/certbot failed/);
    const challenge = step(calls, 'certonly');
    const restored = calls.findIndex((c, i) => i > challenge && c.includes('--entrypoint python3'));
    expect(restored).toBeGreaterThan(challenge);
    expect(step(calls, 'nginx -s reload')).toBe(-1);
  });

  it('refuses to run without a domain', async () => {
    const { code, calls, stderr } = await bootstrap([], { DOMAIN: '' });
    expect(code).toBe(1);
    expect(stderr).toMatch(/set DOMAIN/);
    expect(calls).toEqual([]);
  });
});

describe('deploy/temporary-cert.py', () => {
  it('writes a certificate and key that nginx -t accepts, the key private', async () => {
    const live = join(dir, 'live', 'chat.example.test');
    await pipeInto('/usr/bin/python3', ['-', live], await readFile(TEMPORARY_CERT));
    const { stdout } = await run('openssl', ['x509', '-in', join(live, 'fullchain.pem'), '-noout', '-enddate']);
    expect(stdout).toMatch(/notAfter=/);
    const { stdout: mode } = await run('stat', ['-c', '%a', join(live, 'privkey.pem')]);
    expect(mode.trim()).toBe('600');
    const nginx = await prepareNginx({ gatewayUpstream: '127.0.0.1:1', openWebuiUpstream: '127.0.0.1:1', vars: { NGINX_TLS_DIR: live } });
    try {
      const result = await nginx.test();
      expect(result.ok, result.output).toBe(true);
    } finally {
      await nginx.cleanup();
    }
  });
});

describe('nginx/docker-entrypoint.d/40-reload-on-certificate-change.sh', () => {
  it('reloads Nginx when the certificate changes, and only then', async () => {
    const tls = join(dir, 'watch-tls');
    const log = join(dir, 'nginx-calls.log');
    await run('mkdir', ['-p', tls]);
    await writeFile(join(tls, 'fullchain.pem'), 'first certificate');
    await writeFile(log, '');
    // A stand-in `nginx` that records the signal it was asked to send.
    const bin = join(dir, 'watch-bin');
    await run('mkdir', ['-p', bin]);
    await writeFile(join(bin, 'nginx'), `#!/bin/sh\necho "$*" >> "${log}"\n`);
    await chmod(join(bin, 'nginx'), 0o755);

    // Its own process group, so the background watcher it leaves running can be stopped by id.
    const child = spawn('sh', [RELOAD_WATCHER], {
      detached: true,
      stdio: 'ignore',
      env: { PATH: `${bin}:${process.env.PATH ?? ''}`, NGINX_TLS_DIR: tls, NGINX_CERT_CHECK_SECONDS: '0.1' },
    });
    const group = child.pid ?? 0;
    const reloads = async () => (await readFile(log, 'utf8')).split('\n').filter((l) => l === '-s reload').length;
    const waitFor = async (count: number) => {
      for (let i = 0; i < 100 && (await reloads()) < count; i++) await new Promise((r) => setTimeout(r, 50));
      return reloads();
    };
    try {
      await new Promise((r) => setTimeout(r, 400));
      expect(await reloads()).toBe(0); // unchanged certificate: no reload
      // certbot renews: a new file (another size and mtime) behind the same name.
      await writeFile(join(tls, 'fullchain.pem'), 'renewed certificate, longer');
      await utimes(join(tls, 'fullchain.pem'), new Date(), new Date(Date.now() + 60_000));
      expect(await waitFor(1)).toBe(1);
      await new Promise((r) => setTimeout(r, 400));
      expect(await reloads()).toBe(1); // once per change
    } finally {
      try {
        process.kill(-group, 'SIGTERM');
      } catch {
        // already gone
      }
    }
  });
});
