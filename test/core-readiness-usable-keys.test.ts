/**
 * /readyz counts usable provider keys, not loaded ones: when the provider has rejected (401/403)
 * every key of the only provider that has keys, the gateway cannot answer anything until the
 * keys are reloaded, so it is not ready, and the 503 says which provider and why. Cooling keys
 * (429) recover by themselves: still ready. Another provider with a usable key: ready.
 */
import { describe, expect, it } from 'vitest';
import { TEST_GROQ_KEYS, TEST_OPENAI_KEYS, type RunningGateway } from './helpers/gateway.js';
import { chat, setUpGatewayE2e } from './helpers/upstream-e2e.js';

const e2e = setUpGatewayE2e();

interface Readiness {
  status: number;
  body: { status?: string; missing?: string[]; error?: { message: string; type: string; code: string } };
}

async function readiness(gw: RunningGateway): Promise<Readiness> {
  const response = await fetch(`${gw.url}/readyz`);
  expect(response.headers.get('content-type')).toMatch(/^application\/json/);
  return { status: response.status, body: (await response.json()) as Readiness['body'] };
}

const rejectedAnswer = { status: 401, body: { error: { message: 'Incorrect API key provided.', type: 'invalid_request_error', code: 'invalid_api_key' } } };

describe('/readyz and the state of the provider keys', () => {
  it('every key of the only provider rejected: 503 naming the provider and the rejection; /healthz still 200', async () => {
    const gw = await e2e.startWarmGateway({ GROQ_API_KEYS: '' });
    expect((await readiness(gw)).status).toBe(200);
    for (const key of TEST_OPENAI_KEYS) e2e.fake.keyResponses.set(key, rejectedAnswer);
    expect((await chat(gw.url)).status).toBe(503);
    const state = await readiness(gw);
    expect(state.status).toBe(503);
    expect(state.body.status).toBe('unavailable');
    const said = state.body.missing?.join(' ') ?? '';
    expect(said).toMatch(/usable key/);
    expect(said).toMatch(/openai: every key \(2\) rejected by the provider \(401\/403\)/);
    expect(said).toMatch(/groq: no key loaded/);
    expect(said).not.toMatch(/redis|cache/i);
    expect(state.body.error).toEqual({ message: expect.stringMatching(/rejected/), type: 'server_error', code: 'not_ready' });
    expect((await fetch(`${gw.url}/healthz`)).status).toBe(200);
  });

  it('every key cooling after a 429: still ready (a cooldown ends by itself)', async () => {
    const gw = await e2e.startWarmGateway({ GROQ_API_KEYS: '' });
    for (const key of TEST_OPENAI_KEYS) e2e.fake.keyResponses.set(key, { status: 429, headers: { 'retry-after': '60' } });
    expect((await chat(gw.url)).status).toBe(429);
    expect((await readiness(gw)).status).toBe(200);
  });

  it('one key rejected, the other still active: ready', async () => {
    const gw = await e2e.startWarmGateway({ GROQ_API_KEYS: '' });
    e2e.fake.keyResponses.set(TEST_OPENAI_KEYS[0]!, rejectedAnswer);
    for (let i = 0; i < 2; i++) expect((await chat(gw.url)).status).toBe(200);
    expect(e2e.fake.completionCalls().some((call) => call.key === TEST_OPENAI_KEYS[0])).toBe(true);
    expect((await readiness(gw)).status).toBe(200);
  });

  it('every OpenAI key rejected while Groq has a usable key: ready', async () => {
    const gw = await e2e.startWarmGateway({ GROQ_API_KEYS: TEST_GROQ_KEYS.join(',') });
    for (const key of TEST_OPENAI_KEYS) e2e.fake.keyResponses.set(key, rejectedAnswer);
    expect((await chat(gw.url)).status).toBe(503);
    expect((await readiness(gw)).status).toBe(200);
  });
});
