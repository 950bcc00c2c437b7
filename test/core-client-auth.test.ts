/**
 * Client auth with GATEWAY_API_KEYS: a missing or wrong key gets 401 invalid_api_key on every
 * gateway route (cached, passthrough, models, both path layouts) before anything reaches the
 * upstream; the health routes stay open; the client's key never travels upstream.
 */
import OpenAI from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { tinyWav } from './helpers/audio.js';
import { startFakeUpstream, type FakeUpstream } from './helpers/fake-upstream.js';
import { startGateway, TEST_CLIENT_KEY, TEST_GROQ_KEYS, TEST_OPENAI_KEYS, type RunningGateway } from './helpers/gateway.js';
import { groqClient, openaiClient } from './helpers/sdk-clients.js';

const SECOND_CLIENT_KEY = 'gw-second-client-key-4444444444';
const WRONG_KEY = 'gw-wrong-key-5555555555';

let fake: FakeUpstream;
let gw: RunningGateway;

beforeAll(async () => {
  fake = await startFakeUpstream();
  gw = await startGateway(fake, { GATEWAY_API_KEYS: `${TEST_CLIENT_KEY},${SECOND_CLIENT_KEY}` });
});
beforeEach(() => fake.reset());
afterAll(async () => {
  await gw.close();
  await fake.close();
});

/** What reached the upstream apart from the model-list fetches the gateway makes on its own. */
const forwarded = () => fake.requests.filter((r) => !r.path.endsWith('/models'));

const chatBody = (content: string) => JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content }] });

async function expectInvalidApiKey(response: Response): Promise<void> {
  expect(response.status).toBe(401);
  expect(response.headers.get('content-type')).toMatch(/^application\/json/);
  const body = (await response.json()) as { error: { type: string; code: string; message: string } };
  expect(body.error.code).toBe('invalid_api_key');
  expect(body.error.type).toBe('invalid_request_error');
  expect(typeof body.error.message).toBe('string');
}

const protectedRequests: Array<[string, string, RequestInit]> = [
  ['chat', '/v1/chat/completions', { method: 'POST', headers: { 'content-type': 'application/json' }, body: chatBody('auth') }],
  ['chat, Groq layout', '/openai/v1/chat/completions', { method: 'POST', headers: { 'content-type': 'application/json' }, body: chatBody('auth') }],
  [
    'completions',
    '/v1/completions',
    { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'gpt-3.5-turbo-instruct', prompt: 'p' }) },
  ],
  [
    'embeddings',
    '/v1/embeddings',
    { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'text-embedding-3-small', input: 'p' }) },
  ],
  ['models', '/v1/models', { method: 'GET' }],
  ['passthrough GET', '/v1/files', { method: 'GET' }],
  ['passthrough POST', '/v1/moderations', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ input: 'x' }) }],
  ['malformed JSON (auth comes first)', '/v1/chat/completions', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{oops' }],
];

describe('missing or wrong client key', () => {
  it.each(protectedRequests)('%s: missing key → 401 invalid_api_key, nothing sent upstream', async (_name, path, init) => {
    await expectInvalidApiKey(await fetch(gw.url + path, init));
    expect(forwarded()).toHaveLength(0);
  });

  it.each(protectedRequests)('%s: wrong key → 401 invalid_api_key, nothing sent upstream', async (_name, path, init) => {
    await expectInvalidApiKey(
      await fetch(gw.url + path, { ...init, headers: { ...(init.headers as Record<string, string>), authorization: `Bearer ${WRONG_KEY}` } }),
    );
    expect(forwarded()).toHaveLength(0);
  });

  it.each([
    ['not a bearer scheme', `Basic ${Buffer.from(`user:${TEST_CLIENT_KEY}`).toString('base64')}`],
    ['empty bearer', 'Bearer '],
    ['the right key as a prefix', `Bearer ${TEST_CLIENT_KEY}x`],
    ['a prefix of the right key', `Bearer ${TEST_CLIENT_KEY.slice(0, -1)}`],
    ['a provider key', `Bearer ${TEST_OPENAI_KEYS[0]}`],
  ])('%s → 401', async (_name, authorization) => {
    await expectInvalidApiKey(await fetch(`${gw.url}/v1/models`, { headers: { authorization } }));
  });

  it('the openai SDK raises AuthenticationError for a wrong key; groq-sdk too', async () => {
    const openaiError = await openaiClient(gw, WRONG_KEY)
      .chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] })
      .catch((e: unknown) => e);
    expect(openaiError).toBeInstanceOf(OpenAI.AuthenticationError);
    expect((openaiError as InstanceType<typeof OpenAI.AuthenticationError>).code).toBe('invalid_api_key');
    const groqError = await groqClient(gw, WRONG_KEY)
      .models.list()
      .catch((e: unknown) => e);
    expect((groqError as { status?: number }).status).toBe(401);
  });
});

describe('the right client key', () => {
  it('every configured key is accepted', async () => {
    for (const key of [TEST_CLIENT_KEY, SECOND_CLIENT_KEY]) {
      const response = await fetch(`${gw.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
        body: chatBody(`right key ${key}`),
      });
      expect(response.status).toBe(200);
    }
  });

  it('the upstream only ever sees provider keys, never the client key', async () => {
    const client = openaiClient(gw);
    await client.models.list();
    await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'keys json' }] });
    for await (const chunk of await client.chat.completions.create({
      model: 'llama-3.1-8b-instant',
      messages: [{ role: 'user', content: 'keys stream' }],
      stream: true,
    }))
      void chunk;
    await client.embeddings.create({ model: 'text-embedding-3-small', input: 'keys embed' });
    await client.audio.transcriptions.create({ model: 'whisper-1', file: await OpenAI.toFile(tinyWav(), 'a.wav', { type: 'audio/wav' }) });
    await groqClient(gw).audio.transcriptions.create({ model: 'whisper-large-v3', file: await OpenAI.toFile(tinyWav(), 'b.wav', { type: 'audio/wav' }) });
    await fetch(`${gw.url}/v1/files`, { headers: { authorization: `Bearer ${TEST_CLIENT_KEY}`, cookie: `session=${TEST_CLIENT_KEY}` } });

    expect(fake.requests.length).toBeGreaterThanOrEqual(6);
    for (const request of fake.requests) {
      const allowed = request.flavour === 'groq' ? TEST_GROQ_KEYS : TEST_OPENAI_KEYS;
      expect(allowed).toContain(request.key);
      const everything = JSON.stringify(request.headers) + request.raw.toString('latin1');
      expect(everything).not.toContain(TEST_CLIENT_KEY);
    }
  });
});

describe('open routes', () => {
  it('/healthz and /readyz answer without a key', async () => {
    const health = await fetch(`${gw.url}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok' });
    expect((await fetch(`${gw.url}/readyz`)).status).toBe(200);
  });

  it('/metrics follows METRICS_TOKEN, not GATEWAY_API_KEYS', async () => {
    expect((await fetch(`${gw.url}/metrics`)).status).toBe(200);
    const guarded = await startGateway(fake, { GATEWAY_API_KEYS: TEST_CLIENT_KEY, METRICS_TOKEN: 'metrics-token-6666' });
    try {
      const noToken = await fetch(`${guarded.url}/metrics`, { headers: { authorization: `Bearer ${TEST_CLIENT_KEY}` } });
      expect(noToken.status).toBe(401);
      const withToken = await fetch(`${guarded.url}/metrics`, { headers: { authorization: 'Bearer metrics-token-6666' } });
      expect(withToken.status).toBe(200);
      expect(await withToken.text()).toContain('gateway_requests_total');
    } finally {
      await guarded.close();
    }
  });
});

describe('without GATEWAY_API_KEYS (loopback only)', () => {
  it('no key is needed, and a key the client sends is not forwarded', async () => {
    const open = await startGateway(fake);
    try {
      const response = await fetch(`${open.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: 'Bearer sk-whatever-the-client-has-7777' },
        body: chatBody('open gateway'),
      });
      expect(response.status).toBe(200);
      const [call] = fake.completionCalls();
      expect(TEST_OPENAI_KEYS).toContain(call?.key);
    } finally {
      await open.close();
    }
  });
});
