/**
 * End to end through a real Nginx (the rendered production template, TLS with a test certificate,
 * loopback ports) to the real gateway, a fake OpenAI upstream and a fake Open WebUI.
 */
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer, request as httpRequest, type IncomingHttpHeaders, type Server } from 'node:http';
import { Agent, request as httpsRequest } from 'node:https';
import { connect as http2Connect } from 'node:http2';
import type { AddressInfo, Socket } from 'node:net';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from './deploy-harness.js';
import { startFakeUpstream, type FakeUpstream } from './helpers/fake-upstream.js';
import { startGateway, TEST_CLIENT_KEY, type RunningGateway } from './helpers/gateway.js';
import { prepareNginx, type PreparedNginx, type RunningNginx } from './nginx-harness.js';

const run = promisify(execFile);

interface FakeWebui {
  url: string;
  upgrades: IncomingHttpHeaders[];
  requests: Array<{ method: string; path: string; headers: IncomingHttpHeaders }>;
  close(): Promise<void>;
}

/** A tiny Open WebUI: a page, a sign-in that always fails, and socket.io's WebSocket upgrade. */
async function startFakeWebui(): Promise<FakeWebui> {
  const sockets = new Set<Socket>();
  const fake: FakeWebui = { url: '', upgrades: [], requests: [], close: async () => undefined };
  const server: Server = createServer((req, res) => {
    fake.requests.push({ method: req.method ?? '', path: req.url ?? '', headers: req.headers });
    req.resume();
    req.on('end', () => {
      if (req.url === '/api/v1/auths/signin') {
        res.writeHead(400, { 'content-type': 'application/json' });
        res.end('{"detail":"The email or password provided is incorrect. Please check for typos and try logging in again."}');
        return;
      }
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<!doctype html><title>Open WebUI</title>');
    });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.on('upgrade', (req, socket: Socket) => {
    fake.upgrades.push(req.headers);
    socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
    // Not a WebSocket implementation: after the 101 the bytes are opaque to Nginx, echo them back.
    socket.on('data', (data) => socket.write(data));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  fake.url = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  fake.close = async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return fake;
}

let upstream: FakeUpstream;
let gateway: RunningGateway;
let webui: FakeWebui;
let prepared: PreparedNginx;
let nginx: RunningNginx;
let ca: Buffer;
let agent: Agent;
/** Responses that fail2ban must count: 401s anywhere, failed sign-ins. */
let expectedAuthFailures = 0;

beforeAll(async () => {
  upstream = await startFakeUpstream();
  gateway = await startGateway(upstream, { GATEWAY_API_KEYS: TEST_CLIENT_KEY, CACHE_SCOPE: 'per-user' });
  webui = await startFakeWebui();
  prepared = await prepareNginx({
    gatewayUpstream: gateway.url.replace('http://', ''),
    openWebuiUpstream: webui.url,
    apiRate: '5r/s',
    apiBurst: '10',
    signinRate: '10r/m',
    signinBurst: '3',
  });
  const checked = await prepared.test();
  if (!checked.ok) throw new Error(checked.output);
  nginx = await prepared.start();
  ca = await readFile(join(prepared.certDir, 'fullchain.pem'));
  agent = new Agent({ keepAlive: true, maxSockets: 64, ca });
});

afterAll(async () => {
  agent?.destroy();
  await nginx?.stop();
  await prepared?.cleanup();
  await gateway?.close();
  await webui?.close();
  await upstream?.close();
});

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

function https(path: string, opts: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      { host: '127.0.0.1', port: prepared.httpsPort, path, method: opts.method ?? 'GET', headers: { host: 'localhost', ...opts.headers }, agent },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

const auth = { authorization: `Bearer ${TEST_CLIENT_KEY}` };
const json = { 'content-type': 'application/json' };

function chatBody(content: string, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content }], ...extra });
}

/** Content deltas of the SSE `data:` lines in a piece of stream text. */
function contentDeltas(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('data: ') || line === 'data: [DONE]') continue;
    const chunk = JSON.parse(line.slice(6)) as { choices?: Array<{ delta?: { content?: string } }> };
    const content = chunk.choices?.[0]?.delta?.content;
    if (content) out.push(content);
  }
  return out;
}

describe('plain HTTP', () => {
  it('redirects everything to HTTPS on the configured name', async () => {
    const answer = await new Promise<Answer>((resolve, reject) => {
      httpRequest({ host: '127.0.0.1', port: prepared.httpPort, path: '/c/abc?x=1', headers: { host: 'evil.example' } }, (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: '' }));
      })
        .on('error', reject)
        .end();
    });
    expect(answer.status).toBe(301);
    expect(answer.headers.location).toBe('https://localhost/c/abc?x=1');
  });

  it('serves the ACME challenge from the webroot', async () => {
    const dir = join(prepared.acmeWebroot, '.well-known', 'acme-challenge');
    await import('node:fs/promises').then((fs) => fs.mkdir(dir, { recursive: true, mode: 0o755 }));
    await writeFile(join(dir, 'token-123'), 'token-123.thumbprint', { mode: 0o644 });
    const body = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      httpRequest({ host: '127.0.0.1', port: prepared.httpPort, path: '/.well-known/acme-challenge/token-123' }, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      })
        .on('error', reject)
        .end();
    });
    expect(body).toEqual({ status: 200, body: 'token-123.thumbprint' });
  });
});

describe('streams through TLS', () => {
  it('delivers the first chunks while the upstream is still generating (no buffering, no gzip)', async () => {
    // The upstream sends two content chunks and then never finishes: any buffering or gzip in
    // Nginx would hold them back and nothing would arrive.
    upstream.stallStreamAfterChunks = 2;
    try {
      const received = await new Promise<{ headers: IncomingHttpHeaders; deltas: string[] }>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no chunk arrived while the upstream was still streaming')), 8_000);
        const req = httpsRequest(
          {
            host: '127.0.0.1',
            port: prepared.httpsPort,
            path: '/v1/chat/completions',
            method: 'POST',
            agent,
            headers: { host: 'localhost', ...auth, ...json, 'accept-encoding': 'gzip, br' },
          },
          (res) => {
            let text = '';
            res.setEncoding('utf8');
            res.on('data', (chunk: string) => {
              text += chunk;
              const complete = text.slice(0, text.lastIndexOf('\n\n') + 1);
              const deltas = contentDeltas(complete);
              if (deltas.length >= 1) {
                clearTimeout(timer);
                resolve({ headers: res.headers, deltas });
                req.destroy();
              }
            });
          },
        );
        req.on('error', (error) => {
          if (!req.destroyed) reject(error);
        });
        req.end(chatBody('stall after two chunks', { stream: true }));
      });
      expect(received.headers['content-type']).toMatch(/^text\/event-stream/);
      expect(received.headers['content-encoding']).toBeUndefined();
      expect(received.deltas.length).toBeGreaterThanOrEqual(1);
    } finally {
      upstream.stallStreamAfterChunks = undefined;
    }
  });

  it('streams a whole answer chunk by chunk, ending with [DONE]', async () => {
    upstream.options.chunkDelayMs = 150;
    try {
      const reads: string[] = [];
      const answer = await new Promise<{ status: number; headers: IncomingHttpHeaders }>((resolve, reject) => {
        const req = httpsRequest(
          {
            host: '127.0.0.1',
            port: prepared.httpsPort,
            path: '/v1/chat/completions',
            method: 'POST',
            agent,
            headers: { host: 'localhost', ...auth, ...json },
          },
          (res) => {
            res.setEncoding('utf8');
            res.on('data', (chunk: string) => reads.push(chunk));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
          },
        );
        req.on('error', reject);
        req.end(chatBody('a whole stream through nginx', { stream: true }));
      });
      expect(answer.status).toBe(200);
      expect(answer.headers['x-cache']).toBe('MISS');
      const text = reads.join('');
      expect(text.trimEnd().endsWith('data: [DONE]')).toBe(true);
      expect(contentDeltas(text).join('')).toContain('Echo: a whole stream through nginx');
      // 150 ms between upstream chunks: they reach the client in several reads, not as one block
      // at the end (the stalled-stream test above proves it without any timing).
      expect(reads.filter((r) => contentDeltas(r).length > 0).length).toBeGreaterThanOrEqual(2);
    } finally {
      upstream.options.chunkDelayMs = 0;
    }
  });
});

describe('API through Nginx', () => {
  it("passes the gateway's 401 through (and fail2ban will count it)", async () => {
    const answer = await https('/v1/models');
    expectedAuthFailures += 1;
    expect(answer.status).toBe(401);
    expect(JSON.parse(answer.body)).toMatchObject({ error: { code: 'invalid_api_key' } });
  });

  it("strips Open WebUI user headers sent from the Internet (no reading another user's cache)", async () => {
    const body = chatBody('only for alice');
    const asOpenWebui = { ...auth, ...json, 'x-openwebui-user-id': 'alice' };
    // Open WebUI, inside the Docker network, talks to the gateway directly.
    const direct = async () => {
      const res = await fetch(`${gateway.url}/v1/chat/completions`, { method: 'POST', headers: asOpenWebui, body });
      await res.text();
      return res.headers.get('x-cache');
    };
    expect(await direct()).toBe('MISS');
    expect(await direct()).toBe('HIT');
    // The same request and header from outside lands in the key's scope, not alice's.
    const outside = await https('/v1/chat/completions', { method: 'POST', headers: asOpenWebui, body });
    expect(outside.status).toBe(200);
    expect(outside.headers['x-cache']).toBe('MISS');
  });

  it("gives every request one id, in the response and in Nginx's log", async () => {
    const own = await https('/v1/models', { headers: { ...auth, 'x-request-id': 'client-id-42' } });
    expect(own.headers['x-request-id']).toBe('client-id-42');
    const generated = await https('/v1/models', { headers: auth });
    const id = String(generated.headers['x-request-id']);
    expect(id).toMatch(/^[0-9a-f]{32}$/);
    const log = await readFile(join(prepared.logDir, 'access.log'), 'utf8');
    expect(log).toContain(`rid=${id}`);
  });

  it('speaks HTTP/2 with the security headers', async () => {
    const client = http2Connect(`https://127.0.0.1:${prepared.httpsPort}`, { ca, servername: 'localhost' });
    try {
      const headers = await new Promise<Record<string, string | string[] | number | undefined>>((resolve, reject) => {
        const stream = client.request({ ':path': '/v1/models', ':authority': 'localhost', ...auth });
        stream.on('response', (h) => resolve(h));
        stream.on('error', reject);
        stream.resume();
        stream.end();
      });
      expect(headers[':status']).toBe(200);
      expect(String(headers['strict-transport-security'])).toMatch(/max-age=\d{8}/);
      expect(headers['x-content-type-options']).toBe('nosniff');
      expect(headers['x-frame-options']).toBe('SAMEORIGIN');
      expect(headers['referrer-policy']).toBe('strict-origin-when-cross-origin');
      expect(headers.server).toBe('nginx');
    } finally {
      client.close();
    }
  });

  it('does not serve /metrics, however the path is written', async () => {
    const direct = await fetch(`${gateway.url}/metrics`);
    expect(await direct.text()).toContain('gateway_requests_total'); // the gateway does serve it
    for (const path of ['/metrics', '/v1/../metrics', '/v1/%2e%2e/metrics', '/openai/v1/../../metrics', '//metrics']) {
      const answer = await https(path, { headers: auth });
      expect(answer.status, path).toBe(404);
      expect(answer.body, path).not.toContain('gateway_requests_total');
    }
  });
});

describe('Open WebUI through Nginx', () => {
  it('proxies the app with the forwarded headers', async () => {
    const answer = await https('/');
    expect(answer.status).toBe(200);
    expect(answer.body).toContain('Open WebUI');
    const seen = webui.requests.at(-1);
    expect(seen?.headers['x-forwarded-proto']).toBe('https');
    expect(seen?.headers['x-real-ip']).toBe('127.0.0.1');
  });

  it('upgrades socket.io to a WebSocket that carries bytes both ways', async () => {
    const socket = tlsConnect({ host: '127.0.0.1', port: prepared.httpsPort, ca, servername: 'localhost', ALPNProtocols: ['http/1.1'] });
    try {
      let buffer = '';
      const next = (predicate: (text: string) => boolean) =>
        new Promise<string>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`timed out, got: ${buffer}`)), 5_000);
          const check = () => {
            if (predicate(buffer)) {
              clearTimeout(timer);
              socket.off('data', onData);
              resolve(buffer);
            }
          };
          const onData = (data: Buffer) => {
            buffer += data.toString('latin1');
            check();
          };
          socket.on('data', onData);
          check();
        });
      await new Promise<void>((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
      socket.write(
        'GET /ws/socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n' +
          'Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
      );
      const head = await next((t) => t.includes('\r\n\r\n'));
      expect(head.startsWith('HTTP/1.1 101')).toBe(true);
      buffer = '';
      socket.write('ping-through-nginx');
      expect(await next((t) => t.includes('ping-through-nginx'))).toContain('ping-through-nginx');
      expect(webui.upgrades.at(-1)?.upgrade).toBe('websocket');
      expect(String(webui.upgrades.at(-1)?.connection).toLowerCase()).toBe('upgrade');
    } finally {
      socket.destroy();
    }
  });

  it('rate-limits sign-in attempts', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) {
      const answer = await https('/api/v1/auths/signin', {
        method: 'POST',
        headers: json,
        body: JSON.stringify({ email: 'admin@example.com', password: `guess-${i}` }),
      });
      statuses.push(answer.status);
    }
    expectedAuthFailures += statuses.length;
    expect(statuses.filter((s) => s === 400).length).toBeGreaterThanOrEqual(1);
    expect(statuses.slice(-3)).toEqual([429, 429, 429]);
  });
});

describe('limits and logs', () => {
  it('answers a burst over the API rate limit with OpenAI-shaped 429s', async () => {
    // 40 requests multiplexed on one HTTP/2 connection reach Nginx together, however busy the
    // machine is: 1 + burst (10) pass, the refill during the burst is negligible.
    const client = http2Connect(`https://127.0.0.1:${prepared.httpsPort}`, { ca, servername: 'localhost' });
    let answers: Answer[];
    try {
      answers = await Promise.all(
        Array.from(
          { length: 40 },
          () =>
            new Promise<Answer>((resolve, reject) => {
              const stream = client.request({ ':path': '/v1/models', ':authority': 'localhost', ...auth });
              let headers: IncomingHttpHeaders = {};
              let body = '';
              stream.setEncoding('utf8');
              stream.on('response', (h) => (headers = h as IncomingHttpHeaders));
              stream.on('data', (chunk: string) => (body += chunk));
              stream.on('end', () => resolve({ status: Number(headers[':status']), headers, body }));
              stream.on('error', reject);
              stream.end();
            }),
        ),
      );
    } finally {
      client.close();
    }
    const limited = answers.filter((a) => a.status === 429);
    expect(limited.length).toBeGreaterThanOrEqual(20);
    expect(answers.every((a) => a.status === 200 || a.status === 429)).toBe(true);
    for (const answer of limited) {
      expect(answer.headers['content-type']).toBe('application/json');
      expect(JSON.parse(answer.body)).toMatchObject({ error: { type: 'rate_limit_error', code: 'rate_limit_exceeded' } });
      expect(answer.headers['strict-transport-security']).toBeDefined();
    }
  });

  it('writes an access log that the fail2ban filter reads: every auth failure, nothing else', async () => {
    const log = join(prepared.logDir, 'access.log');
    const filter = join(REPO_ROOT, 'deploy/fail2ban/filter.d/cachegate-nginx-auth.conf');
    const { stdout } = await run('fail2ban-regex', ['-o', 'ip', log, filter]);
    const matched = stdout.split('\n').filter((l) => l.trim() !== '');
    expect(matched.length).toBe(expectedAuthFailures);
    expect(new Set(matched)).toEqual(new Set(['127.0.0.1']));
  });
});
