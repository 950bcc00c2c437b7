/**
 * The cache ceiling of this machine: Nginx's proxy_cache in front of the same fake upstream,
 * caching POST answers keyed on the URI and the request body. One worker process, like the
 * gateway's one event loop, so the comparison is engine against engine on the same core budget.
 * Also the deployment's load balancer in front of gateway replicas (the scale-out rows).
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { childPids } from './proc-stats.js';
import { startProcess, waitForHttp, type Managed } from './processes.js';

export function nginxBinary(): string | undefined {
  for (const candidate of ['nginx', '/usr/sbin/nginx', '/usr/local/sbin/nginx']) {
    try {
      execFileSync(candidate, ['-v'], { stdio: 'ignore' });
      return candidate;
    } catch {
      // Try the next place.
    }
  }
  return undefined;
}

/** What every bench Nginx starts with: its workers, and its files (pid, logs, temp paths) in `dir`. */
function preamble(dir: string, workers: string): string {
  return `
worker_processes ${workers};
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;`;
}

export function nginxConfig(dir: string, port: number, upstreamPort: number): string {
  return `${preamble(dir, '1')}
  proxy_cache_path ${dir}/cache levels=1:2 keys_zone=bench:10m max_size=256m inactive=60m use_temp_path=off;
  upstream fake { server 127.0.0.1:${upstreamPort}; keepalive 64; }
  server {
    listen 127.0.0.1:${port};
    keepalive_requests 100000;
    # The body must be in memory for $request_body to exist (and so for the cache key).
    client_body_buffer_size 64k;
    client_max_body_size 64k;
    location / {
      proxy_pass http://fake;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Authorization "Bearer sk-bench-nginx";
      proxy_cache bench;
      proxy_cache_methods POST;
      proxy_cache_key "$request_uri|$request_body";
      proxy_cache_valid 200 10m;
      proxy_cache_lock on;
      proxy_ignore_headers Cache-Control Expires Set-Cookie;
      add_header X-Cache $upstream_cache_status;
    }
    location = /__ready { return 200 "ok"; }
  }
}
`;
}

export interface RunningNginx {
  managed: Managed;
  url: string;
  /** Master and worker: the CPU and memory of both count. */
  pids(): number[];
}

export async function startNginx(binary: string, dir: string, port: number, upstreamPort: number): Promise<RunningNginx> {
  return startNginxWith(binary, dir, port, nginxConfig(dir, port, upstreamPort));
}

/**
 * The deployment's load balancer (nginx/templates/cachegate.conf.template) in front of gateway
 * replicas: an `upstream` block with keepalive, round robin, streams unbuffered; no cache, no
 * access log (as the other Nginx row), no rate limit or TLS. `worker_processes auto` is the
 * official image's default, so it is the deployment's too.
 */
export function nginxBalancerConfig(dir: string, port: number, gatewayPorts: readonly number[]): string {
  return `${preamble(dir, 'auto')}
  upstream cachegate_gateway {
${gatewayPorts.map((gatewayPort) => `    server 127.0.0.1:${gatewayPort} max_fails=1 fail_timeout=10s;`).join('\n')}
    keepalive 32;
    keepalive_timeout 60s;
  }
  server {
    listen 127.0.0.1:${port};
    keepalive_requests 100000;
    location /v1/ {
      proxy_pass http://cachegate_gateway;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_buffering off;
      proxy_cache off;
      proxy_request_buffering off;
      proxy_read_timeout 900s;
      proxy_send_timeout 900s;
      client_max_body_size 26m;
    }
    location = /__ready { return 200 "ok"; }
  }
}
`;
}

/** Nginx with the configuration text `config` (its paths under `dir`), listening on `port`. */
export async function startNginxWith(binary: string, dir: string, port: number, config: string): Promise<RunningNginx> {
  mkdirSync(dir, { recursive: true });
  // The worker drops to an unprivileged user when started as root: it must reach and write its dirs.
  for (const sub of ['cache', 'body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) {
    mkdirSync(join(dir, sub), { recursive: true });
    chmodSync(join(dir, sub), 0o777);
  }
  chmodSync(dir, 0o755);
  const conf = join(dir, 'nginx.conf');
  writeFileSync(conf, config);
  const managed = startProcess('nginx', binary, ['-p', dir, '-c', conf, '-g', 'daemon off;']);
  const url = `http://127.0.0.1:${port}`;
  await waitForHttp(`${url}/__ready`, managed, 10_000);
  return { managed, url, pids: () => [managed.pid, ...childPids(managed.pid)] };
}
