/**
 * No provider refusal body ever reaches a client on the cached routes. The case found: one key
 * answers 429 with a 20 ms cooldown, the other 401 60 ms later with OpenAI's "Incorrect API key
 * provided: <key>" body; by then the first key has cooled down, so no key is left to try (every
 * usable one was tried) and the gateway used to hand the client the provider's 401 body, key
 * included. It now answers its own error, as the passthrough does: 503 provider_key_rejected
 * (retryable: a key is still usable), or its own 429 when the last refusal was a 429.
 * JSON and stream requests, through fetch and through the real openai SDK.
 */
import OpenAI from 'openai';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type RunningGateway } from './helpers/gateway.js';
import { startScriptedProvider, type ScriptedAnswer, type ScriptedProvider } from './helpers/scripted-provider.js';
import { closeCheckedGateway, expectNoKeyMaterial } from './helpers/upstream-e2e.js';

const PROVIDER_KEYS = ['sk-proj-leaktest-first-key-0123456789abcdef', 'sk-proj-leaktest-second-key-fedcba9876543210'];
const ORGANISATION = 'org-LeakTestOrganisation42';

/** OpenAI's 429 for a request budget, with a short hint. */
const rateLimited = (retryAfterMs: string) => (): ScriptedAnswer => ({
  status: 429,
  headers: { 'retry-after-ms': retryAfterMs },
  body: {
    error: {
      message: `Rate limit reached for gpt-4o-mini in organization ${ORGANISATION} on requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 20ms.`,
      type: 'requests',
      param: null,
      code: 'rate_limit_exceeded',
    },
  },
});

/** OpenAI's 401 for a bad key: it quotes the key it was given. */
const rejected =
  (delayMs: number) =>
  (key: string | undefined): ScriptedAnswer => ({
    status: 401,
    delayMs,
    body: {
      error: {
        message: `Incorrect API key provided: ${key}. You can find your API key at https://platform.openai.com/account/api-keys.`,
        type: 'invalid_request_error',
        param: null,
        code: 'invalid_api_key',
      },
    },
  });

let provider: ScriptedProvider;
let gateway: RunningGateway | undefined;

beforeAll(async () => {
  provider = await startScriptedProvider();
});
afterAll(async () => {
  await provider.close();
});
afterEach(async () => {
  if (gateway) await closeCheckedGateway(gateway, PROVIDER_KEYS);
  gateway = undefined;
  provider.calls.length = 0;
  provider.script.length = 0;
});

async function start(): Promise<RunningGateway> {
  gateway = await startGateway(provider, { OPENAI_API_KEYS: PROVIDER_KEYS.join(','), GROQ_API_KEYS: undefined });
  return gateway;
}

/** Nothing the provider said about its keys or its account in what the client received. */
function expectNothingFromTheProvider(text: string): void {
  expectNoKeyMaterial(text, PROVIDER_KEYS);
  expect(text).not.toContain('Incorrect API key');
  expect(text).not.toContain(ORGANISATION);
}

async function chat(gw: RunningGateway, stream: boolean): Promise<{ status: number; headers: string; text: string }> {
  const response = await fetch(`${gw.baseURL}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: `leak check ${stream}` }], ...(stream ? { stream: true } : {}) }),
  });
  return { status: response.status, headers: JSON.stringify([...response.headers]), text: await response.text() };
}

describe.each([false, true])('429 on one key, then a 401 quoting the other (stream: %s)', (stream) => {
  it('answers the gateway’s own retryable 503, never the provider’s 401 body', async () => {
    const gw = await start();
    provider.script.push(rateLimited('20'), rejected(60));
    const answer = await chat(gw, stream);
    // Both keys were asked: the 401's key is disabled, the 429's has cooled down by then.
    expect(provider.calls.map((call) => call.status)).toEqual([429, 401]);
    expect(new Set(provider.calls.map((call) => call.key))).toEqual(new Set(PROVIDER_KEYS));
    expect(answer.status).toBe(503);
    expect(JSON.parse(answer.text)).toEqual({
      error: { message: expect.stringMatching(/rejected the gateway's API key/), type: 'server_error', code: 'provider_key_rejected' },
    });
    expectNothingFromTheProvider(answer.text);
    expectNothingFromTheProvider(answer.headers);
  });

  it('a 429 as the last refusal is the gateway’s own 429 with retry-after, not the provider’s body', async () => {
    const gw = await start();
    // The 401 first, then a 429 whose cooldown is over at once: no key left to try.
    provider.script.push(rejected(0), rateLimited('0'));
    const answer = await chat(gw, stream);
    expect(provider.calls.map((call) => call.status)).toEqual([401, 429]);
    expect(answer.status).toBe(429);
    expect(JSON.parse(answer.text)).toMatchObject({ error: { type: 'rate_limit_error', code: 'rate_limit_exceeded' } });
    expect(answer.headers).toContain('retry-after');
    expectNothingFromTheProvider(answer.text);
    expectNothingFromTheProvider(answer.headers);
  });
});

describe('through the real openai SDK', () => {
  it.each([false, true])('raises an InternalServerError (not AuthenticationError) that quotes no key (stream: %s)', async (stream) => {
    const gw = await start();
    const client = new OpenAI({ apiKey: 'client-key', baseURL: gw.baseURL, maxRetries: 0, timeout: 15_000 });
    provider.script.push(rateLimited('20'), rejected(60));
    const request = { model: 'gpt-4o-mini', messages: [{ role: 'user' as const, content: `sdk leak check ${stream}` }] };
    const error = await (stream ? client.chat.completions.create({ ...request, stream: true }) : client.chat.completions.create(request)).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).not.toBeInstanceOf(OpenAI.AuthenticationError);
    expect(error).toBeInstanceOf(OpenAI.InternalServerError);
    const apiError = error as InstanceType<typeof OpenAI.InternalServerError>;
    expect(apiError.status).toBe(503);
    expect(apiError.code).toBe('provider_key_rejected');
    expectNothingFromTheProvider(`${apiError.message} ${JSON.stringify(apiError.error)} ${JSON.stringify([...(apiError.headers?.entries() ?? [])])}`);
  });

  it('with its default retries the SDK gets the answer from the key that is still usable', async () => {
    const gw = await start();
    const client = new OpenAI({ apiKey: 'client-key', baseURL: gw.baseURL, timeout: 15_000 });
    provider.script.push(rateLimited('20'), rejected(60));
    const completion = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'sdk retries' }] });
    expect(completion.choices[0]?.message.content).toBe('Hello there');
    // The retry went to the key that was only rate limited, never again to the rejected one.
    const [limited, refused, answered] = provider.calls;
    expect(answered?.key).toBe(limited?.key);
    expect(provider.calls.filter((call) => call.key === refused?.key)).toHaveLength(1);
  });
});

describe('the passthrough maps refusals the same way', () => {
  async function moderation(gw: RunningGateway): Promise<{ status: number; headers: string; text: string }> {
    const response = await fetch(`${gw.baseURL}/moderations`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ input: 'passthrough leak check' }),
    });
    return { status: response.status, headers: JSON.stringify([...response.headers]), text: await response.text() };
  }

  it('429 then a 401 quoting the other key: the gateway’s own 503', async () => {
    const gw = await start();
    provider.script.push(rateLimited('20'), rejected(60));
    const answer = await moderation(gw);
    expect(provider.calls.map((call) => call.status)).toEqual([429, 401]);
    expect(answer.status).toBe(503);
    expect(JSON.parse(answer.text)).toMatchObject({ error: { type: 'server_error', code: 'provider_key_rejected' } });
    expectNothingFromTheProvider(answer.text);
  });

  it('a 429 as the last refusal: the gateway’s own 429 with retry-after, not the provider’s body', async () => {
    const gw = await start();
    provider.script.push(rejected(0), rateLimited('0'));
    const answer = await moderation(gw);
    expect(provider.calls.map((call) => call.status)).toEqual([401, 429]);
    expect(answer.status).toBe(429);
    expect(JSON.parse(answer.text)).toMatchObject({ error: { type: 'rate_limit_error', code: 'rate_limit_exceeded' } });
    expect(answer.headers).toContain('retry-after');
    expectNothingFromTheProvider(answer.text);
  });
});
