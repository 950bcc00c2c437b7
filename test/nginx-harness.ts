/**
 * A real Nginx for tests: renders nginx/templates/*.template the way the official image does
 * (envsubst of the listed variables), wraps it in a main nginx.conf like the image's, with every
 * path (pid, logs, temp files, certificate) inside a temporary prefix, and listens on free
 * loopback ports. Needs the `nginx` and `openssl` binaries.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT } from './deploy-harness.js';
import { freePort } from './helpers/free-port.js';

const run = promisify(execFile);

export const TEMPLATE_DIR = join(REPO_ROOT, 'nginx', 'templates');

/** `${NAME}` references, the only form the templates use (envsubst also knows bare `$NAME`). */
const TEMPLATE_VARIABLE = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

export function templateVariables(template: string): string[] {
  return [...new Set([...template.matchAll(TEMPLATE_VARIABLE)].map((m) => m[1] ?? ''))].sort();
}

/** envsubst restricted to the given variables; a referenced variable without a value throws. */
export function renderTemplate(template: string, vars: Readonly<Record<string, string>>): string {
  return template.replace(TEMPLATE_VARIABLE, (_whole, name: string) => {
    const value = vars[name];
    if (value === undefined) throw new Error(`template variable ${name} has no value`);
    return value;
  });
}

/** A self-signed certificate for localhost/127.0.0.1 under Let's Encrypt's file names. */
export async function makeTestCertificate(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await run('openssl', [
    'req',
    '-x509',
    '-nodes',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-days',
    '2',
    '-subj',
    '/CN=localhost',
    '-addext',
    'subjectAltName=DNS:localhost,IP:127.0.0.1',
    '-keyout',
    join(dir, 'privkey.pem'),
    '-out',
    join(dir, 'fullchain.pem'),
  ]);
}

export interface NginxOptions {
  gatewayUpstream: string;
  openWebuiUpstream: string;
  grafanaUpstream?: string;
  domain?: string;
  apiRate?: string;
  apiBurst?: string;
  signinRate?: string;
  signinBurst?: string;
  /** Extra or overriding template variables. */
  vars?: Record<string, string>;
}

export interface PreparedNginx {
  prefix: string;
  confPath: string;
  httpPort: number;
  httpsPort: number;
  certDir: string;
  acmeWebroot: string;
  logDir: string;
  vars: Record<string, string>;
  /** `nginx -t`: exit code and everything it printed. */
  test(): Promise<{ ok: boolean; output: string }>;
  start(): Promise<RunningNginx>;
  cleanup(): Promise<void>;
}

export interface RunningNginx {
  process: ChildProcess;
  stop(): Promise<void>;
}

function mainConf(prefix: string): string {
  // Mirrors the official image's /etc/nginx/nginx.conf, with every path in the prefix.
  const mimeTypes = existsSync('/etc/nginx/mime.types') ? 'include /etc/nginx/mime.types;' : '';
  return `
worker_processes 1;
pid ${prefix}/nginx.pid;
error_log ${prefix}/logs/error.log warn;
events { worker_connections 512; }
http {
    ${mimeTypes}
    default_type application/octet-stream;
    sendfile on;
    keepalive_timeout 65;
    client_body_temp_path ${prefix}/temp/body;
    proxy_temp_path ${prefix}/temp/proxy;
    fastcgi_temp_path ${prefix}/temp/fastcgi;
    uwsgi_temp_path ${prefix}/temp/uwsgi;
    scgi_temp_path ${prefix}/temp/scgi;
    include ${prefix}/conf.d/*.conf;
}
`;
}

export async function prepareNginx(opts: NginxOptions): Promise<PreparedNginx> {
  const prefix = await mkdtemp(join(tmpdir(), 'cachegate-nginx-'));
  // Workers run as an unprivileged user when the test runs as root: let them into the prefix.
  await chmod(prefix, 0o755);
  const certDir = join(prefix, 'tls');
  const acmeWebroot = join(prefix, 'acme');
  const logDir = join(prefix, 'logs');
  for (const dir of [acmeWebroot, logDir, join(prefix, 'temp'), join(prefix, 'conf.d')]) {
    await mkdir(dir, { recursive: true, mode: 0o755 });
  }
  await makeTestCertificate(certDir);
  const httpPort = await freePort();
  const httpsPort = await freePort();
  const vars: Record<string, string> = {
    DOMAIN: opts.domain ?? 'localhost',
    NGINX_HTTP_LISTEN: `127.0.0.1:${httpPort}`,
    NGINX_HTTPS_LISTEN: `127.0.0.1:${httpsPort}`,
    NGINX_TLS_DIR: certDir,
    NGINX_ACME_WEBROOT: acmeWebroot,
    NGINX_LOG_DIR: logDir,
    NGINX_RESOLVER: '127.0.0.1',
    NGINX_GATEWAY_UPSTREAM: opts.gatewayUpstream,
    NGINX_OPEN_WEBUI_UPSTREAM: opts.openWebuiUpstream,
    NGINX_GRAFANA_UPSTREAM: opts.grafanaUpstream ?? '127.0.0.1:9',
    NGINX_API_RATE: opts.apiRate ?? '20r/s',
    NGINX_API_BURST: opts.apiBurst ?? '40',
    NGINX_SIGNIN_RATE: opts.signinRate ?? '10r/m',
    NGINX_SIGNIN_BURST: opts.signinBurst ?? '5',
    ...opts.vars,
  };
  for (const file of await readdir(TEMPLATE_DIR)) {
    if (!file.endsWith('.template')) continue;
    const rendered = renderTemplate(await readFile(join(TEMPLATE_DIR, file), 'utf8'), vars);
    await writeFile(join(prefix, 'conf.d', file.replace(/\.template$/, '')), rendered);
  }
  const confPath = join(prefix, 'nginx.conf');
  await writeFile(confPath, mainConf(prefix));
  const baseArgs = ['-p', prefix, '-c', confPath, '-e', join(logDir, 'error.log')];

  return {
    prefix,
    confPath,
    httpPort,
    httpsPort,
    certDir,
    acmeWebroot,
    logDir,
    vars,
    async test() {
      try {
        const { stdout, stderr } = await run('nginx', [...baseArgs, '-t']);
        return { ok: true, output: stdout + stderr };
      } catch (error) {
        const { stdout = '', stderr = '' } = error as { stdout?: string; stderr?: string };
        return { ok: false, output: stdout + stderr };
      }
    },
    async start() {
      const child = spawn('nginx', [...baseArgs, '-g', 'daemon off;'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      child.stdout?.on('data', (c: Buffer) => (output += c.toString()));
      child.stderr?.on('data', (c: Buffer) => (output += c.toString()));
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      try {
        await waitForPort(httpsPort, child);
        await waitForPort(httpPort, child);
      } catch (error) {
        child.kill('SIGKILL');
        throw new Error(`nginx did not start: ${output}`, { cause: error });
      }
      return {
        process: child,
        async stop() {
          if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
          await exited;
        },
      };
    },
    async cleanup() {
      await rm(prefix, { recursive: true, force: true });
    },
  };
}

async function waitForPort(port: number, child: ChildProcess, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`nginx exited with ${child.exitCode}`);
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`port ${port} did not open within ${timeoutMs} ms`);
}
