/**
 * Response headers: X-Request-Id on every response (the client's own when it sent a sane one),
 * the upstream's id as X-Upstream-Request-Id, X-Gateway-Provider, the provider's rate-limit
 * headers passed on, and framing headers (content-encoding, transfer-encoding,
 * content-length) that match the bytes actually sent.
 */
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startFakeUpstream, type FakeUpstream } from './helpers/fake-upstream.js';
import { startGateway, TEST_CLIENT_KEY, type RunningGateway } from './helpers/gateway.js';
import { rawRequest } from './helpers/raw-http.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

let fake: FakeUpstream;
let gw: RunningGateway;
const auth = { authorization: `Bearer ${TEST_CLIENT_KEY}` };

beforeAll(async () => {
  fake = await startFakeUpstream();
  gw = await startGateway(fake, { GATEWAY_API_KEYS: TEST_CLIENT_KEY, BODY_LIMIT_BYTES: '4096' });
});
beforeEach(() => fake.reset());
afterAll(async () => {
  await gw.close();
  await fake.close();
});

let unique = 0;
const chat = (extra: Record<string, unknown> = {}) =>
  JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: `headers ${++unique}` }], ...extra });
const post = (path: string, body: string, headers: Record<string, string> = {}): Promise<Response> =>
  fetch(gw.url + path, { method: 'POST', headers: { ...auth, 'content-type': 'application/json', ...headers }, body });

describe('X-Request-Id on every response', () => {
  type Send = (headers: Record<string, string>) => Promise<Response>;
  const cases: Array<[string, Send]> = [
    ['chat JSON', (h) => post('/v1/chat/completions', chat(), h)],
    ['chat stream', (h) => post('/v1/chat/completions', chat({ stream: true }), h)],
    ['embeddings', (h) => post('/v1/embeddings', JSON.stringify({ model: 'text-embedding-3-small', input: `h${++unique}` }), h)],
    ['models', (h) => fetch(`${gw.url}/v1/models`, { headers: { ...auth, ...h } })],
    ['passthrough', (h) => fetch(`${gw.url}/v1/files`, { headers: { ...auth, ...h } })],
    ['healthz', (h) => fetch(`${gw.url}/healthz`, { headers: h })],
    ['readyz', (h) => fetch(`${gw.url}/readyz`, { headers: h })],
    ['metrics', (h) => fetch(`${gw.url}/metrics`, { headers: h })],
    ['401 from the gateway', (h) => fetch(`${gw.url}/v1/models`, { headers: h })],
    ['404 unknown route', (h) => fetch(`${gw.url}/nowhere`, { headers: { ...auth, ...h } })],
    ['404 unknown model', (h) => post('/v1/chat/completions', JSON.stringify({ model: 'nobody', messages: [] }), h)],
    ['400 malformed JSON', (h) => post('/v1/chat/completions', '{', h)],
    ['400 malformed URL', (h) => fetch(`${gw.url}/v1/%E0%A4%A`, { headers: { ...auth, ...h } })],
    ['413 too large', (h) => post('/v1/chat/completions', chat({ padding: 'x'.repeat(8192) }), h)],
    [
      'upstream error passed on',
      (h) => post('/v1/chat/completions', JSON.stringify({ model: 'gpt-4.1-nano', messages: [{ role: 'user', content: 'unknown to the fake' }] }), h),
    ],
  ];

  it.each(cases)('%s: generated when the client sent none', async (_name, send) => {
    const response = await send({});
    await response.arrayBuffer();
    expect(response.headers.get('x-request-id')).toMatch(UUID);
  });

  it.each(cases)('%s: the client’s own id is kept', async (name, send) => {
    const id = `client-${name.replace(/\W+/g, '-')}-${++unique}`;
    const response = await send({ 'x-request-id': id });
    await response.arrayBuffer();
    expect(response.headers.get('x-request-id')).toBe(id);
  });

  it('two requests get two different generated ids', async () => {
    const a = await fetch(`${gw.url}/healthz`);
    const b = await fetch(`${gw.url}/healthz`);
    expect(a.headers.get('x-request-id')).not.toBe(b.headers.get('x-request-id'));
  });

  it.each([
    ['too long', 'x'.repeat(200)],
    ['with spaces and quotes', 'id with "quotes"'],
    ['with a newline-ish escape', 'abc%0d%0aset-cookie:x'],
  ])('a client id that is %s is replaced by a generated one', async (_name, id) => {
    const response = await fetch(`${gw.url}/healthz`, { headers: { 'x-request-id': id } });
    expect(response.headers.get('x-request-id')).toMatch(UUID);
  });
});

describe('upstream ids, provider and rate-limit headers', () => {
  it('chat JSON: X-Upstream-Request-Id, X-Gateway-Provider, x-ratelimit-* from the provider', async () => {
    const response = await post('/v1/chat/completions', chat());
    expect(response.status).toBe(200);
    expect(response.headers.get('x-upstream-request-id')).toMatch(/^req_fake_\d+$/);
    expect(response.headers.get('x-request-id')).not.toBe(response.headers.get('x-upstream-request-id'));
    expect(response.headers.get('x-gateway-provider')).toBe('openai');
    expect(response.headers.get('x-ratelimit-remaining-requests')).toBe('99');
    expect(response.headers.get('x-ratelimit-limit-requests')).toBe('100');
  });

  it('chat stream: the same headers on the SSE response', async () => {
    const response = await post(
      '/v1/chat/completions',
      JSON.stringify({ model: 'llama-3.1-8b-instant', stream: true, messages: [{ role: 'user', content: `stream headers ${++unique}` }] }),
    );
    expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(response.headers.get('x-upstream-request-id')).toMatch(/^req_fake_\d+$/);
    expect(response.headers.get('x-gateway-provider')).toBe('groq');
    expect(response.headers.get('x-ratelimit-remaining-requests')).toBe('99');
    expect(response.headers.get('x-request-id')).toMatch(UUID);
    expect(await response.text()).toContain('data: [DONE]');
  });

  it('the upstream error answer keeps the upstream id and the provider', async () => {
    const response = await post(
      '/v1/chat/completions',
      JSON.stringify({ model: 'gpt-4.1-nano', messages: [{ role: 'user', content: 'not served by the fake' }] }),
    );
    expect(response.status).toBe(404);
    expect(response.headers.get('x-gateway-provider')).toBe('openai');
    expect(response.headers.get('x-upstream-request-id')).toMatch(/^req_fake_\d+$/);
  });

  it('provider headers that are not meant for clients do not pass', async () => {
    fake.queue.push({
      status: 200,
      headers: { 'set-cookie': '__cf_bm=abc; path=/', 'openai-organization': 'org-x', 'x-ratelimit-remaining-tokens': '5' },
      body: {
        id: 'c',
        object: 'chat.completion',
        created: 1,
        model: 'gpt-4o-mini',
        choices: [{ index: 0, message: { role: 'assistant', content: 'x' }, finish_reason: 'stop' }],
      },
    });
    const response = await post('/v1/chat/completions', chat());
    expect(response.status).toBe(200);
    expect(response.headers.get('set-cookie')).toBeNull();
    expect(response.headers.get('x-ratelimit-remaining-tokens')).toBe('5');
  });
});

describe('framing headers match the bytes sent', () => {
  it('a JSON answer to a client that accepts gzip: either plain with a right Content-Length, or really gzip', async () => {
    const response = await rawRequest(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json', 'accept-encoding': 'gzip, deflate, br' },
      body: chat(),
    });
    expect(response.status).toBe(200);
    const encoding = response.headers['content-encoding'];
    const text = encoding === 'gzip' ? gunzipSync(response.body).toString('utf8') : response.body.toString('utf8');
    expect(encoding === undefined || encoding === 'gzip').toBe(true);
    expect((JSON.parse(text) as { object: string }).object).toBe('chat.completion');
    if (response.headers['content-length'] !== undefined) expect(Number(response.headers['content-length'])).toBe(response.body.length);
    // The gateway asks the provider for identity bytes on the routes it parses.
    const [upstream] = fake.completionCalls();
    expect(upstream?.headers['accept-encoding'] ?? 'identity').not.toMatch(/gzip|br|deflate/);
  });

  it('an SSE answer is chunked, without a Content-Length or Content-Encoding', async () => {
    const response = await rawRequest(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json', 'accept-encoding': 'gzip' },
      body: chat({ stream: true }),
    });
    expect(response.headers['content-encoding']).toBeUndefined();
    expect(response.headers['content-length']).toBeUndefined();
    expect(response.headers['transfer-encoding']).toBe('chunked');
    expect(response.body.toString('utf8')).toMatch(/data: \[DONE\]\n\n$/);
  });

  it('a passthrough answer the provider gzipped arrives as gzip with matching headers', async () => {
    const payload = { object: 'list', data: [{ id: 'file-gz' }] };
    const gz = gzipSync(Buffer.from(JSON.stringify(payload)));
    fake.queue.push({ status: 200, headers: { 'content-encoding': 'gzip' }, rawBody: gz });
    const raw = await rawRequest(`${gw.url}/v1/files`, { headers: { ...auth, 'accept-encoding': 'gzip' } });
    expect(raw.headers['content-encoding']).toBe('gzip');
    expect(JSON.parse(gunzipSync(raw.body).toString('utf8'))).toEqual(payload);
    if (raw.headers['content-length'] !== undefined) expect(Number(raw.headers['content-length'])).toBe(raw.body.length);

    // fetch decodes it transparently: the headers and bytes are consistent.
    fake.queue.push({ status: 200, headers: { 'content-encoding': 'gzip' }, rawBody: gz });
    const decoded = await fetch(`${gw.url}/v1/files`, { headers: auth });
    expect(await decoded.json()).toEqual(payload);
  });

  it('a large passthrough answer streamed by the provider in chunks arrives whole', async () => {
    const big = { object: 'list', data: Array.from({ length: 2000 }, (_, i) => ({ id: `file-${i}`, object: 'file', bytes: i })) };
    fake.queue.push({ status: 200, body: big });
    const response = await fetch(`${gw.url}/v1/files`, { headers: auth });
    expect(await response.json()).toEqual(big);
  });
});
