/**
 * Anything a client can send gets an OpenAI-shaped error (`{"error":{message,type,code}}`,
 * Content-Type application/json, an X-Request-Id) with a 4xx status: never a 500, never a
 * framework's own error shape, and nothing reaches the upstream.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startFakeUpstream, type FakeUpstream } from './helpers/fake-upstream.js';
import { startGateway, type RunningGateway } from './helpers/gateway.js';

const BODY_LIMIT = 8 * 1024;

let fake: FakeUpstream;
let gw: RunningGateway;

beforeAll(async () => {
  fake = await startFakeUpstream();
  gw = await startGateway(fake, { BODY_LIMIT_BYTES: String(BODY_LIMIT) });
});
beforeEach(() => fake.reset());
afterAll(async () => {
  await gw.close();
  await fake.close();
});

interface ErrorAnswer {
  status: number;
  type: string;
  code: string | null;
  message: string;
}

/** Sends a request and checks the parts every error answer shares; returns the error fields. */
async function errorOf(path: string, init: RequestInit): Promise<ErrorAnswer> {
  const response = await fetch(gw.url + path, init);
  const text = await response.text();
  expect(response.status, text).toBeGreaterThanOrEqual(400);
  expect(response.status, text).toBeLessThan(500);
  expect(response.headers.get('content-type')).toMatch(/^application\/json/);
  expect(response.headers.get('x-request-id')).toBeTruthy();
  const body = JSON.parse(text) as { error?: { message?: unknown; type?: unknown; code?: unknown } };
  expect(typeof body.error?.message).toBe('string');
  expect(typeof body.error?.type).toBe('string');
  expect(body.error && 'code' in body.error).toBe(true);
  // Nothing a client sent wrong may be forwarded (the model lists are the gateway's own fetch).
  expect(fake.requests.filter((r) => !r.path.endsWith('/models'))).toHaveLength(0);
  return { status: response.status, type: body.error?.type as string, code: body.error?.code as string | null, message: body.error?.message as string };
}

const json = (body: string, path = '/v1/chat/completions'): [string, RequestInit] => [
  path,
  { method: 'POST', headers: { 'content-type': 'application/json' }, body },
];

describe('malformed JSON', () => {
  it.each([
    ['/v1/chat/completions', '{"model":"gpt-4o","messages":['],
    ['/v1/completions', '{model: gpt}'],
    ['/v1/embeddings', '{"model":"text-embedding-3-small","input":"x",}'],
    ['/openai/v1/chat/completions', 'not json at all'],
    ['/v1/chat/completions', '{"model":"gpt-4o","messages":[]}garbage'],
  ])('%s %s → 400 invalid_request_error', async (path, body) => {
    const error = await errorOf(...json(body, path));
    expect(error.status).toBe(400);
    expect(error.type).toBe('invalid_request_error');
  });

  it('a passthrough route with a malformed JSON body → 400 too', async () => {
    const error = await errorOf(...json('{"model":', '/v1/moderations'));
    expect(error.status).toBe(400);
    expect(error.type).toBe('invalid_request_error');
  });

  it('an empty JSON body → 400', async () => {
    expect((await errorOf(...json(''))).status).toBe(400);
  });

  it('prototype-poisoning keys → 400, not a crash', async () => {
    expect((await errorOf(...json('{"model":"gpt-4o","messages":[],"__proto__":{"admin":true}}'))).status).toBe(400);
  });
});

describe('body over BODY_LIMIT_BYTES → 413', () => {
  const big = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x'.repeat(BODY_LIMIT * 2) }] });

  it('with a Content-Length', async () => {
    const error = await errorOf(...json(big));
    expect(error.status).toBe(413);
    expect(error.type).toBe('invalid_request_error');
  });

  it('chunked, without a Content-Length', async () => {
    const encoded = new TextEncoder().encode(big);
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < encoded.length; i += 1024) controller.enqueue(encoded.slice(i, i + 1024));
        controller.close();
      },
    });
    const init = { method: 'POST', headers: { 'content-type': 'application/json' }, body, duplex: 'half' } as RequestInit;
    expect((await errorOf('/v1/chat/completions', init)).status).toBe(413);
  });

  it('on a passthrough route (multipart upload)', async () => {
    const form = new FormData();
    form.set('model', 'whisper-1');
    form.set('file', new Blob([new Uint8Array(BODY_LIMIT * 2)], { type: 'audio/wav' }), 'big.wav');
    expect((await errorOf('/v1/audio/transcriptions', { method: 'POST', body: form })).status).toBe(413);
  });
});

describe('missing or mistyped fields → 400', () => {
  it.each([
    ['missing model', '/v1/chat/completions', { messages: [{ role: 'user', content: 'x' }] }, 'model'],
    ['empty model', '/v1/chat/completions', { model: '', messages: [{ role: 'user', content: 'x' }] }, 'model'],
    ['model not a string', '/v1/chat/completions', { model: 42, messages: [{ role: 'user', content: 'x' }] }, 'model'],
    ['missing messages', '/v1/chat/completions', { model: 'gpt-4o-mini' }, 'messages'],
    ['messages null', '/v1/chat/completions', { model: 'gpt-4o-mini', messages: null }, 'messages'],
    ['messages not an array', '/v1/chat/completions', { model: 'gpt-4o-mini', messages: { role: 'user' } }, 'messages'],
    ['stream not a boolean', '/v1/chat/completions', { model: 'gpt-4o-mini', messages: [], stream: 'yes' }, 'stream'],
    ['completions without prompt', '/v1/completions', { model: 'gpt-3.5-turbo-instruct' }, 'prompt'],
    ['embeddings without input', '/v1/embeddings', { model: 'text-embedding-3-small' }, 'input'],
    ['embeddings without model', '/v1/embeddings', { input: 'x' }, 'model'],
  ])('%s', async (_name, path, body, field) => {
    const error = await errorOf(...json(JSON.stringify(body), path));
    expect(error.status).toBe(400);
    expect(error.type).toBe('invalid_request_error');
    expect(error.message).toContain(field);
  });
});

describe('a body that is not a JSON object → 400', () => {
  it.each([
    ['array', '[{"model":"gpt-4o"}]'],
    ['string', '"hello"'],
    ['number', '42'],
    ['null', 'null'],
    ['boolean', 'true'],
  ])('%s', async (_name, body) => {
    const error = await errorOf(...json(body));
    expect(error.status).toBe(400);
    expect(error.type).toBe('invalid_request_error');
  });

  it('nesting deep enough to overflow a recursive walk → 400', async () => {
    // Needs more than this file's small body limit: a gateway with the default one.
    const roomy = await startGateway(fake);
    try {
      const deep = `${'{"a":'.repeat(100_000)}1${'}'.repeat(100_000)}`;
      const send = (body: string) => fetch(`${roomy.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      const object = await send(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x"}],"metadata":${deep}}`);
      expect(object.status).toBe(400);
      expect(((await object.json()) as { error: { type: string } }).error.type).toBe('invalid_request_error');
      const array = await send(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x"}],"stop":${'['.repeat(100_000)}${']'.repeat(100_000)}}`);
      expect(array.status).toBe(400);
      expect(fake.completionCalls()).toHaveLength(0);
      // Real requests (deep tool schemas) nest far less, and still pass.
      const reasonable = `${'{"a":'.repeat(100)}1${'}'.repeat(100)}`;
      const ok = await send(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"deep but fine"}],"metadata":${reasonable}}`);
      expect(ok.status).toBe(200);
    } finally {
      await roomy.close();
    }
  });
});

describe('wrong content-type', () => {
  it.each([
    ['form-urlencoded', 'application/x-www-form-urlencoded', 'model=gpt-4o&messages=x'],
    ['octet-stream', 'application/octet-stream', '{"model":"gpt-4o","messages":[]}'],
    ['xml', 'application/xml', '<model>gpt-4o</model>'],
  ])('%s → 415 invalid_request_error', async (_name, type, body) => {
    const error = await errorOf('/v1/chat/completions', { method: 'POST', headers: { 'content-type': type }, body });
    expect(error.status).toBe(415);
    expect(error.type).toBe('invalid_request_error');
    expect(error.message).toContain(type); // says what was wrong
  });

  it('text/plain → a 4xx error, not an attempt upstream', async () => {
    const error = await errorOf('/v1/chat/completions', {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      body: '{"model":"gpt-4o","messages":[]}',
    });
    expect([400, 415]).toContain(error.status);
  });

  it('no content-type at all → a 4xx error', async () => {
    const error = await errorOf('/v1/chat/completions', { method: 'POST', body: new Uint8Array([123, 125]) });
    expect([400, 415]).toContain(error.status);
  });
});

describe('unknown routes and bad URLs → OpenAI-shaped 404/400', () => {
  it.each(['/', '/v2/chat/completions', '/chat/completions', '/admin', '/openai/v2/models'])('GET %s → 404', async (path) => {
    const error = await errorOf(path, { method: 'GET' });
    expect(error.status).toBe(404);
    expect(error.type).toBe('invalid_request_error');
  });

  it('POST to an unknown route outside /v1 → 404', async () => {
    expect((await errorOf(...json('{}', '/v1beta/chat'))).status).toBe(404);
  });

  it.each(['/v1/%E0%A4%A', '/v1/chat/completions%'])('a malformed percent-encoding %s → 400', async (path) => {
    const error = await errorOf(path, { method: 'GET' });
    expect(error.status).toBe(400);
    expect(error.type).toBe('invalid_request_error');
  });
});

describe('the gateway still works after all that', () => {
  it('a valid request right after is answered', async () => {
    const response = await fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'still alive' }] }),
    });
    expect(response.status).toBe(200);
  });
});
