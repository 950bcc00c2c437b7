/**
 * Routes the gateway does not cache (audio, files, moderations, …) are forwarded unchanged to
 * the provider chosen by the body's `model` (multipart or JSON) or the path layout: body
 * bytes intact, the provider key instead of the client's, the upstream's answer and ids back.
 */
import Groq from 'groq-sdk';
import OpenAI from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { multipartBody, tinyWav } from './helpers/audio.js';
import { startFakeUpstream, type FakeUpstream, type RecordedRequest } from './helpers/fake-upstream.js';
import { startGateway, TEST_CLIENT_KEY, TEST_GROQ_KEYS, TEST_OPENAI_KEYS, type RunningGateway } from './helpers/gateway.js';
import { groqClient, openaiClient } from './helpers/sdk-clients.js';

let fake: FakeUpstream;
let gw: RunningGateway;
const auth = { authorization: `Bearer ${TEST_CLIENT_KEY}` };

beforeAll(async () => {
  fake = await startFakeUpstream();
  gw = await startGateway(fake, { GATEWAY_API_KEYS: TEST_CLIENT_KEY });
  await openaiClient(gw).models.list(); // lists fetched: routing by exact id is ready
});
beforeEach(() => fake.reset());
afterAll(async () => {
  await gw.close();
  await fake.close();
});

/** The one forwarded request (the gateway's own /models fetches aside). */
function forwardedRequest(): RecordedRequest {
  const forwarded = fake.requests.filter((r) => !r.path.endsWith('/models'));
  expect(forwarded).toHaveLength(1);
  return forwarded[0]!;
}

describe('multipart audio upload', () => {
  const wav = tinyWav();

  it('model=whisper-1 reaches OpenAI with the multipart body byte for byte and a provider key', async () => {
    const { body, contentType } = multipartBody({ model: 'whisper-1', language: 'en' }, { name: 'file', filename: 'hello.wav', type: 'audio/wav', data: wav });
    const response = await fetch(`${gw.url}/v1/audio/transcriptions`, {
      method: 'POST',
      headers: { ...auth, 'content-type': contentType, 'x-request-id': 'client-chosen-id-1' },
      body: new Uint8Array(body),
    });
    expect(response.status).toBe(200);
    expect(((await response.json()) as { text: string }).text).toContain('transcribed');
    const upstream = forwardedRequest();
    expect(upstream.flavour).toBe('openai');
    expect(upstream.method).toBe('POST');
    expect(upstream.path).toBe('/v1/audio/transcriptions');
    expect(upstream.raw.equals(body)).toBe(true);
    expect(upstream.headers['content-type']).toBe(contentType);
    expect(TEST_OPENAI_KEYS).toContain(upstream.key);
    expect(response.headers.get('x-gateway-provider')).toBe('openai');
    expect(response.headers.get('x-upstream-request-id')).toMatch(/^req_fake_\d+$/);
    expect(response.headers.get('x-request-id')).toBe('client-chosen-id-1');
  });

  it('model=whisper-large-v3 (listed by Groq) reaches Groq, under /v1 too', async () => {
    const { body, contentType } = multipartBody({ model: 'whisper-large-v3' }, { name: 'file', filename: 'hola.wav', type: 'audio/wav', data: wav });
    const response = await fetch(`${gw.url}/v1/audio/transcriptions`, {
      method: 'POST',
      headers: { ...auth, 'content-type': contentType },
      body: new Uint8Array(body),
    });
    expect(response.status).toBe(200);
    const upstream = forwardedRequest();
    expect(upstream.flavour).toBe('groq');
    expect(upstream.path).toBe('/openai/v1/audio/transcriptions');
    expect(upstream.raw.equals(body)).toBe(true);
    expect(upstream.key).toBe(TEST_GROQ_KEYS[0]);
    expect(response.headers.get('x-gateway-provider')).toBe('groq');
    // No client id sent: the gateway's own, not the upstream's.
    const id = response.headers.get('x-request-id');
    expect(id).toBeTruthy();
    expect(id).not.toBe(response.headers.get('x-upstream-request-id'));
  });

  it('the openai SDK audio.transcriptions.create with a generated WAV (toFile)', async () => {
    const result = await openaiClient(gw).audio.transcriptions.create({
      model: 'whisper-1',
      file: await OpenAI.toFile(wav, 'speech.wav', { type: 'audio/wav' }),
    });
    expect(result.text).toMatch(/^transcribed \d+ bytes \(multipart\/form-data\)$/);
    const upstream = forwardedRequest();
    expect(upstream.flavour).toBe('openai');
    expect(upstream.raw.includes(wav)).toBe(true);
    expect(upstream.raw.toString('latin1')).toContain('name="model"\r\n\r\nwhisper-1\r\n');
    expect(TEST_OPENAI_KEYS).toContain(upstream.key);
  });

  it('groq-sdk audio.transcriptions.create goes to Groq', async () => {
    const result = await groqClient(gw).audio.transcriptions.create({
      model: 'whisper-large-v3',
      file: await Groq.toFile(wav, 'speech.wav', { type: 'audio/wav' }),
    });
    expect(result.text).toContain('transcribed');
    const upstream = forwardedRequest();
    expect(upstream.flavour).toBe('groq');
    expect(upstream.raw.includes(wav)).toBe(true);
    expect(upstream.key).toBe(TEST_GROQ_KEYS[0]);
  });

  it('the model field is found even when it comes after the file', async () => {
    const { body, contentType } = multipartBody({}, { name: 'file', filename: 'late.wav', type: 'audio/wav', data: wav });
    const withModelLast = Buffer.concat([
      body.subarray(0, body.length - Buffer.byteLength(`--${contentType.split('boundary=')[1]}--\r\n`)),
      Buffer.from(
        `--${contentType.split('boundary=')[1]}\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-large-v3\r\n--${contentType.split('boundary=')[1]}--\r\n`,
      ),
    ]);
    const response = await fetch(`${gw.url}/v1/audio/transcriptions`, {
      method: 'POST',
      headers: { ...auth, 'content-type': contentType },
      body: new Uint8Array(withModelLast),
    });
    expect(response.status).toBe(200);
    expect(forwardedRequest().flavour).toBe('groq');
  });
});

describe('other passthrough requests', () => {
  it('GET /v1/files with a query string: forwarded unchanged, answer and headers back', async () => {
    fake.queue.push({
      status: 200,
      headers: { 'x-request-id': 'req_files_1', 'x-ratelimit-remaining-requests': '42' },
      body: { object: 'list', data: [{ id: 'file-1', object: 'file' }] },
    });
    const response = await fetch(`${gw.url}/v1/files?purpose=batch&limit=2`, { headers: auth });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ object: 'list', data: [{ id: 'file-1', object: 'file' }] });
    const upstream = forwardedRequest();
    expect(upstream.method).toBe('GET');
    expect(upstream.path).toBe('/v1/files');
    expect(upstream.query).toBe('?purpose=batch&limit=2');
    expect(TEST_OPENAI_KEYS).toContain(upstream.key);
    expect(response.headers.get('x-upstream-request-id')).toBe('req_files_1');
    expect(response.headers.get('x-ratelimit-remaining-requests')).toBe('42');
    expect(response.headers.get('x-gateway-provider')).toBe('openai');
    expect(response.headers.get('x-request-id')).not.toBe('req_files_1');
  });

  it('the openai SDK files.list works through it', async () => {
    fake.queue.push({ status: 200, body: { object: 'list', data: [], has_more: false } });
    const page = await openaiClient(gw).files.list();
    expect(page.data).toEqual([]);
    expect(forwardedRequest().path).toBe('/v1/files');
  });

  it('a JSON POST (text to speech) is routed by its model and forwarded byte for byte', async () => {
    fake.queue.push({ status: 200, body: { ok: true } });
    const body = '{ "input" : "spaced   out\\u00e9 ünï",  "voice":"alloy", "model":"tts-1" }';
    const response = await fetch(`${gw.url}/v1/audio/speech`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body });
    expect(response.status).toBe(200);
    const upstream = forwardedRequest();
    expect(upstream.flavour).toBe('openai');
    expect(upstream.body).toBe(body);
    expect(upstream.headers['content-type']).toBe('application/json');
  });

  it('a forced groq/ prefix is stripped from a JSON body before forwarding', async () => {
    fake.queue.push({ status: 200, body: { ok: true } });
    const response = await fetch(`${gw.url}/v1/audio/speech`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'groq/playai-tts', input: 'hi', voice: 'Fritz-PlayAI' }),
    });
    expect(response.status).toBe(200);
    const upstream = forwardedRequest();
    expect(upstream.flavour).toBe('groq');
    expect(upstream.json).toEqual({ model: 'playai-tts', input: 'hi', voice: 'Fritz-PlayAI' });
  });

  it('a forced prefix is stripped from a multipart model field, every other byte intact', async () => {
    const file = { name: 'file', filename: 'forced.wav', type: 'audio/wav', data: tinyWav() };
    const sent = multipartBody({ model: 'groq/whisper-large-v3-turbo', language: 'de' }, file);
    const response = await fetch(`${gw.url}/v1/audio/transcriptions`, {
      method: 'POST',
      headers: { ...auth, 'content-type': sent.contentType },
      body: new Uint8Array(sent.body),
    });
    expect(response.status).toBe(200);
    const upstream = forwardedRequest();
    expect(upstream.flavour).toBe('groq');
    const expected = Buffer.from(sent.body.toString('latin1').replace('groq/whisper-large-v3-turbo', 'whisper-large-v3-turbo'), 'latin1');
    expect(upstream.raw.equals(expected)).toBe(true);
    expect(upstream.headers['content-type']).toBe(sent.contentType);
    expect(Number(upstream.headers['content-length'])).toBe(expected.length);
  });

  it('the Groq path layout without a model goes to Groq', async () => {
    fake.queue.push({ status: 200, body: { object: 'list', data: [] } });
    const response = await fetch(`${gw.url}/openai/v1/batches`, { headers: auth });
    expect(response.status).toBe(200);
    const upstream = forwardedRequest();
    expect(upstream.flavour).toBe('groq');
    expect(upstream.path).toBe('/openai/v1/batches');
    expect(response.headers.get('x-gateway-provider')).toBe('groq');
  });

  it('an unroutable model on a passthrough route → 404 model_not_found, nothing forwarded', async () => {
    const response = await fetch(`${gw.url}/v1/images/generations`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'stable-diffusion-xl', prompt: 'cat' }),
    });
    expect(response.status).toBe(404);
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe('model_not_found');
    expect(fake.requests.filter((r) => !r.path.endsWith('/models'))).toHaveLength(0);
  });

  it('client identity headers stay home; provider headers go on', async () => {
    fake.queue.push({ status: 200, body: { object: 'list', data: [] } });
    await fetch(`${gw.url}/v1/files`, {
      headers: {
        ...auth,
        cookie: 'owui=session',
        'x-openwebui-user-id': 'user-42',
        'x-openwebui-user-email': 'a@b.c',
        'x-forwarded-for': '203.0.113.9',
        'openai-beta': 'assistants=v2',
      },
    });
    const upstream = forwardedRequest();
    expect(upstream.headers.cookie).toBeUndefined();
    expect(upstream.headers['x-openwebui-user-id']).toBeUndefined();
    expect(upstream.headers['x-openwebui-user-email']).toBeUndefined();
    expect(upstream.headers['x-forwarded-for']).toBeUndefined();
    expect(upstream.headers['openai-beta']).toBe('assistants=v2');
  });

  it("an upstream 4xx about the request itself comes back as the provider's answer", async () => {
    const response = await fetch(`${gw.url}/v1/files/file-does-not-exist`, { headers: auth });
    expect(response.status).toBe(404);
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe('unknown_url');
  });
});

describe("a provider rejecting the gateway's key on a passthrough route", () => {
  it("is not the client's 401 and does not echo the provider's message (which quotes the key)", async () => {
    const rejecting = await startGateway(fake, { GATEWAY_API_KEYS: TEST_CLIENT_KEY });
    try {
      await openaiClient(rejecting).models.list();
      fake.reset();
      for (const key of TEST_OPENAI_KEYS) {
        fake.keyResponses.set(key, {
          status: 401,
          body: {
            error: { message: `Incorrect API key provided: ${key.slice(0, 7)}***${key.slice(-4)}.`, type: 'invalid_request_error', code: 'invalid_api_key' },
          },
        });
      }
      const response = await fetch(`${rejecting.url}/v1/files`, { headers: auth });
      const text = await response.text();
      expect(response.status).not.toBe(401);
      expect(response.status).toBeGreaterThanOrEqual(500);
      expect(response.headers.get('content-type')).toMatch(/^application\/json/);
      const body = JSON.parse(text) as { error: { code: string; type: string } };
      expect(body.error.type).toBe('server_error');
      expect(body.error.code).toMatch(/^provider_key/);
      expect(text).not.toContain('Incorrect API key');
      for (const key of TEST_OPENAI_KEYS) expect(text).not.toContain(key.slice(-4));
      // The request was retried on the other key before answering; both are now rejected.
      expect(body.error.code).toBe('provider_keys_rejected');
      expect(new Set(fake.requests.map((r) => r.key))).toEqual(new Set(TEST_OPENAI_KEYS));
      expect(fake.requests).toHaveLength(2);

      // The next request: 503 provider_keys_rejected at once, nothing sent upstream.
      const next = await fetch(`${rejecting.url}/v1/files`, { headers: auth });
      expect(next.status).toBe(503);
      expect(((await next.json()) as { error: { code: string } }).error.code).toBe('provider_keys_rejected');
      expect(fake.requests).toHaveLength(2);
    } finally {
      await rejecting.close();
    }
  });

  it('through the SDK it is an InternalServerError, not AuthenticationError', async () => {
    const rejecting = await startGateway(fake, { GATEWAY_API_KEYS: TEST_CLIENT_KEY });
    try {
      await openaiClient(rejecting).models.list();
      fake.reset();
      for (const key of TEST_OPENAI_KEYS) fake.keyResponses.set(key, { status: 401 });
      const error = await openaiClient(rejecting)
        .audio.transcriptions.create({ model: 'whisper-1', file: await OpenAI.toFile(tinyWav(), 'a.wav') })
        .catch((e: unknown) => e);
      expect(error).not.toBeInstanceOf(OpenAI.AuthenticationError);
      expect(error).toBeInstanceOf(OpenAI.InternalServerError);
    } finally {
      await rejecting.close();
    }
  });
});

describe('an unreachable provider', () => {
  it('→ 502 upstream_unreachable, OpenAI-shaped', async () => {
    const dead = await startFakeUpstream();
    const deadUrl = dead.openaiBaseUrl;
    await dead.close();
    const lonely = await startGateway(fake, { OPENAI_BASE_URL: deadUrl, GATEWAY_API_KEYS: TEST_CLIENT_KEY, UPSTREAM_MAX_RETRIES: '0' });
    try {
      const response = await fetch(`${lonely.url}/v1/files`, { headers: auth });
      expect(response.status).toBe(502);
      expect(response.headers.get('content-type')).toMatch(/^application\/json/);
      expect(((await response.json()) as { error: { code: string } }).error.code).toBe('upstream_unreachable');
      expect(response.headers.get('x-request-id')).toBeTruthy();
    } finally {
      await lonely.close();
    }
  });
});
