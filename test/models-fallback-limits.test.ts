/**
 * Where fallbacks stop: never for the provider's answer to a bad request (400, an unknown model,
 * a content policy refusal), never once a stream's first event left; a chain goes on to the next
 * model when a fallback fails too, and when every model failed the client gets the last error in
 * OpenAI's shape. A fallback's answer is cached under the fallback's request only (it never
 * answers the model asked for), and clients coalesced on the flight get the same answer and
 * headers.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { answerFor, type CannedResponse } from './helpers/fake-upstream.js';
import { setUpFakeUpstream } from './helpers/fake-upstream-fixture.js';
import { startGateway, TEST_OPENAI_KEYS, type RunningGateway } from './helpers/gateway.js';
import { scrape, waitForModelLists } from './helpers/metrics-scrape.js';
import { writeModelsFile } from './helpers/models-file.js';
import { openaiClient, readChatStream } from './helpers/sdk-clients.js';
import { deadPort, type SilentServer, startSilentServer } from './helpers/silent-server.js';
import { chat, uniqueContent } from './helpers/upstream-e2e.js';

const fixture = setUpFakeUpstream();
let silent: SilentServer;
beforeAll(async () => {
  silent = await startSilentServer();
});
afterAll(async () => {
  await silent?.close();
});

const FALLBACKS = {
  fallbacks: {
    'gpt-4o-mini': ['groq/llama-3.3-70b-versatile', 'groq/llama-3.1-8b-instant'],
    '*': ['groq/llama-3.3-70b-versatile'],
  },
};

async function gateway(env: Record<string, string> = {}, models: unknown = FALLBACKS, lists = ['openai', 'groq']): Promise<RunningGateway> {
  const file = await writeModelsFile(models);
  const gw = fixture.closeAfterTest(
    await startGateway(
      fixture.fake,
      { MODELS_FILE: file.path, UPSTREAM_MAX_RETRIES: '0', ...env },
      { breaker: { failureThreshold: 1_000, openMs: 1_000, maxOpenMs: 1_000 } },
    ),
  );
  await waitForModelLists(gw.url, lists);
  return gw;
}

async function fallbackCount(gw: RunningGateway): Promise<number> {
  return (await scrape(gw.url)).sum('gateway_fallbacks_total');
}

function groqCalls(): number {
  return fixture.fake.completionCalls().filter((call) => call.flavour === 'groq').length;
}

const CLIENT_ERRORS: Array<{ name: string; model: string; canned?: CannedResponse; status: number; code: string | null }> = [
  {
    name: 'a 400 for a bad parameter',
    model: 'gpt-4o-mini',
    canned: { status: 400, body: { error: { message: "Invalid value for 'temperature'", type: 'invalid_request_error', param: 'temperature', code: null } } },
    status: 400,
    code: null,
  },
  {
    name: 'a content policy refusal',
    model: 'gpt-4o-mini',
    canned: {
      status: 400,
      body: {
        error: { message: 'Your request was rejected as a result of our safety system.', type: 'invalid_request_error', code: 'content_policy_violation' },
      },
    },
    status: 400,
    code: 'content_policy_violation',
  },
  // Routed to OpenAI by its prefix; the fake, like OpenAI, answers 404 model_not_found.
  { name: 'a 404 for a model the provider does not have', model: 'gpt-imaginary-1', status: 404, code: 'model_not_found' },
];

describe('no fallback for a client error', () => {
  it.each(CLIENT_ERRORS)('$name (JSON and stream): the provider’s error, as it sent it', async ({ model, canned, status, code }) => {
    const gw = await gateway();
    for (const stream of [false, true]) {
      if (canned) fixture.fake.queue.push(canned);
      const answer = await chat(gw.url, { model, stream });
      expect(answer.status).toBe(status);
      expect((answer.json?.error as { code?: unknown } | undefined)?.code).toBe(code);
      expect(answer.headers.get('x-gateway-fallback')).toBeNull();
      expect(answer.headers.get('x-gateway-provider')).toBe('openai');
    }
    expect(groqCalls()).toBe(0);
    expect(await fallbackCount(gw)).toBe(0);
  });
});

describe('no fallback for embeddings', () => {
  it('answers the provider’s error: another model’s vectors would not match the ones already stored', async () => {
    const gw = await gateway({}, { fallbacks: { '*': ['groq/llama-3.3-70b-versatile'] } });
    for (const key of TEST_OPENAI_KEYS) fixture.fake.keyResponses.set(key, { status: 500 });
    // A single input (one flight) and a batch (cached input by input).
    for (const input of ['one', ['one', 'two']]) {
      const failure = await openaiClient(gw)
        .embeddings.create({ model: 'text-embedding-3-small', input })
        .then(
          () => undefined,
          (error: unknown) => error as { status?: number },
        );
      expect(failure?.status).toBe(500);
    }
    expect(groqCalls()).toBe(0);
    expect(await fallbackCount(gw)).toBe(0);
  });
});

describe('no fallback once a stream has started', () => {
  it('a stream cut after its first events ends in an error the SDK raises, not in another model’s answer', async () => {
    const gw = await gateway();
    // Paced, so the first events surely reached the client before the cut.
    fixture.fake.options.chunkDelayMs = 30;
    fixture.fake.cutStreamAfterChunks = 2;
    const { data, response } = await openaiClient(gw)
      .chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: uniqueContent('cut') }], stream: true })
      .withResponse();
    const read = await readChatStream(data);
    expect(read.failure).toBeDefined();
    expect(read.text.length).toBeGreaterThan(0);
    expect(response.headers.get('x-gateway-fallback')).toBeNull();
    expect(response.headers.get('x-gateway-model')).toBe('gpt-4o-mini');
    expect(groqCalls()).toBe(0);
    expect(await fallbackCount(gw)).toBe(0);
  });
});

describe('a chain of fallbacks', () => {
  it('goes on to the second fallback when the first fails too', async () => {
    const gw = await gateway();
    // The model asked for, then the first fallback: each a 500 (no retries here).
    fixture.fake.queue.push({ status: 500 }, { status: 500 });
    const answer = await chat(gw.url, { model: 'gpt-4o-mini' });
    expect(answer.status).toBe(200);
    expect(answer.json?.model).toBe('llama-3.1-8b-instant');
    expect(answer.headers.get('x-gateway-fallback')).toBe('gpt-4o-mini');
    expect(answer.headers.get('x-gateway-model')).toBe('llama-3.1-8b-instant');
    expect(fixture.fake.completionCalls().map((call) => `${call.flavour}:${String(call.json?.model)}`)).toEqual([
      'openai:gpt-4o-mini',
      'groq:llama-3.3-70b-versatile',
      'groq:llama-3.1-8b-instant',
    ]);
    const metrics = await scrape(gw.url);
    expect(metrics.sum('gateway_fallbacks_total', { provider: 'openai', to_provider: 'groq' })).toBe(1);
    expect(metrics.sum('gateway_fallbacks_total', { provider: 'groq', to_provider: 'groq' })).toBe(1);
    const lines = gw.logs.map((line) => JSON.parse(line) as Record<string, unknown>).filter((line) => line.to_model !== undefined);
    expect(lines.map((line) => [line.model, line.to_model, line.reason])).toEqual([
      ['gpt-4o-mini', 'groq/llama-3.3-70b-versatile', 'status 500'],
      ['groq/llama-3.3-70b-versatile', 'groq/llama-3.1-8b-instant', 'status 500'],
    ]);
  });

  it('answers the last error, in OpenAI’s shape, when every model failed', async () => {
    const gw = await gateway({}, { fallbacks: { 'gpt-4o-mini': ['groq/llama-3.3-70b-versatile'] } });
    fixture.fake.queue.push(
      { status: 500, body: { error: { message: 'openai is down', type: 'server_error', code: null } } },
      { status: 503, body: { error: { message: 'groq is over capacity', type: 'server_error', code: 'overloaded' } } },
    );
    const failure = await openaiClient(gw)
      .chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: uniqueContent('both') }] })
      .then(
        () => undefined,
        (error: unknown) => error as { status?: number; error?: { message?: string; code?: string }; headers?: Headers },
      );
    expect(failure?.status).toBe(503);
    expect(failure?.error).toMatchObject({ message: 'groq is over capacity', code: 'overloaded' });
    expect(failure?.headers?.get('x-gateway-fallback')).toBe('gpt-4o-mini');
    expect(failure?.headers?.get('x-gateway-provider')).toBe('groq');
    expect((await scrape(gw.url)).sum('gateway_fallbacks_total', { provider: 'openai', to_provider: 'groq' })).toBe(1);
  });

  it('answers the gateway’s own error for the last provider when none can be reached', async () => {
    const port = await deadPort();
    const gw = await gateway(
      { OPENAI_BASE_URL: `http://127.0.0.1:${port}/v1`, GROQ_BASE_URL: `http://127.0.0.1:${port}/openai/v1` },
      { fallbacks: { 'gpt-4o-mini': ['groq/llama-3.3-70b-versatile'] } },
      [],
    );
    for (const stream of [false, true]) {
      const answer = await chat(gw.url, { model: 'gpt-4o-mini', stream });
      expect(answer.status).toBe(502);
      expect(answer.json).toEqual({ error: { message: 'Could not reach provider groq.', type: 'server_error', code: 'upstream_unreachable' } });
    }
    expect((await scrape(gw.url)).sum('gateway_fallbacks_total', { provider: 'openai', to_provider: 'groq' })).toBe(2);
  });
});

describe('a fallback’s answer and the cache', () => {
  it('is stored under the fallback’s request: it answers that request, never the model asked for', async () => {
    const gw = await gateway();
    for (const key of TEST_OPENAI_KEYS) fixture.fake.keyResponses.set(key, { status: 500 });
    const content = uniqueContent('cache');
    const fallback = await chat(gw.url, { model: 'gpt-4o-mini', content });
    expect([fallback.status, fallback.headers.get('x-gateway-fallback'), fallback.headers.get('x-cache')]).toEqual([200, 'gpt-4o-mini', 'MISS']);

    // The same request again, OpenAI still down: not a hit of the fallback's answer, a new fallback.
    const again = await chat(gw.url, { model: 'gpt-4o-mini', content });
    expect([again.status, again.headers.get('x-gateway-fallback'), again.headers.get('x-cache')]).toEqual([200, 'gpt-4o-mini', 'MISS']);

    // The fallback's own request, asked directly: answered from the cache.
    const direct = await chat(gw.url, { model: 'llama-3.3-70b-versatile', content });
    expect([direct.status, direct.headers.get('x-cache'), direct.headers.get('x-gateway-fallback')]).toEqual([200, 'HIT', null]);
    expect(direct.json?.model).toBe('llama-3.3-70b-versatile');

    // OpenAI back: the model asked for answers itself, from upstream.
    fixture.fake.keyResponses.clear();
    const recovered = await chat(gw.url, { model: 'gpt-4o-mini', content });
    expect([recovered.status, recovered.headers.get('x-cache'), recovered.headers.get('x-gateway-fallback')]).toEqual([200, 'MISS', null]);
    expect(recovered.json?.model).toBe('gpt-4o-mini');
    expect(recovered.headers.get('x-gateway-model')).toBe('gpt-4o-mini');
    expect(recovered.text).toContain(answerFor({ messages: [{ content }] }));
  });

  it('reaches every client coalesced on the flight, with the same headers', async () => {
    const gw = await gateway({ OPENAI_BASE_URL: `${silent.url}/v1`, UPSTREAM_HEADERS_TIMEOUT_MS: '300' }, FALLBACKS, ['groq']);
    const content = uniqueContent('coalesced');
    const answers = await Promise.all([false, false, true, true].map((stream) => chat(gw.url, { model: 'gpt-4o-mini', content, stream })));
    for (const answer of answers) {
      expect(answer.status).toBe(200);
      expect(answer.headers.get('x-gateway-fallback')).toBe('gpt-4o-mini');
      expect(answer.headers.get('x-gateway-model')).toBe('llama-3.3-70b-versatile');
      expect(answer.headers.get('x-gateway-provider')).toBe('groq');
      expect(answer.text).toContain('llama-3.3-70b-versatile');
    }
    expect(answers.map((answer) => answer.headers.get('x-cache')).sort()).toEqual(['COALESCED', 'COALESCED', 'COALESCED', 'MISS']);
    expect(groqCalls()).toBe(1);
    expect((await scrape(gw.url)).sum('gateway_fallbacks_total', { provider: 'openai', to_provider: 'groq' })).toBe(1);
  });
});
