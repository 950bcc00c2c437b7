/**
 * The passthrough is a gateway, not a tunnel: the fields that describe one connection
 * (RFC 9110 section 7.6.1: Connection and what it lists, Keep-Alive, Proxy-Connection, TE,
 * Trailer, Transfer-Encoding, Upgrade; and Expect, already met once the body was read) stop
 * at the gateway in both directions. A large upload sent the way curl sends it (with
 * `Expect: 100-continue`) reaches the provider; the client's `Connection: close` is honoured
 * whatever the provider says about its own connection. A provider-prefixed model in a hostile,
 * deeply nested JSON body gets the cached routes' 400, never a 500.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { multipartBody, tinyWav } from './helpers/audio.js';
import { startFakeUpstream, type FakeUpstream, type RecordedRequest } from './helpers/fake-upstream.js';
import { startGateway, TEST_CLIENT_KEY, TEST_OPENAI_KEYS, type RunningGateway } from './helpers/gateway.js';
import { rawExchange, wireRequest } from './helpers/wire-request.js';

let fake: FakeUpstream;
let gw: RunningGateway;
const auth = { authorization: `Bearer ${TEST_CLIENT_KEY}` };

beforeAll(async () => {
  fake = await startFakeUpstream();
  gw = await startGateway(fake, { GATEWAY_API_KEYS: TEST_CLIENT_KEY });
  expect((await fetch(`${gw.url}/v1/models`, { headers: auth })).status).toBe(200); // lists fetched
});
beforeEach(() => fake.reset());
afterAll(async () => {
  gw.app.server.closeAllConnections();
  await gw.close();
  await fake.close();
});

function forwarded(path: string): RecordedRequest[] {
  return fake.requests.filter((r) => r.path === path);
}

/** A WAV of about `bytes` bytes in a multipart upload, as the SDKs and curl send audio. */
function largeUpload(bytes: number, model = 'whisper-1') {
  return multipartBody({ model }, { name: 'file', filename: 'long.wav', type: 'audio/wav', data: tinyWav(Math.ceil(bytes / 2)) });
}

describe('Expect: 100-continue on a large upload', () => {
  it('node:http with Expect: 100-continue and a 1.5 MB multipart body: 200 from the provider, the bytes intact', async () => {
    const { body, contentType } = largeUpload(1_500_000);
    expect(body.length).toBeGreaterThan(1024 * 1024);
    const response = await wireRequest(gw.url, '/v1/audio/transcriptions', { headers: { ...auth, 'content-type': contentType }, body, expectContinue: true });
    expect(response.status, response.body.toString()).toBe(200);
    expect(JSON.parse(response.body.toString()).text).toBe(`transcribed ${body.toString('utf8').length} bytes (multipart/form-data)`);
    const [upstream] = forwarded('/v1/audio/transcriptions');
    expect(upstream?.raw.equals(body)).toBe(true);
    expect(upstream?.headers.expect).toBeUndefined();
    expect(TEST_OPENAI_KEYS).toContain(upstream?.key);
  });

  it('curl -F file=@… (which sends Expect: 100-continue over 1 MB) gets the transcription', async (context) => {
    const curl = await promisify(execFile)('curl', ['--version']).catch(() => undefined);
    if (!curl) return context.skip();
    const dir = await mkdtemp(join(tmpdir(), 'gw-curl-'));
    try {
      const file = join(dir, 'speech.wav');
      await writeFile(file, tinyWav(800_000));
      const { stdout } = await promisify(execFile)('curl', [
        '-sS',
        '-w',
        '\n%{http_code}',
        '-H',
        `Authorization: Bearer ${TEST_CLIENT_KEY}`,
        '-F',
        'model=whisper-1',
        '-F',
        `file=@${file};type=audio/wav`,
        `${gw.url}/v1/audio/transcriptions`,
      ]);
      const [text, status] = stdout.split('\n');
      expect(status, text).toBe('200');
      expect(JSON.parse(text!).text).toMatch(/^transcribed \d+ bytes \(multipart\/form-data\)$/);
      expect(forwarded('/v1/audio/transcriptions')[0]?.headers.expect).toBeUndefined();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('hop-by-hop fields', () => {
  it('towards the provider: Connection, every field it lists, Keep-Alive, Proxy-Connection, TE, Trailer, Upgrade are dropped; end-to-end ones kept', async () => {
    fake.queue.push({ status: 200, body: { results: [] } });
    const response = await wireRequest(gw.url, '/v1/moderations', {
      headers: {
        ...auth,
        'content-type': 'application/json',
        connection: 'keep-alive, X-Hop-Option',
        'x-hop-option': 'for this connection only',
        'keep-alive': 'timeout=30',
        'proxy-connection': 'keep-alive',
        te: 'trailers',
        trailer: 'x-checksum',
        upgrade: 'h2c',
        'x-end-to-end': 'kept',
      },
      body: JSON.stringify({ model: 'gpt-4o-mini', input: 'hello' }),
      // Chunked: node:http sends a Trailer field only with a chunked body (as any client must).
      chunked: true,
    });
    expect(response.status, response.body.toString()).toBe(200);
    const [upstream] = forwarded('/v1/moderations');
    for (const name of ['x-hop-option', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade', 'expect', 'transfer-encoding']) {
      expect(upstream?.headers[name], name).toBeUndefined();
    }
    // undici's own connection header (its keep-alive) is not the client's.
    expect(upstream?.headers.connection ?? 'keep-alive').toBe('keep-alive');
    expect(upstream?.headers['x-end-to-end']).toBe('kept');
  });

  it("towards the client: the provider's Connection, what it lists, Keep-Alive, Proxy-Connection, Upgrade are dropped", async () => {
    fake.queue.push({
      status: 200,
      headers: {
        connection: 'keep-alive, X-Upstream-Hop',
        'x-upstream-hop': 'provider-internal',
        'keep-alive': 'timeout=600, max=1000',
        'proxy-connection': 'keep-alive',
        upgrade: 'h2c',
        'x-end-to-end': 'kept',
      },
      body: { object: 'list', data: [] },
    });
    // A keep-alive client: Node then writes the gateway's own Keep-Alive field.
    const response = await wireRequest(gw.url, '/v1/files', { method: 'GET', headers: { ...auth, connection: 'keep-alive' } });
    expect(response.status).toBe(200);
    for (const name of ['x-upstream-hop', 'proxy-connection', 'upgrade']) expect(response.headers[name], name).toBeUndefined();
    // Node writes the gateway's own keep-alive (its keepAliveTimeout), never the provider's.
    expect(response.headers['keep-alive'] ?? '').not.toContain('600');
    expect(response.headers['x-end-to-end']).toBe('kept');
  });

  it("the client's Connection: close is honoured (the provider keeps its own connection alive)", async () => {
    fake.queue.push({ status: 200, body: { object: 'list', data: [] } });
    const { text, serverClosed } = await rawExchange(
      gw.url,
      `GET /v1/files HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer ${TEST_CLIENT_KEY}\r\nConnection: close\r\n\r\n`,
    );
    const head = text.slice(0, text.indexOf('\r\n\r\n')).toLowerCase();
    expect(head).toMatch(/^http\/1\.1 200 /);
    expect(head.match(/^connection: .*$/gm)).toEqual(['connection: close']);
    expect(head).not.toMatch(/^keep-alive:/m);
    expect(serverClosed).toBe(true);
  });

  it('a keep-alive client keeps its connection', async () => {
    fake.queue.push({ status: 200, body: { object: 'list', data: [] } });
    const { text, serverClosed } = await rawExchange(gw.url, `GET /v1/files HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer ${TEST_CLIENT_KEY}\r\n\r\n`, 300);
    expect(text).toMatch(/^HTTP\/1\.1 200 /);
    expect(text.toLowerCase()).toContain('\r\nconnection: keep-alive\r\n');
    expect(serverClosed).toBe(false);
  });
});

describe('a provider-prefixed model in a deeply nested JSON body', () => {
  const nested = (depth: number) => `{"model":"groq/whisper-large-v3","input":${'['.repeat(depth)}${']'.repeat(depth)}}`;

  it('5,000 levels: 400 invalid_request_error in OpenAI shape, nothing forwarded', async () => {
    const response = await wireRequest(gw.url, '/v1/moderations', { headers: { ...auth, 'content-type': 'application/json' }, body: nested(5_000) });
    expect(response.status).toBe(400);
    expect(response.headers['content-type']).toMatch(/^application\/json/);
    const { error } = JSON.parse(response.body.toString()) as { error: { type: string; code: string; message: string } };
    expect(error.type).toBe('invalid_request_error');
    expect(error.message).toMatch(/nested more than \d+ levels/);
    expect(forwarded('/openai/v1/moderations')).toHaveLength(0);
  });

  it('a few levels: forwarded to the provider the prefix names, the prefix removed', async () => {
    fake.queue.push({ status: 200, body: { results: [] } });
    const response = await wireRequest(gw.url, '/v1/moderations', { headers: { ...auth, 'content-type': 'application/json' }, body: nested(10) });
    expect(response.status).toBe(200);
    const [upstream] = forwarded('/openai/v1/moderations');
    expect(upstream?.json?.model).toBe('whisper-large-v3');
  });
});
