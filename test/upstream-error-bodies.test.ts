/**
 * A provider's error answer reaches the client in OpenAI's shape on every route: its own body
 * when it is an OpenAI error (it says what is wrong with the request), else the gateway's own
 * error with the same status (a load balancer's HTML page, an empty 500, another JSON shape),
 * never bytes the SDKs cannot read labelled as JSON. Cached routes (JSON and stream requests,
 * the real openai SDK) and the passthrough (plain and gzip-compressed bodies).
 */
import { gzipSync } from 'node:zlib';
import OpenAI from 'openai';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type RunningGateway } from './helpers/gateway.js';
import { startScriptedProvider, type ScriptedAnswer, type ScriptedProvider } from './helpers/scripted-provider.js';

const HTML = '<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>';
const OPENAI_ERROR = {
  error: {
    message: "This model's maximum context length is 128000 tokens.",
    type: 'invalid_request_error',
    param: 'messages',
    code: 'context_length_exceeded',
  },
};

const NOT_OPENAI_SHAPED: ReadonlyArray<[string, ScriptedAnswer]> = [
  ['an HTML 502', { status: 502, headers: { 'content-type': 'text/html' }, body: Buffer.from(HTML) }],
  ['an empty 500', { status: 500, body: Buffer.alloc(0) }],
  ['a 503 {"detail":…}', { status: 503, body: { detail: 'overloaded' } }],
  ['an HTML 404', { status: 404, headers: { 'content-type': 'text/html' }, body: Buffer.from('<h1>Not Found</h1>') }],
];

let provider: ScriptedProvider;
let gateway: RunningGateway;
beforeAll(async () => {
  provider = await startScriptedProvider();
  gateway = await startGateway(provider, { OPENAI_API_KEYS: 'sk-error-bodies-key-0123456789', GROQ_API_KEYS: undefined, UPSTREAM_MAX_RETRIES: '0' });
});
afterAll(async () => {
  await gateway?.close();
  await provider?.close();
});
afterEach(() => {
  provider.script.length = 0;
});

let sequence = 0;
async function post(
  path: string,
  body: Record<string, unknown>,
  headers: Record<string, string> = {},
): Promise<{ status: number; type: string | null; text: string }> {
  const response = await fetch(`${gateway.baseURL}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  return { status: response.status, type: response.headers.get('content-type'), text: await response.text() };
}
const chatBody = (stream: boolean) => ({
  model: 'gpt-4o-mini',
  messages: [{ role: 'user', content: `error body ${++sequence}` }],
  ...(stream ? { stream: true } : {}),
});

function expectGatewayError(answer: { status: number; type: string | null; text: string }, status: number): void {
  expect(answer.status).toBe(status);
  expect(answer.type).toMatch(/^application\/json/);
  expect(JSON.parse(answer.text)).toEqual({
    error: { message: expect.stringContaining(`answered ${status}`), type: status >= 500 ? 'server_error' : 'invalid_request_error', code: 'upstream_error' },
  });
}

describe('cached routes', () => {
  for (const [name, answer] of NOT_OPENAI_SHAPED) {
    it.each([false, true])(`${name} becomes the gateway's own error with the same status (stream: %s)`, async (stream) => {
      provider.script.push(() => answer);
      expectGatewayError(await post('/chat/completions', chatBody(stream)), answer.status);
    });
  }

  it('an OpenAI-shaped error is passed on unchanged, and the SDK reads its message', async () => {
    provider.script.push(() => ({ status: 400, body: OPENAI_ERROR }));
    const answer = await post('/chat/completions', chatBody(false));
    expect(answer.status).toBe(400);
    expect(JSON.parse(answer.text)).toEqual(OPENAI_ERROR);

    provider.script.push(() => ({ status: 400, body: OPENAI_ERROR }));
    const sdk = new OpenAI({ baseURL: gateway.baseURL, apiKey: 'unused', maxRetries: 0 });
    const error = await sdk.chat.completions.create(chatBody(false) as never).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    expect((error as InstanceType<typeof OpenAI.BadRequestError>).code).toBe('context_length_exceeded');
  });

  it('the SDK gets a readable message for an HTML 502, not the page', async () => {
    provider.script.push(() => NOT_OPENAI_SHAPED[0]![1]);
    const sdk = new OpenAI({ baseURL: gateway.baseURL, apiKey: 'unused', maxRetries: 0 });
    const error = (await sdk.chat.completions.create(chatBody(false) as never).catch((e: unknown) => e)) as InstanceType<typeof OpenAI.APIError>;
    expect(error).toBeInstanceOf(OpenAI.InternalServerError);
    expect(error.code).toBe('upstream_error');
    expect(error.message).not.toContain('<html>');
  });
});

describe('passthrough', () => {
  const imageRequest = () => ({ model: 'dall-e-3', prompt: `a cat ${++sequence}` });

  for (const [name, answer] of NOT_OPENAI_SHAPED) {
    it(`${name} becomes the gateway's own error with the same status`, async () => {
      provider.script.push(() => answer);
      expectGatewayError(await post('/images/generations', imageRequest()), answer.status);
    });
  }

  it('an OpenAI-shaped error is passed on, also when the provider compressed it', async () => {
    provider.script.push(() => ({ status: 400, body: OPENAI_ERROR }));
    const plain = await post('/images/generations', imageRequest());
    expect([plain.status, plain.type]).toEqual([400, 'application/json']);
    expect(JSON.parse(plain.text)).toEqual(OPENAI_ERROR);

    provider.script.push(() => ({ status: 400, headers: { 'content-encoding': 'gzip' }, body: gzipSync(JSON.stringify(OPENAI_ERROR)) }));
    const compressed = await post('/images/generations', imageRequest(), { 'accept-encoding': 'gzip' });
    expect(compressed.status).toBe(400);
    expect(JSON.parse(compressed.text)).toEqual(OPENAI_ERROR);
  });
});
