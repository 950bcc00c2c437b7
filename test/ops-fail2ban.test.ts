/**
 * The fail2ban filter against Nginx access-log lines in our log format, through fail2ban's own
 * fail2ban-regex, and the jail as fail2ban-client resolves it.
 */
import { execFile } from 'node:child_process';
import { cp, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from './deploy-harness.js';

const run = promisify(execFile);
const FILTER = join(REPO_ROOT, 'deploy/fail2ban/filter.d/cachegate-nginx-auth.conf');
const JAIL = join(REPO_ROOT, 'deploy/fail2ban/jail.d/cachegate.local');

/** A line as Nginx writes it with log_format "cachegate" (nginx/templates/cachegate.conf.template). */
function logLine(ip: string, request: string, status: number, opts: { referer?: string; agent?: string; user?: string } = {}): string {
  return `${ip} - ${opts.user ?? '-'} [25/Nov/2025:20:59:01 +0000] "${request}" ${status} 123 "${opts.referer ?? '-'}" "${opts.agent ?? 'Mozilla/5.0'}" rt=0.012 urt=0.011 rid=4f1c2b`;
}

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cachegate-f2b-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The IPs fail2ban-regex reports as failures, one per matched line. */
async function matchedIps(lines: string[]): Promise<string[]> {
  const log = join(dir, `access-${Math.random().toString(36).slice(2)}.log`);
  await writeFile(log, `${lines.join('\n')}\n`);
  const { stdout } = await run('fail2ban-regex', ['-o', 'ip', log, FILTER]);
  return stdout
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
}

describe('fail2ban filter cachegate-nginx-auth', () => {
  it('matches the log format Nginx is configured to write', async () => {
    const template = await readFile(join(REPO_ROOT, 'nginx/templates/cachegate.conf.template'), 'utf8');
    // The filter relies on the combined prefix: remote_addr, "-", remote_user, [time], "request", status.
    expect(template).toMatch(/log_format cachegate '\$remote_addr - \$remote_user \[\$time_local\] "\$request" \$status /);
  });

  it('catches 401s on the API and failed Open WebUI sign-ins, with the client IP', async () => {
    const ips = await matchedIps([
      logLine('203.0.113.1', 'POST /v1/chat/completions HTTP/2.0', 401),
      logLine('203.0.113.2', 'GET /v1/models HTTP/1.1', 401),
      logLine('203.0.113.3', 'POST /openai/v1/chat/completions HTTP/1.1', 401),
      logLine('203.0.113.4', 'POST /api/v1/auths/signin HTTP/2.0', 400, { referer: 'https://chat.example.com/auth' }),
      logLine('203.0.113.5', 'POST /api/v1/auths/signin HTTP/1.1', 403),
      logLine('203.0.113.6', 'POST /api/v1/auths/signin HTTP/2.0', 429),
      logLine('2001:db8::7', 'POST /v1/embeddings HTTP/2.0', 401),
    ]);
    expect(ips).toEqual(['203.0.113.1', '203.0.113.2', '203.0.113.3', '203.0.113.4', '203.0.113.5', '203.0.113.6', '2001:db8::7']);
  });

  it('does not match normal traffic, other errors, or forged text in headers', async () => {
    const ips = await matchedIps([
      logLine('198.51.100.1', 'POST /v1/chat/completions HTTP/2.0', 200),
      logLine('198.51.100.2', 'GET / HTTP/2.0', 200),
      logLine('198.51.100.3', 'POST /api/v1/auths/signin HTTP/2.0', 200),
      logLine('198.51.100.4', 'GET /ws/socket.io/?EIO=4&transport=websocket HTTP/1.1', 101),
      logLine('198.51.100.5', 'POST /v1/chat/completions HTTP/2.0', 400),
      logLine('198.51.100.6', 'POST /v1/chat/completions HTTP/2.0', 429),
      logLine('198.51.100.7', 'GET /metrics HTTP/1.1', 404),
      logLine('198.51.100.8', 'GET /api/v1/auths/signin HTTP/1.1', 405),
      // A client cannot make a 200 look like a failure (Nginx escapes quotes as \x22).
      logLine('198.51.100.9', 'GET / HTTP/1.1', 200, { agent: 'x\\x22 401 0 \\x22' }),
      logLine('198.51.100.10', 'GET / HTTP/1.1', 200, { referer: 'POST /api/v1/auths/signin HTTP/1.1\\x22 400' }),
      logLine('198.51.100.11', 'GET /v1/models?q=%22%20401%20 HTTP/1.1', 200),
    ]);
    expect(ips).toEqual([]);
  });

  it("is enabled in a jail that bans in Docker's DOCKER-USER chain", async () => {
    // fail2ban's own configuration reader, on a copy of the system configuration plus ours.
    const confDir = join(dir, 'etc-fail2ban');
    await cp('/etc/fail2ban', confDir, { recursive: true });
    for (const file of await readdir(join(confDir, 'jail.d'))) await rm(join(confDir, 'jail.d', file));
    await cp(FILTER, join(confDir, 'filter.d', 'cachegate-nginx-auth.conf'));
    const log = join(dir, 'jail-access.log');
    await writeFile(log, '');
    const jail = (await readFile(JAIL, 'utf8')).replace(/^logpath\s*=.*$/m, `logpath = ${log}`);
    await writeFile(join(confDir, 'jail.d', 'cachegate.local'), jail);

    const { stdout } = await run('fail2ban-client', ['-c', confDir, '-d']);
    const ours = stdout.split('\n').filter((line) => line.includes("'cachegate-nginx-auth'"));
    expect(ours.some((l) => l.includes("['start', 'cachegate-nginx-auth']"))).toBe(true);
    expect(ours.some((l) => l.includes(`'addlogpath', '${log}'`))).toBe(true);
    expect(ours.some((l) => l.includes("['chain', 'DOCKER-USER']"))).toBe(true);
    expect(ours.some((l) => l.includes("'maxretry', 10"))).toBe(true);
  });
});
