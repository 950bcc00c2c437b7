/**
 * The Responses API (`POST /v1/responses`, `/openai/v1/responses`) cached like chat completions,
 * through the real openai SDK against the fake provider: a repeat is a HIT with no provider
 * call, a stored stream is replayed byte for byte and parsed by the SDK's own stream reader, a
 * JSON fill answers a stream and a stream fill answers JSON, identical requests in flight are
 * coalesced, the request controls and regeneration apply, tokens are counted from
 * input_tokens/output_tokens; background and conversation requests pass uncached.
 */
import OpenAI from 'openai';
import type { Response as OpenAIResponse, ResponseStreamEvent } from 'openai/resources/responses/responses';
import { describe, expect, it } from 'vitest';
import { BACKENDS, post, unique, until, untilStored, useGateway, type E2eSetup } from './helpers/cache-e2e.js';
import { responsesAnswerFor } from './helpers/fake-responses.js';
import { TEST_CLIENT_KEY, type RunningGateway } from './helpers/gateway.js';
import { scrape } from './helpers/metrics-scrape.js';
import { openaiClient } from './helpers/sdk-clients.js';

const MODEL = 'gpt-4o-mini';

function body(prompt: string, extra: Record<string, unknown> = {}): { model: string; input: string } & Record<string, unknown> {
  return { model: MODEL, input: prompt, ...extra };
}

interface StreamRead {
  events: ResponseStreamEvent[];
  text: string;
  xCache: string | null;
}

/** A stream request through the SDK: its events as the SDK parsed them, and the text of its deltas. */
async function sdkStream(
  client: OpenAI,
  request: { model: string; input: string } & Record<string, unknown>,
  headers: Record<string, string> = {},
): Promise<StreamRead> {
  const { data: stream, response } = await client.responses.create({ ...request, stream: true }, { headers }).withResponse();
  const events: ResponseStreamEvent[] = [];
  let text = '';
  for await (const event of stream) {
    events.push(event);
    if (event.type === 'response.output_text.delta') text += event.delta;
  }
  return { events, text, xCache: response.headers.get('x-cache') };
}

async function sdkJson(
  client: OpenAI,
  request: { model: string; input: string } & Record<string, unknown>,
  headers: Record<string, string> = {},
): Promise<{ response: OpenAIResponse; xCache: string | null; age: string | null }> {
  const { data, response } = await client.responses.create({ ...request, stream: false }, { headers }).withResponse();
  return { response: data, xCache: response.headers.get('x-cache'), age: response.headers.get('age') };
}

/** The raw bytes of a stream answer, as a client receives them. */
async function rawStream(gateway: RunningGateway, request: Record<string, unknown>): Promise<{ text: string; xCache: string | null; type: string | null }> {
  const answer = await post(gateway, '/v1/responses', { ...request, stream: true });
  return { text: answer.text, xCache: answer.xCache, type: answer.headers.get('content-type') };
}

/** The events of an SSE body: each with its `event:` name and parsed data. */
function eventsOf(text: string): Array<{ event: string | undefined; data: Record<string, unknown> }> {
  return text
    .split('\n\n')
    .filter((block) => block.trim() !== '')
    .map((block) => {
      const lines = block.split('\n');
      const event = lines.find((line) => line.startsWith('event: '))?.slice(7);
      const data = lines
        .filter((line) => line.startsWith('data: '))
        .map((line) => line.slice(6))
        .join('\n');
      return { event, data: JSON.parse(data) as Record<string, unknown> };
    });
}

/** A well-formed Responses stream: named, numbered events from response.created to response.completed. */
function expectResponsesStream(text: string): Array<{ event: string | undefined; data: Record<string, unknown> }> {
  expect(text).not.toContain('[DONE]');
  const events = eventsOf(text);
  for (const [index, { event, data }] of events.entries()) {
    expect(event).toBe(data.type);
    expect(data.sequence_number).toBe(index);
  }
  expect(events[0]?.event).toBe('response.created');
  expect(events.at(-1)?.event).toBe('response.completed');
  return events;
}

/** The wire response object, without what the SDK adds of its own (`output_text`, and `parsed` fields from its stream helper). */
function wire(response: OpenAIResponse): Record<string, unknown> {
  const { output_text: _text, output_parsed: _parsed, ...rest } = response as OpenAIResponse & { output_parsed?: unknown };
  return JSON.parse(JSON.stringify(rest, (key, value: unknown) => (key === 'parsed' ? undefined : value))) as Record<string, unknown>;
}

function responsesCalls(setup: E2eSetup): number {
  return setup.fake.requests.filter((r) => r.path.endsWith('/responses')).length;
}

describe.each(BACKENDS)('Responses API cached (%s backend)', (backend) => {
  const setup = useGateway(backend);

  it('JSON: a miss, then a HIT with the same response and no provider call', async () => {
    const client = openaiClient(setup.gateway);
    const request = body(unique('json'));
    const first = await sdkJson(client, request);
    expect(first.xCache).toBe('MISS');
    expect(first.response.object).toBe('response');
    expect(first.response.status).toBe('completed');
    expect(first.response.output_text).toBe(responsesAnswerFor(request));
    const second = await untilStored(async () => {
      const again = await sdkJson(client, request);
      return { status: 200, headers: new Headers(), text: JSON.stringify(again.response), xCache: again.xCache };
    });
    expect(second.xCache).toBe('HIT');
    expect(JSON.parse(second.text)).toEqual(first.response);
    expect(responsesCalls(setup)).toBe(1);
    // What the provider received: the body as the client sent it (no stream_options added).
    const sent = setup.fake.requests.find((r) => r.path === '/v1/responses')?.json;
    expect(sent).toEqual({ ...request, stream: false });
  });

  it('SSE: the stored stream is replayed byte for byte, and the SDK reads the same text from it', async () => {
    const client = openaiClient(setup.gateway);
    const request = body(unique('sse'));
    const miss = await rawStream(setup.gateway, request);
    expect(miss.xCache).toBe('MISS');
    expect(miss.type).toMatch(/^text\/event-stream/);
    const events = expectResponsesStream(miss.text);
    expect(events.map((e) => e.event)).toEqual(
      expect.arrayContaining([
        'response.in_progress',
        'response.output_item.added',
        'response.content_part.added',
        'response.output_text.delta',
        'response.output_text.done',
        'response.content_part.done',
        'response.output_item.done',
      ]),
    );
    await until(async () => (await rawStream(setup.gateway, request)).xCache === 'HIT', 3_000);
    const hit = await rawStream(setup.gateway, request);
    expect(hit.xCache).toBe('HIT');
    expect(hit.text).toBe(miss.text);
    const read = await sdkStream(client, request);
    expect(read.xCache).toBe('HIT');
    expect(read.text).toBe(responsesAnswerFor(request));
    expect(read.events.at(-1)?.type).toBe('response.completed');
    expect(responsesCalls(setup)).toBe(1);
  });

  it('a JSON fill answers a stream request with the response as its events (the SDK accumulates the very response)', async () => {
    const client = openaiClient(setup.gateway);
    const request = body(unique('json-to-sse'));
    const filled = await sdkJson(client, request);
    expect(filled.xCache).toBe('MISS');
    await untilStored(async () => {
      const again = await sdkJson(client, request);
      return { status: 200, headers: new Headers(), text: '', xCache: again.xCache };
    });
    const raw = await rawStream(setup.gateway, request);
    expect(raw.xCache).toBe('HIT');
    const events = expectResponsesStream(raw.text);
    expect(events.filter((e) => e.event === 'response.output_text.delta').length).toBeGreaterThan(1);
    const stream = client.responses.stream(request);
    let text = '';
    stream.on('response.output_text.delta', (event) => {
      text += event.delta;
    });
    const final = await stream.finalResponse();
    expect(text).toBe(filled.response.output_text);
    expect(wire(final)).toEqual(wire(filled.response));
    expect(responsesCalls(setup)).toBe(1);
  });

  it('a stream fill answers a JSON request with the response of its response.completed event', async () => {
    const client = openaiClient(setup.gateway);
    const request = body(unique('sse-to-json'));
    const filled = await sdkStream(client, request);
    expect(filled.xCache).toBe('MISS');
    const completed = filled.events.at(-1);
    if (completed?.type !== 'response.completed') throw new Error('the stream did not complete');
    await until(async () => (await sdkStream(client, request)).xCache === 'HIT', 3_000);
    const json = await sdkJson(client, request);
    expect(json.xCache).toBe('HIT');
    expect(wire(json.response)).toEqual(wire(completed.response));
    expect(json.response.output_text).toBe(filled.text);
    expect(responsesCalls(setup)).toBe(1);
  });

  it('a stream cut off by the provider ends with an error event the SDK raises, and is never stored', async () => {
    const request = body(unique('cut'));
    // Its first events reach the client before the cut (paced, so they are not lost with the socket).
    setup.fake.options.chunkDelayMs = 20;
    setup.fake.cutStreamAfterChunks = 2;
    const cut = await rawStream(setup.gateway, request);
    expect(cut.xCache).toBe('MISS');
    expect(cut.text).toContain('event: response.output_text.delta');
    expect(cut.text).not.toContain('response.completed');
    const last = eventsOf(cut.text).at(-1);
    expect(last?.event).toBe('error');
    expect(last?.data).toMatchObject({ type: 'error', code: expect.any(String), message: expect.any(String) });
    const read = sdkStream(openaiClient(setup.gateway), body(unique('cut-sdk')));
    await expect(read).rejects.toBeInstanceOf(OpenAI.APIError);
    setup.fake.cutStreamAfterChunks = undefined;
    setup.fake.options.chunkDelayMs = 0;
    const next = await rawStream(setup.gateway, request);
    expect(next.xCache).toBe('MISS');
    expectResponsesStream(next.text);
  });
});

describe('Responses API: controls, coalescing, pass-through, Groq layout, metrics (memory backend)', () => {
  const setup = useGateway('memory', { gated: true });

  it('identical requests in flight (streams and JSON) share one provider call and are COALESCED', async () => {
    const gate = setup.gate!;
    const client = openaiClient(setup.gateway);
    const request = body(unique('crowd'));
    gate.hold();
    const leader = sdkJson(client, request);
    expect(await until(() => gate.waiting === 1, 5_000, 10)).toBe(true);
    const joiners = Promise.all(Array.from({ length: 6 }, (_, i) => (i % 2 === 0 ? sdkStream(client, request) : sdkJson(client, request))));
    const coalesced = async (): Promise<number> => (await scrape(setup.gateway.url)).sum('gateway_cache_coalesced_total', { endpoint: 'responses' });
    expect(await until(async () => (await coalesced()) >= 6, 10_000)).toBe(true);
    gate.release();
    const [first, others] = await Promise.all([leader, joiners]);
    expect(first.xCache).toBe('MISS');
    for (const [i, joiner] of others.entries()) {
      expect(joiner.xCache).toBe('COALESCED');
      if (i % 2 === 0) expect((joiner as StreamRead).text).toBe(first.response.output_text);
      else expect((joiner as Awaited<ReturnType<typeof sdkJson>>).response).toEqual(first.response);
    }
    expect(gate.calls.filter((c) => c.path.endsWith('/responses'))).toHaveLength(1);
  });

  it('Cache-Control no-cache goes to the provider and stores the fresh answer; no-store neither reads nor writes', async () => {
    const client = openaiClient(setup.gateway);
    const request = body(unique('controls'));
    expect((await sdkJson(client, request, { 'cache-control': 'no-store' })).xCache).toBe('BYPASS');
    expect((await sdkJson(client, request)).xCache).toBe('MISS');
    await until(async () => (await sdkJson(client, request)).xCache === 'HIT', 3_000);
    expect((await sdkJson(client, request, { 'cache-control': 'no-cache' })).xCache).toBe('BYPASS');
    expect((await sdkJson(client, request, { 'cache-control': 'no-store' })).xCache).toBe('BYPASS');
    expect(responsesCalls(setup)).toBe(4);
    const after = await sdkJson(client, request);
    expect(after.xCache).toBe('HIT');
    expect(responsesCalls(setup)).toBe(4);
  });

  it('max-age refuses an older entry; the same request again from the same Open WebUI chat is a regeneration', async () => {
    const client = openaiClient(setup.gateway);
    const request = body(unique('age'));
    await sdkJson(client, request);
    await until(async () => (await sdkJson(client, request)).xCache === 'HIT', 3_000);
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    expect((await sdkJson(client, request, { 'cache-control': 'max-age=1' })).xCache).toBe('MISS');
    const chat = { 'x-openwebui-chat-id': unique('chat') };
    expect((await sdkJson(client, request, chat)).xCache).toBe('HIT');
    expect((await sdkJson(client, request, chat)).xCache).toBe('BYPASS');
  });

  it('background and conversation requests pass through uncached: every one reaches the provider, as sent', async () => {
    const client = openaiClient(setup.gateway);
    const background = body(unique('background'), { background: true });
    for (let i = 0; i < 2; i++) {
      const answer = await sdkJson(client, background);
      expect(answer.xCache).toBe('BYPASS');
      expect(answer.response.status).toBe('queued');
    }
    const conversation = body(unique('conversation'), { conversation: 'conv_fake123' });
    for (let i = 0; i < 2; i++) {
      const answer = await sdkJson(client, conversation);
      expect(answer.xCache).toBe('BYPASS');
      expect(answer.response.conversation?.id).toBe('conv_fake123');
      const streamed = await sdkStream(client, conversation);
      expect(streamed.xCache).toBe('BYPASS');
      expect(streamed.text).toBe(responsesAnswerFor(conversation));
    }
    // A background stream runs to its end upstream, relayed as it comes, and is not kept either.
    for (let i = 0; i < 2; i++) {
      const streamed = await sdkStream(client, background);
      expect(streamed.xCache).toBe('BYPASS');
      expect(streamed.events.at(-1)?.type).toBe('response.completed');
    }
    const calls = setup.fake.requests.filter((r) => r.path === '/v1/responses');
    expect(calls).toHaveLength(8);
    expect(calls[0]?.json).toEqual({ ...background, stream: false });
    expect(calls[2]?.json).toEqual({ ...conversation, stream: false });
  });

  it('previous_response_id is cached like any other field (a stored response never changes)', async () => {
    const client = openaiClient(setup.gateway);
    const request = body(unique('follow-up'), { previous_response_id: 'resp_fake_earlier' });
    expect((await sdkJson(client, request)).xCache).toBe('MISS');
    expect(await until(async () => (await sdkJson(client, request)).xCache === 'HIT', 3_000)).toBe(true);
    expect(responsesCalls(setup)).toBe(1);
  });

  it("Groq's layout: /openai/v1/responses goes to Groq and is cached the same way", async () => {
    const client = new OpenAI({ apiKey: TEST_CLIENT_KEY, baseURL: `${setup.gateway.url}/openai/v1`, maxRetries: 0, timeout: 15_000 });
    const request = { model: 'llama-3.1-8b-instant', input: unique('groq') };
    const { data: first, response } = await client.responses.create(request).withResponse();
    expect(response.headers.get('x-cache')).toBe('MISS');
    expect(response.headers.get('x-gateway-provider')).toBe('groq');
    expect(first.output_text).toBe(responsesAnswerFor(request));
    expect(await until(async () => (await client.responses.create(request).withResponse()).response.headers.get('x-cache') === 'HIT', 3_000)).toBe(true);
    const read = await sdkStream(client, request);
    expect(read.xCache).toBe('HIT');
    expect(read.text).toBe(first.output_text);
    const calls = setup.fake.requests.filter((r) => r.path.endsWith('/responses'));
    expect(calls.map((r) => [r.path, r.flavour])).toEqual([['/openai/v1/responses', 'groq']]);
  });

  it('tokens: input_tokens and output_tokens count as prompt and completion, paid on a miss and saved on a hit; endpoint="responses"', async () => {
    const client = openaiClient(setup.gateway);
    const request = body(unique('tokens'));
    const before = await scrape(setup.gateway.url);
    const miss = await sdkJson(client, request);
    const usage = miss.response.usage!;
    expect(await until(async () => (await sdkStream(client, request)).xCache === 'HIT', 3_000)).toBe(true);
    const after = await scrape(setup.gateway.url);
    const moved = (labels: Record<string, string>): number =>
      after.sum('gateway_tokens_total', { provider: 'openai', model: MODEL, ...labels }) -
      before.sum('gateway_tokens_total', { provider: 'openai', model: MODEL, ...labels });
    expect(moved({ type: 'prompt', cache: 'miss' })).toBe(usage.input_tokens);
    expect(moved({ type: 'completion', cache: 'miss' })).toBe(usage.output_tokens);
    expect(moved({ type: 'prompt', cache: 'hit' })).toBe(usage.input_tokens);
    expect(moved({ type: 'completion', cache: 'hit' })).toBe(usage.output_tokens);
    const costMoved = (name: string): number => after.sum(name, { provider: 'openai', model: MODEL }) - before.sum(name, { provider: 'openai', model: MODEL });
    expect(costMoved('gateway_cost_usd_total')).toBeGreaterThan(0);
    expect(costMoved('gateway_cost_saved_usd_total')).toBeCloseTo(costMoved('gateway_cost_usd_total'), 12);
    const requests = (cache: string): number =>
      after.sum('gateway_requests_total', { endpoint: 'responses', cache }) - before.sum('gateway_requests_total', { endpoint: 'responses', cache });
    expect(requests('MISS')).toBe(1);
    expect(requests('HIT')).toBeGreaterThanOrEqual(1);
    expect(after.sum('gateway_cache_hits_total', { endpoint: 'responses' })).toBeGreaterThan(before.sum('gateway_cache_hits_total', { endpoint: 'responses' }));
  });

  it('a request without model or input is refused with an OpenAI-shaped 400, before any provider call', async () => {
    for (const bad of [{ model: MODEL }, { input: 'hello' }, { model: MODEL, input: null }]) {
      const answer = await post(setup.gateway, '/v1/responses', bad);
      expect(answer.status).toBe(400);
      expect(answer.headers.get('content-type')).toMatch(/^application\/json/);
      const error = (JSON.parse(answer.text) as { error: { message: string; type: string; code: string } }).error;
      expect(error.type).toBe('invalid_request_error');
      expect(error.message).toMatch(/model|input/);
    }
    expect(responsesCalls(setup)).toBe(0);
  });
});
