/**
 * Slow and idle clients: a client that sends its headers a byte at a time (slowloris), one that
 * never finishes its body (with a valid key), and 2,000 sockets opened and left silent are all
 * cut by the request timeouts (short ones here, through the environment variables), while a
 * normal client is answered at once throughout. The timeouts cover receiving a request only:
 * answers longer than them (a slow upstream, a long stream) are not cut. Also: the idle
 * keep-alive limit, the connection cap, and the validation of the new variables.
 */
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';
import { setUpFakeUpstream } from './helpers/fake-upstream-fixture.js';
import { startGateway, TEST_CLIENT_KEY, type RunningGateway } from './helpers/gateway.js';
import { firstResponse, openRaw, until, type RawConnection } from './helpers/raw-socket.js';
import { chatContentOf, readSse } from './helpers/sse-reader.js';

const fixture = setUpFakeUpstream();

/**
 * Opening a loopback connection takes about 1.5 ms on the 2-core test machine, so 2,000 take
 * about 3 s: a headers timeout above that keeps them all open at once before they are cut.
 */
const HEADERS_TIMEOUT_MS = 4_000;
const REQUEST_TIMEOUT_MS = 5_000;
/** Node looks for expired requests every second here; the rest is a loaded 2-core machine. */
const CUT_SLACK_MS = 2_000;
const timeouts = (headersMs: number, requestMs: number) => ({
  GATEWAY_API_KEYS: TEST_CLIENT_KEY,
  REQUEST_HEADERS_TIMEOUT_MS: String(headersMs),
  REQUEST_TIMEOUT_MS: String(requestMs),
});
/** For the answers that outlast the request timeout: short, to keep the file quick. */
const SHORT_REQUEST_TIMEOUT_MS = 500;
const IDLE_SOCKETS_WANTED = 2_000;
const CONNECT_BATCH = 200;

/**
 * Each idle socket costs two descriptors in this process (client and server side); leave room
 * for everything else. Adapted to the limit rather than raising anything system-wide.
 */
function idleSocketCount(): number {
  let limit = Number.POSITIVE_INFINITY;
  try {
    limit = Number(execFileSync('bash', ['-c', 'ulimit -n'], { encoding: 'utf8' }).trim());
  } catch {
    // No bash: assume the count fits.
  }
  if (!Number.isFinite(limit)) return IDLE_SOCKETS_WANTED;
  return Math.max(0, Math.min(IDLE_SOCKETS_WANTED, Math.floor((limit - 400) / 2)));
}

const chat = (content: string, stream = false): string => JSON.stringify({ model: 'gpt-4o-mini', stream, messages: [{ role: 'user', content }] });
const AUTH = { authorization: `Bearer ${TEST_CLIENT_KEY}`, 'content-type': 'application/json' };

interface Attacker {
  kind: 'slowloris' | 'slow body (hit fast path)' | 'slow body (chunked, through Fastify)' | 'idle';
  connection: RawConnection;
  startedAt: number;
  /** How long the server may take to cut it, from its first byte (or its connection). */
  timeoutMs: number;
  timer?: NodeJS.Timeout;
}

async function slowAttacker(url: string, kind: Attacker['kind'], head: string, dribble: string): Promise<Attacker> {
  const connection = await openRaw(url);
  const startedAt = performance.now();
  connection.socket.write(head);
  let sent = 0;
  // A byte every 150 ms: each one arrives well within any inactivity timeout, the whole never ends.
  const timer = setInterval(() => {
    if (!connection.isClosed()) connection.socket.write(dribble[sent++ % dribble.length]!);
  }, 150);
  const timeoutMs = kind === 'slowloris' ? HEADERS_TIMEOUT_MS : REQUEST_TIMEOUT_MS;
  return { kind, connection, startedAt, timeoutMs, timer };
}

async function openIdleSockets(url: string, count: number): Promise<Attacker[]> {
  const idle: Attacker[] = [];
  for (let opened = 0; opened < count; opened += CONNECT_BATCH) {
    const batch = Array.from({ length: Math.min(CONNECT_BATCH, count - opened) }, async () => {
      const connection = await openRaw(url);
      return { kind: 'idle' as const, connection, startedAt: performance.now(), timeoutMs: HEADERS_TIMEOUT_MS };
    });
    idle.push(...(await Promise.all(batch)));
  }
  return idle;
}

/** A normal client: one cache hit after another until `stop()`, each timed. */
function normalClient(gateway: RunningGateway, body: string): { stop(): Promise<number[]> } {
  const timings: number[] = [];
  let running = true;
  const loop = (async () => {
    while (running || timings.length < 20) {
      const started = performance.now();
      const response = await fetch(`${gateway.url}/v1/chat/completions`, { method: 'POST', headers: AUTH, body });
      await response.arrayBuffer();
      timings.push(performance.now() - started);
      expect(response.headers.get('x-cache')).toBe('HIT');
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return timings;
    },
  };
}

const percentile = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;

describe('slow and idle clients are cut by the timeouts; a normal client is answered meanwhile', () => {
  it('slowloris headers, never-finished bodies and idle sockets, at once', async (context) => {
    const count = idleSocketCount();
    if (count < 200) {
      context.skip(`ulimit -n allows only ${count} idle sockets here (each costs 2 descriptors in this process): too few to mean anything`);
    }
    const gateway = fixture.closeAfterTest(await startGateway(fixture.fake, timeouts(HEADERS_TIMEOUT_MS, REQUEST_TIMEOUT_MS)));
    const hitBody = chat('a normal client');
    const miss = await fetch(`${gateway.url}/v1/chat/completions`, { method: 'POST', headers: AUTH, body: hitBody });
    expect(miss.headers.get('x-cache')).toBe('MISS');
    await miss.arrayBuffer();

    const client = normalClient(gateway, hitBody);
    const headOf = (extra: string) =>
      `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TEST_CLIENT_KEY}\r\nContent-Type: application/json\r\n${extra}`;
    const body = chat('never finished');
    const attackers: Attacker[] = [];
    for (let i = 0; i < 5; i++) {
      attackers.push(await slowAttacker(gateway.url, 'slowloris', 'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n', 'X-Slow: aaaaaaaaaaaaaaaaaaaaaa'));
      attackers.push(await slowAttacker(gateway.url, 'slow body (hit fast path)', headOf(`Content-Length: ${body.length + 10_000}\r\n\r\n`), body));
      attackers.push(await slowAttacker(gateway.url, 'slow body (chunked, through Fastify)', headOf('Transfer-Encoding: chunked\r\n\r\n'), `1\r\n{\r\n`));
    }
    const openingStarted = performance.now();
    attackers.push(...(await openIdleSockets(gateway.url, count)));
    const openingMs = performance.now() - openingStarted;
    const openAtOnce = attackers.filter((attacker) => attacker.kind === 'idle' && !attacker.connection.isClosed()).length;

    const allCut = await until(() => attackers.every((attacker) => attacker.connection.isClosed()), REQUEST_TIMEOUT_MS + openingMs + CUT_SLACK_MS * 2, 20);
    const timings = (await client.stop()).sort((a, b) => a - b);
    for (const attacker of attackers) {
      clearInterval(attacker.timer);
      attacker.connection.socket.destroy();
    }
    const stillOpen = new Map<string, number>();
    for (const { kind, connection } of attackers) if (!connection.isClosed()) stillOpen.set(kind, (stillOpen.get(kind) ?? 0) + 1);
    expect(allCut, `still open: ${JSON.stringify(Object.fromEntries(stillOpen))}`).toBe(true);

    const lifetimes = await Promise.all(attackers.map(async (attacker) => ({ attacker, lived: (await attacker.connection.closed) - attacker.startedAt })));
    for (const { attacker, lived } of lifetimes) {
      // Not before its timeout (a little tolerance for the timer's start), not long after it.
      expect(lived, attacker.kind).toBeGreaterThan(attacker.timeoutMs - 100);
      expect(lived, attacker.kind).toBeLessThan(attacker.timeoutMs + CUT_SLACK_MS);
      const answer = firstResponse(attacker.connection.received());
      expect(answer?.status, attacker.kind).toBe(408);
      expect(JSON.parse(answer!.body).error).toMatchObject({ type: 'invalid_request_error', code: 'request_timeout' });
    }
    const slowest = (kind: Attacker['kind']) => Math.round(Math.max(...lifetimes.filter((l) => l.attacker.kind === kind).map((l) => l.lived)));
    console.log(
      `slow clients: ${count} idle sockets opened in ${Math.round(openingMs)} ms (${openAtOnce} open at once) and cut after ≤ ${slowest('idle')} ms ` +
        `(headers timeout ${HEADERS_TIMEOUT_MS} ms); slowloris cut after ≤ ${slowest('slowloris')} ms; slow bodies after ≤ ` +
        `${Math.max(slowest('slow body (hit fast path)'), slowest('slow body (chunked, through Fastify)'))} ms (request timeout ${REQUEST_TIMEOUT_MS} ms); ` +
        `normal client meanwhile: ${timings.length} hits, median ${percentile(timings, 0.5).toFixed(1)} ms, ` +
        `p99 ${percentile(timings, 0.99).toFixed(1)} ms, max ${timings.at(-1)!.toFixed(1)} ms`,
    );
    // A few ms as a rule; the bound on the slowest leaves room for a suite loading both cores
    // (the moment ~2,000 refusals are written at once, in this same process).
    expect(percentile(timings, 0.5)).toBeLessThan(20);
    expect(timings.at(-1)!).toBeLessThan(500);
    // The gateway is still fine afterwards.
    expect((await fetch(`${gateway.url}/healthz`)).status).toBe(200);
  });

  it('answers longer than the request timeout are not cut: a slow upstream, a long stream', async () => {
    const gateway = fixture.closeAfterTest(await startGateway(fixture.fake, timeouts(SHORT_REQUEST_TIMEOUT_MS / 2, SHORT_REQUEST_TIMEOUT_MS)));
    // Headers only after 1.5 × the request timeout.
    fixture.fake.options.latencyMs = SHORT_REQUEST_TIMEOUT_MS * 1.5;
    const slow = await fetch(`${gateway.url}/v1/chat/completions`, { method: 'POST', headers: AUTH, body: chat('slow upstream') });
    expect(slow.status).toBe(200);
    expect(((await slow.json()) as { choices: Array<{ message: { content: string } }> }).choices[0]!.message.content).toContain('slow upstream');

    // A stream lasting about twice the request timeout, on the connection it came on.
    fixture.fake.options.latencyMs = 0;
    fixture.fake.options.chunks = 4;
    fixture.fake.options.chunkDelayMs = SHORT_REQUEST_TIMEOUT_MS / 2;
    const started = performance.now();
    const stream = await fetch(`${gateway.url}/v1/chat/completions`, { method: 'POST', headers: AUTH, body: chat('a long stream', true) });
    const events = await readSse(stream);
    const lasted = performance.now() - started;
    expect(events.at(-1)?.data).toBe('[DONE]');
    expect(chatContentOf(events)).toContain('a long stream');
    expect(lasted).toBeGreaterThan(SHORT_REQUEST_TIMEOUT_MS * 1.5);
    console.log(`slow clients: a ${Math.round(lasted)} ms stream went through whole under a ${SHORT_REQUEST_TIMEOUT_MS} ms request timeout`);
  });

  it('closes an idle keep-alive connection after KEEP_ALIVE_TIMEOUT_MS, and refuses connections over MAX_CONNECTIONS', async () => {
    const gateway = fixture.closeAfterTest(
      await startGateway(fixture.fake, { GATEWAY_API_KEYS: TEST_CLIENT_KEY, KEEP_ALIVE_TIMEOUT_MS: '300', MAX_CONNECTIONS: '3' }),
    );
    const kept = await openRaw(gateway.url);
    kept.socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(await until(() => firstResponse(kept.received()) !== undefined, 2_000)).toBe(true);
    const answeredAt = performance.now();
    // Node closes 1 s after the advertised time, so clients never race a closing connection.
    expect(await until(() => kept.isClosed(), 300 + 1_000 + CUT_SLACK_MS)).toBe(true);
    expect((await kept.closed) - answeredAt).toBeGreaterThan(250);

    const three = await Promise.all([openRaw(gateway.url), openRaw(gateway.url), openRaw(gateway.url)]);
    const fourth = await openRaw(gateway.url);
    expect(await until(() => fourth.isClosed(), 2_000)).toBe(true);
    expect(three.some((connection) => connection.isClosed())).toBe(false);
    for (const connection of three) connection.socket.destroy();
  });
});

describe('the limits are validated like every variable', () => {
  it('defaults: 30 s for headers, 300 s for a whole request, 65 s keep-alive, no connection cap', () => {
    expect(loadConfig({})).toMatchObject({ requestHeadersTimeoutMs: 30_000, requestTimeoutMs: 300_000, keepAliveTimeoutMs: 65_000, maxConnections: 0 });
    // A request timeout under 30 s brings the headers timeout down with it.
    expect(loadConfig({ REQUEST_TIMEOUT_MS: '10000' })).toMatchObject({ requestHeadersTimeoutMs: 10_000, requestTimeoutMs: 10_000 });
  });

  it.each([
    [{ REQUEST_TIMEOUT_MS: '0' }, 'REQUEST_TIMEOUT_MS'],
    [{ REQUEST_TIMEOUT_MS: '2s' }, 'REQUEST_TIMEOUT_MS'],
    [{ REQUEST_HEADERS_TIMEOUT_MS: '-1' }, 'REQUEST_HEADERS_TIMEOUT_MS'],
    [{ REQUEST_HEADERS_TIMEOUT_MS: '60000', REQUEST_TIMEOUT_MS: '30000' }, 'REQUEST_HEADERS_TIMEOUT_MS'],
    [{ KEEP_ALIVE_TIMEOUT_MS: 'forever' }, 'KEEP_ALIVE_TIMEOUT_MS'],
    [{ MAX_CONNECTIONS: '-3' }, 'MAX_CONNECTIONS'],
  ])('%o is refused, naming %s', (env, name) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(name);
  });
});
