/**
 * Fallbacks (MODELS_FILE `fallbacks`): each way a provider can fail to answer sends the same
 * request to the next model of its list on the other provider, in both directions, JSON and
 * stream, through the real SDKs. The answer is the fallback's, and says so: X-Gateway-Fallback
 * names the model asked for, X-Gateway-Model and X-Gateway-Provider the one that answered;
 * gateway_fallbacks_total counts it and the log line names both models.
 */
import type { AddressInfo } from 'node:net';
import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { answerFor, type CannedResponse, type FakeUpstream, type Flavour, startFakeUpstream } from './helpers/fake-upstream.js';
import { setUpFakeUpstream } from './helpers/fake-upstream-fixture.js';
import { startGateway, TEST_GROQ_KEYS, TEST_OPENAI_KEYS, type RunningGateway } from './helpers/gateway.js';
import { scrape, waitForModelLists } from './helpers/metrics-scrape.js';
import { writeModelsFile } from './helpers/models-file.js';
import { startGatewayProcess } from './helpers/gateway-process.js';
import { fakeUpstreamEnv } from './helpers/gateway.js';
import { groqClient, openaiClient, readChatStream } from './helpers/sdk-clients.js';

const fixture = setUpFakeUpstream();
/** Answers every request only after 5 s: its headers never come within the gateway's timeout. */
let slow: FakeUpstream;
/** A loopback port nothing listens on. */
let deadPort: number;

beforeAll(async () => {
  slow = await startFakeUpstream({ latencyMs: 5_000 });
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  deadPort = (probe.address() as AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
});
afterAll(async () => {
  await slow?.close();
});

interface Direction {
  from: Flavour;
  to: Flavour;
  asked: string;
  /** What the fallback is asked for upstream (the forced prefix stripped). */
  answeredBy: string;
  sdk: 'openai' | 'groq-sdk';
}

const DIRECTIONS: Direction[] = [
  { from: 'openai', to: 'groq', asked: 'gpt-4o-mini', answeredBy: 'llama-3.3-70b-versatile', sdk: 'openai' },
  { from: 'groq', to: 'openai', asked: 'llama-3.1-8b-instant', answeredBy: 'gpt-4o-mini', sdk: 'groq-sdk' },
];

const MODELS = { fallbacks: { 'gpt-4o-mini': ['groq/llama-3.3-70b-versatile'], 'llama-3.1-8b-instant': ['openai/gpt-4o-mini'] } };

function keysOf(flavour: Flavour): string[] {
  return flavour === 'openai' ? TEST_OPENAI_KEYS : TEST_GROQ_KEYS;
}

function baseOf(flavour: Flavour, url: string): Record<string, string> {
  return flavour === 'openai' ? { OPENAI_BASE_URL: `${url}/v1` } : { GROQ_BASE_URL: `${url}/openai/v1` };
}

/** Every key of the failing provider gets this answer (model lists included, so set after they were fetched). */
function everyKeyAnswers(flavour: Flavour, canned: CannedResponse): void {
  for (const key of keysOf(flavour)) fixture.fake.keyResponses.set(key, canned);
}

interface Trigger {
  name: string;
  /** Environment that makes the provider fail (its base URL elsewhere). */
  env?: (failing: Flavour) => Record<string, string>;
  /** Applied once the gateway has its model lists. */
  arm?: (failing: Flavour) => void;
}

const TRIGGERS: Trigger[] = [
  { name: 'connection refused', env: (failing) => baseOf(failing, `http://127.0.0.1:${deadPort}`) },
  { name: 'response headers timeout', env: (failing) => ({ ...baseOf(failing, slow.url), UPSTREAM_HEADERS_TIMEOUT_MS: '300' }) },
  { name: '500 after the retries', arm: (failing) => everyKeyAnswers(failing, { status: 500 }) },
  {
    name: 'every key 429',
    arm: (failing) =>
      everyKeyAnswers(failing, {
        status: 429,
        headers: { 'retry-after': '30' },
        body: { error: { message: 'Rate limit reached', type: 'requests', code: 'rate_limit_exceeded' } },
      }),
  },
  {
    name: 'every key 401',
    arm: (failing) =>
      everyKeyAnswers(failing, {
        status: 401,
        body: { error: { message: 'Incorrect API key provided', type: 'invalid_request_error', code: 'invalid_api_key' } },
      }),
  },
];

async function gatewayFor(trigger: Trigger, direction: Direction): Promise<RunningGateway> {
  const models = await writeModelsFile(MODELS);
  const gateway = fixture.closeAfterTest(
    await startGateway(
      fixture.fake,
      { MODELS_FILE: models.path, UPSTREAM_MAX_RETRIES: '1', ...trigger.env?.(direction.from) },
      // The breaker is another test's subject: here every request meets the failure itself.
      { breaker: { failureThreshold: 1_000, openMs: 1_000, maxOpenMs: 1_000 } },
    ),
  );
  await waitForModelLists(gateway.url, trigger.env ? [direction.to] : ['openai', 'groq']);
  trigger.arm?.(direction.from);
  return gateway;
}

async function ask(
  gateway: RunningGateway,
  direction: Direction,
  content: string,
  stream: boolean,
): Promise<{ text: string; failure: unknown; headers: Headers; model: string }> {
  const messages = [{ role: 'user' as const, content }];
  if (direction.sdk === 'openai') {
    const client = openaiClient(gateway);
    if (stream) {
      const { data, response } = await client.chat.completions.create({ model: direction.asked, messages, stream: true }).withResponse();
      let model = '';
      const read = await readChatStream({
        async *[Symbol.asyncIterator]() {
          for await (const chunk of data) {
            model ||= chunk.model;
            yield chunk;
          }
        },
      });
      return { ...read, headers: response.headers, model };
    }
    const { data, response } = await client.chat.completions.create({ model: direction.asked, messages }).withResponse();
    return { text: data.choices[0]?.message.content ?? '', failure: undefined, headers: response.headers, model: data.model };
  }
  const client = groqClient(gateway);
  if (stream) {
    const { data, response } = await client.chat.completions.create({ model: direction.asked, messages, stream: true }).withResponse();
    let model = '';
    const read = await readChatStream({
      async *[Symbol.asyncIterator]() {
        for await (const chunk of data) {
          model ||= chunk.model;
          yield chunk;
        }
      },
    });
    return { ...read, headers: response.headers, model };
  }
  const { data, response } = await client.chat.completions.create({ model: direction.asked, messages }).withResponse();
  return { text: data.choices[0]?.message.content ?? '', failure: undefined, headers: response.headers, model: data.model };
}

describe.each(DIRECTIONS)('$from → $to', (direction) => {
  it.each(TRIGGERS)('falls back on $name, JSON and stream', async (trigger) => {
    const gateway = await gatewayFor(trigger, direction);
    for (const stream of [false, true]) {
      const content = `fallback on ${trigger.name} (${stream ? 'stream' : 'JSON'})`;
      const answer = await ask(gateway, direction, content, stream);
      expect(answer.failure).toBeUndefined();
      expect(answer.text).toBe(answerFor({ messages: [{ content }] }));
      expect(answer.model).toBe(direction.answeredBy);
      expect(answer.headers.get('x-gateway-fallback')).toBe(direction.asked);
      expect(answer.headers.get('x-gateway-model')).toBe(direction.answeredBy);
      expect(answer.headers.get('x-gateway-provider')).toBe(direction.to);
      expect(answer.headers.get('x-cache')).toBe('MISS');
      // The fallback was really asked, for its own model.
      const calls = fixture.fake.completionCalls().filter((call) => call.flavour === direction.to && JSON.stringify(call.json).includes(content));
      expect(calls.map((call) => call.json?.model)).toEqual([direction.answeredBy]);
    }
    const metrics = await scrape(gateway.url);
    expect(metrics.sum('gateway_fallbacks_total', { provider: direction.from, to_provider: direction.to })).toBe(2);
    expect(metrics.sum('gateway_fallbacks_total', { provider: direction.to, to_provider: direction.from })).toBe(0);
    const lines = gateway.logs.map((line) => JSON.parse(line) as Record<string, unknown>).filter((line) => line.to_model !== undefined);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatchObject({
      provider: direction.from,
      model: direction.asked,
      to_provider: direction.to,
      to_model: `${direction.to}/${direction.answeredBy}`,
    });
  });
});

describe('beyond chat completions', () => {
  it('falls back on /v1/responses (JSON and stream) too', async () => {
    const gateway = await gatewayFor(TRIGGERS[2]!, DIRECTIONS[0]!);
    const client = openaiClient(gateway);
    const { data, response } = await client.responses.create({ model: 'gpt-4o-mini', input: 'responses fallback' }).withResponse();
    expect(data.model).toBe('llama-3.3-70b-versatile');
    expect(data.output_text).toBe(answerFor({ messages: [{ content: 'responses fallback' }] }));
    expect([response.headers.get('x-gateway-fallback'), response.headers.get('x-gateway-model')]).toEqual(['gpt-4o-mini', 'llama-3.3-70b-versatile']);
    const { data: stream, response: streamed } = await client.responses
      .create({ model: 'gpt-4o-mini', input: 'responses fallback stream', stream: true })
      .withResponse();
    let text = '';
    for await (const event of stream) if (event.type === 'response.output_text.delta') text += event.delta;
    expect(text).toBe(answerFor({ messages: [{ content: 'responses fallback stream' }] }));
    expect(streamed.headers.get('x-gateway-fallback')).toBe('gpt-4o-mini');
  });
});

describe('the real process', () => {
  it('answers a request for an OpenAI model through the openai SDK from Groq while OpenAI is down', async () => {
    const models = await writeModelsFile(MODELS);
    const gateway = await startGatewayProcess({
      ...fakeUpstreamEnv(fixture.fake),
      OPENAI_BASE_URL: `http://127.0.0.1:${deadPort}/v1`,
      MODELS_FILE: models.path,
    });
    try {
      const { data, response } = await openaiClient({ baseURL: `${gateway.url}/v1` })
        .chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'is anyone there?' }] })
        .withResponse();
      expect(data.choices[0]?.message.content).toBe(answerFor({ messages: [{ content: 'is anyone there?' }] }));
      expect(data.model).toBe('llama-3.3-70b-versatile');
      expect(response.headers.get('x-gateway-fallback')).toBe('gpt-4o-mini');
      expect(response.headers.get('x-gateway-model')).toBe('llama-3.3-70b-versatile');
      expect(response.headers.get('x-gateway-provider')).toBe('groq');
      expect(gateway.logs().find((line) => line.msg === 'provider could not answer; falling back to another model')).toMatchObject({
        provider: 'openai',
        model: 'gpt-4o-mini',
        to_provider: 'groq',
        to_model: 'groq/llama-3.3-70b-versatile',
        reason: 'upstream_unreachable',
      });
    } finally {
      gateway.kill();
    }
  });
});
