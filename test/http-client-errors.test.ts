/**
 * What Node's HTTP layer refuses before Fastify sees a request (broken framing, oversize
 * headers, a NUL in a header, an unsupported Expect, CONNECT, no Host...) is answered in
 * OpenAI's error shape, with Connection: close, never echoing the bytes sent; no log line at
 * any level carries the client's or a provider's key from such a request; and a refused
 * request's connection is closed instead of waiting for the rest of its body.
 */
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger, serializeError } from '../src/logger.js';
import { setUpFakeUpstream } from './helpers/fake-upstream-fixture.js';
import { startGateway, TEST_CLIENT_KEY, TEST_OPENAI_KEYS, type RunningGateway } from './helpers/gateway.js';
import { firstResponse, openRaw, sendRaw, until } from './helpers/raw-socket.js';

const fixture = setUpFakeUpstream();
const BODY_LIMIT = 8 * 1024;
/** Looks like an OpenAI project key; sent by a client in a header of its own. */
const PROVIDER_LOOKING_KEY = 'sk-proj-fake-LeakCanary-0123456789-abcdefABCDEF';
const ECHO_CANARY = 'echo-canary-5f1e2d';

let gateway: RunningGateway;
beforeAll(async () => {
  gateway = await startGateway(fixture.fake, { GATEWAY_API_KEYS: TEST_CLIENT_KEY, BODY_LIMIT_BYTES: String(BODY_LIMIT) });
});
afterAll(async () => {
  await gateway?.close();
});

const auth = `Authorization: Bearer ${TEST_CLIENT_KEY}\r\nX-Openai-Key: ${PROVIDER_LOOKING_KEY}\r\nX-Marker: ${ECHO_CANARY}\r\n`;
const chatJson = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'client-errors' }] });

/** Requests Node's parser or HTTP layer refuses, each with the answer it must get. */
const REFUSED: Array<[string, string | Buffer, number, string]> = [
  [
    'Content-Length with Transfer-Encoding: chunked',
    `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
    400,
    'invalid_transfer_encoding',
  ],
  [
    'two Content-Lengths',
    `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n${auth}Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello`,
    400,
    'invalid_content_length',
  ],
  ['a NUL byte in a header', `GET /v1/models HTTP/1.1\r\nHost: x\r\n${auth}X-Bad: a\0b\r\n\r\n`, 400, 'invalid_header'],
  ['headers over 16 KiB', `GET /v1/models HTTP/1.1\r\nHost: x\r\n${auth}X-Big: ${'b'.repeat(20_000)}\r\n\r\n`, 431, 'request_headers_too_large'],
  ['a 20 KB URL', `GET /v1/${'u'.repeat(20_000)} HTTP/1.1\r\nHost: x\r\n${auth}\r\n`, 414, 'request_url_too_long'],
  ['an invalid method', `G@T /v1/models HTTP/1.1\r\nHost: x\r\n${auth}\r\n`, 400, 'invalid_method'],
  ['HTTP/1.7', `GET /v1/models HTTP/1.7\r\nHost: x\r\n${auth}\r\n`, 400, 'unsupported_http_version'],
  [
    'a malformed chunk size',
    `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n`,
    400,
    'invalid_chunked_body',
  ],
  [
    'an unsupported Expect',
    `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\nContent-Length: 2\r\nExpect: 200-ok\r\n\r\n{}`,
    417,
    'expectation_failed',
  ],
  ['an HTTP/1.1 request without Host', `GET /v1/models HTTP/1.1\r\n${auth}\r\n`, 400, 'missing_host'],
  ['CONNECT', `CONNECT api.openai.com:443 HTTP/1.1\r\nHost: api.openai.com:443\r\n${auth}\r\n`, 405, 'method_not_allowed'],
  ['TLS bytes on the plain port', Buffer.from('16030100a5010000a10303', 'hex'), 400, 'invalid_method'],
];

describe("requests Node's HTTP layer refuses get OpenAI-shaped errors", () => {
  const cases = REFUSED.map(([name, bytes, status, code]) => [name, status, code, bytes] as const);
  it.each(cases)('%s → %i %s, connection closed, nothing echoed', async (_name, status, code, bytes) => {
    const { text, closedByServer } = await sendRaw(gateway.url, bytes);
    const response = firstResponse(text);
    expect(response, text.slice(0, 300)).toBeDefined();
    expect(response!.status).toBe(status);
    expect(response!.headers['content-type']).toMatch(/^application\/json/);
    expect(response!.headers['connection']).toBe('close');
    expect(response!.headers['x-request-id']).toBeTruthy();
    expect(JSON.parse(response!.body)).toEqual({ error: { message: expect.any(String), type: 'invalid_request_error', code } });
    expect(closedByServer).toBe(true);
    for (const sent of [ECHO_CANARY, TEST_CLIENT_KEY, PROVIDER_LOOKING_KEY, 'uuuuuuuu', 'bbbbbbbb']) expect(text).not.toContain(sent);
  });

  it('Expect: 100-continue keeps working for valid requests, on the hit fast path and through Fastify', async () => {
    for (const path of ['/v1/chat/completions', '/v1/chat/completions?via=fastify']) {
      const connection = await openRaw(gateway.url);
      const head = `POST ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TEST_CLIENT_KEY}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(chatJson)}\r\nExpect: 100-continue\r\n\r\n`;
      connection.socket.write(head);
      expect(await until(() => connection.received().startsWith('HTTP/1.1 100 Continue\r\n'), 3_000)).toBe(true);
      connection.socket.write(chatJson);
      expect(await until(() => firstResponse(connection.received()) !== undefined, 5_000)).toBe(true);
      const response = firstResponse(connection.received())!;
      expect(response.status).toBe(200);
      expect(JSON.parse(response.body).choices[0].message.content).toContain('client-errors');
      connection.socket.destroy();
    }
  });
});

/** Whether a log line carries `secret`, as text or as the byte array pino makes of a Buffer. */
function leaks(line: string, secret: string): boolean {
  if (line.includes(secret) || line.includes([...Buffer.from(secret)].join(','))) return true;
  const found = (value: unknown): boolean => {
    if (typeof value === 'string') return value.includes(secret);
    if (!value || typeof value !== 'object') return false;
    const record = value as Record<string, unknown>;
    if (record['type'] === 'Buffer' && Array.isArray(record['data']))
      return Buffer.from(record['data'] as number[])
        .toString('latin1')
        .includes(secret);
    return Object.values(record).some(found);
  };
  return found(JSON.parse(line));
}

describe('no key from a refused request reaches a log line, at any level', () => {
  it.each(['trace', 'debug', 'info'])('LOG_LEVEL=%s', async (level) => {
    const logged = fixture.closeAfterTest(await startGateway(fixture.fake, { GATEWAY_API_KEYS: TEST_CLIENT_KEY, LOG_LEVEL: level }));
    for (const [, bytes] of REFUSED) await sendRaw(logged.url, bytes);
    // A 401 and a body cut short, with both keys as well.
    await sendRaw(
      logged.url,
      `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong-${TEST_CLIENT_KEY}\r\nX-Openai-Key: ${PROVIDER_LOOKING_KEY}\r\nContent-Length: 2\r\n\r\n{}`,
    );
    expect(await until(() => logged.logs.some((line) => line.includes('"msg":"request"')), 2_000)).toBe(true);
    if (level !== 'info') expect(logged.logs.filter((line) => line.includes('"msg":"client error"')).length).toBeGreaterThanOrEqual(5);
    for (const secret of [TEST_CLIENT_KEY, PROVIDER_LOOKING_KEY, ...TEST_OPENAI_KEYS]) {
      expect(logged.logs.filter((line) => leaks(line, secret))).toEqual([]);
    }
  });

  it("the logger drops an error's rawPacket wherever it is logged (second line of defence)", () => {
    const lines: string[] = [];
    const log = createLogger(
      'trace',
      new Writable({
        write: (chunk: Buffer, _encoding, done) => {
          lines.push(chunk.toString());
          done();
        },
      }),
    );
    const parserError = Object.assign(new Error('Parse Error: Invalid header value char'), {
      code: 'HPE_INVALID_HEADER_TOKEN',
      rawPacket: Buffer.from(`GET / HTTP/1.1\r\nAuthorization: Bearer ${TEST_CLIENT_KEY}\r\n`),
    });
    log.trace({ err: parserError }, 'as Fastify logs it');
    log.error({ error: parserError }, 'under another name');
    log.warn({ detail: { rawPacket: parserError.rawPacket } }, 'nested');
    log.error({ err: new AggregateError([parserError], 'several') }, 'aggregated');
    expect(lines).toHaveLength(4);
    for (const line of lines) expect(leaks(line, TEST_CLIENT_KEY), line).toBe(false);
    expect(JSON.parse(lines[0]!).err).toMatchObject({ code: 'HPE_INVALID_HEADER_TOKEN', message: expect.any(String) });
    // Not an error: left as it is, and never modified.
    const plain = { rawPacket: 'kept' };
    expect(serializeError(plain as unknown as Error)).toBe(plain);
    expect(plain.rawPacket).toBe('kept');
  });
});

describe('a refused request does not keep its connection', () => {
  /** Sends `head` and a first piece of the body, then keeps dribbling; resolves when the server closed. */
  async function dribbleAfter(head: string): Promise<{ status: number | undefined; connection: string | undefined; closed: boolean }> {
    const connection = await openRaw(gateway.url);
    connection.socket.write(`${head}{"model":`);
    const dribble = setInterval(() => connection.socket.write('x'), 50);
    const closed = await until(() => connection.isClosed(), 3_000);
    clearInterval(dribble);
    connection.socket.destroy();
    const response = firstResponse(connection.received());
    return { status: response?.status, connection: response?.headers['connection'], closed };
  }

  it.each([
    ['a 401 (no key)', `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n`, 401],
    [
      'a 413 (Content-Length over the limit)',
      `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TEST_CLIENT_KEY}\r\nContent-Type: application/json\r\nContent-Length: ${BODY_LIMIT * 4}\r\n\r\n`,
      413,
    ],
    [
      'a 415 (XML)',
      `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TEST_CLIENT_KEY}\r\nContent-Type: application/xml\r\nContent-Length: 4000\r\n\r\n`,
      415,
    ],
    [
      'a 404 (unknown route)',
      `POST /nowhere HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TEST_CLIENT_KEY}\r\nContent-Type: application/xml\r\nContent-Length: 4000\r\n\r\n`,
      404,
    ],
  ])('%s answered before the body arrived closes the connection while the client still dribbles', async (_name, head, status) => {
    expect(await dribbleAfter(head)).toEqual({ status, connection: 'close', closed: true });
  });

  it('a 401 closes even a complete request; a good one keeps its connection', async () => {
    const refused = await sendRaw(gateway.url, `GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n`, 3_000);
    expect(firstResponse(refused.text)).toMatchObject({ status: 401, headers: { connection: 'close' } });
    expect(refused.closedByServer).toBe(true);

    const kept = await openRaw(gateway.url);
    kept.socket.write(`GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TEST_CLIENT_KEY}\r\n\r\n`);
    expect(await until(() => firstResponse(kept.received()) !== undefined, 3_000)).toBe(true);
    expect(firstResponse(kept.received())).toMatchObject({ status: 200, headers: { connection: 'keep-alive' } });
    await until(() => kept.isClosed(), 300);
    expect(kept.isClosed()).toBe(false);
    kept.socket.destroy();
  });
});
