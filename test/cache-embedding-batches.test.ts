/**
 * Embeddings cached per input, through the real gateway and the real openai SDK, on both
 * backends: of a batch, the cached inputs come from the cache and only the others go upstream in
 * one call; the answer keeps the request's order and shape (float or base64, `dimensions`);
 * X-Cache is HIT / MISS / PARTIAL with X-Cache-Hits; `usage` is what was billed; the tokens
 * spent and saved agree with what the provider billed; a re-embedded document that changed in
 * one chunk costs that chunk only, batch after batch, as Open WebUI sends them.
 */
import { describe, expect, it } from 'vitest';
import { BACKENDS, post, unique, until, useGateway, type E2eSetup, type GatewayResponse } from './helpers/cache-e2e.js';
import type { RecordedRequest } from './helpers/fake-upstream.js';
import { scrape, type Scrape } from './helpers/metrics-scrape.js';
import { openaiClient } from './helpers/sdk-clients.js';

const MODEL = 'text-embedding-3-small';
type Input = string | number[];

interface EmbeddingsAnswer {
  object: string;
  data: Array<{ object: string; index: number; embedding: number[] | string }>;
  model: string;
  usage: { prompt_tokens: number; total_tokens: number };
}

function embeddingCalls(setup: E2eSetup): RecordedRequest[] {
  return setup.fake.requests.filter((r) => r.path === '/v1/embeddings');
}

/** What the fake provider answers for each input alone (asked directly, not through the gateway). */
async function referenceVectors(setup: E2eSetup, inputs: Input[], extra: Record<string, unknown> = {}): Promise<Array<number[] | string>> {
  const before = setup.fake.requests.length;
  const vectors: Array<number[] | string> = [];
  for (const input of inputs) {
    const response = await fetch(`${setup.fake.openaiBaseUrl}/embeddings`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer sk-fake-reference' },
      body: JSON.stringify({ model: MODEL, input, ...extra }),
    });
    vectors.push(((await response.json()) as EmbeddingsAnswer).data[0]!.embedding);
  }
  setup.fake.requests.splice(before);
  return vectors;
}

async function embed(setup: E2eSetup, input: unknown, extra: Record<string, unknown> = {}, headers: Record<string, string> = {}) {
  const response = await post(setup.gateway, '/v1/embeddings', { model: MODEL, input, ...extra }, headers);
  return { ...response, json: JSON.parse(response.text) as EmbeddingsAnswer };
}

/** Repeats a request until its answer shows every input cached (the store is written after the answer). */
async function untilAllCached(send: () => Promise<GatewayResponse>): Promise<void> {
  expect(await until(async () => (await send()).xCache === 'HIT', 3_000)).toBe(true);
}

function tokens(scraped: Scrape, cache: 'hit' | 'miss'): number {
  return scraped.sum('gateway_tokens_total', { provider: 'openai', model: MODEL, type: 'prompt', cache });
}

describe.each(BACKENDS)('embeddings cached per input (%s)', (backend) => {
  const setup = useGateway(backend, { env: { LOG_LEVEL: 'info' } });

  it('every mix of cached and new inputs: one upstream call with only the new ones, the answer in the request order', async () => {
    const [a, b, c, d] = [unique('a'), unique('b'), unique('c'), unique('d')];
    const reference = await referenceVectors(setup, [a, b, c, d]);

    const none = await embed(setup, [a, b]);
    expect(none.xCache).toBe('MISS');
    expect(none.headers.get('x-cache-hits')).toBe('0/2');
    expect(embeddingCalls(setup).map((r) => r.json?.input)).toEqual([[a, b]]);
    // A miss of the whole batch is the provider's answer as it sent it.
    expect(none.json.data.map((item) => item.embedding)).toEqual([reference[0], reference[1]]);
    expect(none.json.usage).toEqual({ prompt_tokens: 6, total_tokens: 6 });

    await untilAllCached(() => embed(setup, [a, b]));
    const callsBefore = embeddingCalls(setup).length;
    const all = await embed(setup, [b, a]);
    expect(all.xCache).toBe('HIT');
    expect(all.headers.get('x-cache-hits')).toBe('2/2');
    expect(Number(all.headers.get('age'))).toBeGreaterThanOrEqual(0);
    expect(embeddingCalls(setup)).toHaveLength(callsBefore);
    expect(all.json.data).toEqual([
      { object: 'embedding', index: 0, embedding: reference[1] },
      { object: 'embedding', index: 1, embedding: reference[0] },
    ]);
    // Nothing was billed for it.
    expect(all.json.usage).toEqual({ prompt_tokens: 0, total_tokens: 0 });
    expect(all.json.model).toBe(MODEL);

    const some = await embed(setup, [c, a, d, b]);
    expect(some.xCache).toBe('PARTIAL');
    expect(some.headers.get('x-cache-hits')).toBe('2/4');
    expect(embeddingCalls(setup).at(-1)?.json).toEqual({ model: MODEL, input: [c, d] });
    expect(embeddingCalls(setup)).toHaveLength(callsBefore + 1);
    expect(some.json.data.map((item) => [item.index, item.embedding])).toEqual([
      [0, reference[2]],
      [1, reference[0]],
      [2, reference[3]],
      [3, reference[1]],
    ]);
    expect(some.json.usage).toEqual({ prompt_tokens: 6, total_tokens: 6 });
    expect(some.headers.get('x-gateway-provider')).toBe('openai');

    // Each fresh vector was stored under its own key: the text alone is an ordinary hit.
    let single: Awaited<ReturnType<typeof embed>> | undefined;
    await until(async () => {
      single = await embed(setup, d);
      return single.xCache === 'HIT';
    }, 3_000);
    expect(single?.json.data).toEqual([{ object: 'embedding', index: 0, embedding: reference[3] }]);
    expect(embeddingCalls(setup)).toHaveLength(callsBefore + 1);
  });

  it('a text embedded alone answers it inside a later batch; a text repeated in a batch is paid once', async () => {
    const [lone, other] = [unique('lone'), unique('other')];
    const reference = await referenceVectors(setup, [lone, other]);
    expect((await embed(setup, lone)).xCache).toBe('MISS');
    await untilAllCached(() => embed(setup, [lone]));
    const calls = embeddingCalls(setup).length;

    const batch = await embed(setup, [other, lone, other]);
    expect(batch.xCache).toBe('PARTIAL');
    expect(batch.headers.get('x-cache-hits')).toBe('1/3');
    expect(
      embeddingCalls(setup)
        .slice(calls)
        .map((r) => r.json?.input),
    ).toEqual([[other]]);
    expect(batch.json.data.map((item) => item.embedding)).toEqual([reference[1], reference[0], reference[1]]);
    expect(batch.json.data.map((item) => item.index)).toEqual([0, 1, 2]);
    expect(batch.json.usage.prompt_tokens).toBe(3);
  });

  it('token arrays, base64 and dimensions: each a part of the key, the answer in the form asked', async () => {
    const [x, y] = [
      [11, 22, Math.floor(Math.random() * 1e6)],
      [33, 44, Math.floor(Math.random() * 1e6)],
    ];
    const asBase64 = { encoding_format: 'base64', dimensions: 8 };
    const reference = await referenceVectors(setup, [x, y], asBase64);
    expect(typeof reference[0]).toBe('string');
    expect((await embed(setup, [x], asBase64)).xCache).toBe('MISS');
    await untilAllCached(() => embed(setup, [x], asBase64));
    const calls = embeddingCalls(setup).length;

    const mixed = await embed(setup, [y, x], asBase64);
    expect(mixed.xCache).toBe('PARTIAL');
    expect(
      embeddingCalls(setup)
        .slice(calls)
        .map((r) => r.json),
    ).toEqual([{ model: MODEL, input: [y], ...asBase64 }]);
    expect(mixed.json.data.map((item) => item.embedding)).toEqual([reference[1], reference[0]]);

    // Another encoding or size is another answer: nothing of the above serves it.
    expect((await embed(setup, [x, y], { dimensions: 8 })).headers.get('x-cache-hits')).toBe('0/2');
    expect((await embed(setup, [x, y], { encoding_format: 'base64', dimensions: 4 })).headers.get('x-cache-hits')).toBe('0/2');
  });

  it('through the openai SDK (base64 asked by default, decoded by the SDK) and as floats', async () => {
    const client = openaiClient(setup.gateway);
    const [p, q, r] = [unique('p'), unique('q'), unique('r')];
    const floats = (await referenceVectors(setup, [p, q, r])) as number[][];
    const first = await client.embeddings.create({ model: MODEL, input: [p, q] });
    expect(first.data.map((item) => item.embedding)).toEqual([floats[0]!.map(Math.fround), floats[1]!.map(Math.fround)]);
    await untilAllCached(() => embed(setup, [p, q], { encoding_format: 'base64' }));
    const calls = embeddingCalls(setup).length;

    const { data, response } = await client.embeddings.create({ model: MODEL, input: [q, r, p] }).withResponse();
    expect(response.headers.get('x-cache')).toBe('PARTIAL');
    expect(data.data.map((item) => item.embedding)).toEqual([floats[1]!.map(Math.fround), floats[2]!.map(Math.fround), floats[0]!.map(Math.fround)]);
    expect(data.data.map((item) => item.index)).toEqual([0, 1, 2]);
    expect(
      embeddingCalls(setup)
        .slice(calls)
        .map((call) => call.json?.input),
    ).toEqual([[r]]);

    const asFloats = await client.embeddings.create({ model: MODEL, input: [p, r], encoding_format: 'float' });
    expect(asFloats.data.map((item) => item.embedding)).toEqual([floats[0], floats[2]]);
  });

  it('no-cache, no-store and max-age apply to every input', async () => {
    const [m, n] = [unique('m'), unique('n')];
    expect((await embed(setup, [m], {}, { 'cache-control': 'no-store' })).xCache).toBe('BYPASS');
    // no-store stored nothing: the next lookup finds nothing.
    const afterNoStore = await embed(setup, [m, n]);
    expect(afterNoStore.xCache).toBe('MISS');
    await untilAllCached(() => embed(setup, [m, n]));
    const calls = embeddingCalls(setup).length;

    const refreshed = await embed(setup, [n, m], {}, { 'cache-control': 'no-cache' });
    expect(refreshed.xCache).toBe('BYPASS');
    expect(refreshed.headers.get('x-cache-hits')).toBeNull();
    expect(
      embeddingCalls(setup)
        .slice(calls)
        .map((r) => r.json?.input),
    ).toEqual([[n, m]]);

    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const tooOld = await embed(setup, [m, n], {}, { 'cache-control': 'max-age=1' });
    expect(tooOld.xCache).toBe('MISS');
    expect(tooOld.headers.get('x-cache-hits')).toBe('0/2');
    expect((await embed(setup, [m, n], {}, { 'cache-control': 'max-age=60' })).xCache).toBe('HIT');
  });

  it('an error of the call for the new inputs reaches the client as the provider sent it', async () => {
    const [cached, fresh] = [unique('cached'), unique('fresh')];
    await embed(setup, [cached]);
    await untilAllCached(() => embed(setup, [cached]));
    setup.fake.queue.push({
      status: 400,
      body: { error: { message: 'This input is too long', type: 'invalid_request_error', code: 'context_length_exceeded' } },
    });
    const failed = await embed(setup, [cached, fresh]);
    expect(failed.status).toBe(400);
    expect(failed.json).toMatchObject({ error: { message: 'This input is too long', code: 'context_length_exceeded' } });
    // Nothing of the failed call was stored.
    expect((await embed(setup, [fresh])).xCache).toBe('MISS');
  });

  it('an answer for the new inputs that cannot be split among them is a 502, and nothing of it is stored', async () => {
    const [cached, fresh] = [unique('kept'), unique('odd')];
    await embed(setup, [cached]);
    await untilAllCached(() => embed(setup, [cached]));
    const twoVectors = [0, 1].map((index) => ({ object: 'embedding', index, embedding: [0.5, index] }));
    setup.fake.queue.push({ status: 200, body: { object: 'list', data: twoVectors, model: MODEL, usage: { prompt_tokens: 3, total_tokens: 3 } } });
    const odd = await embed(setup, [cached, fresh]);
    expect(odd.status).toBe(502);
    expect(odd.json).toMatchObject({ error: { code: 'upstream_bad_response' } });
    expect((await embed(setup, [fresh])).xCache).toBe('MISS');
  });

  it('metrics and the log line say PARTIAL; tokens spent are what was billed, tokens saved what the cache spared', async () => {
    const [s1, s2, s3] = [unique('s1'), unique('s2'), unique('s3')];
    const start = await scrape(setup.gateway.url);
    const callsAtStart = embeddingCalls(setup).length;
    expect((await embed(setup, [s1, s2])).json.usage.prompt_tokens).toBe(6);
    await untilAllCached(() => embed(setup, [s1, s2], { user: 'ignored by the key' }));
    const afterFill = await scrape(setup.gateway.url);
    // Spent: exactly what the provider billed (3 per input, helpers/fake-upstream.ts), however
    // many repeats reached it before the entries could be read.
    const billed = embeddingCalls(setup)
      .slice(callsAtStart)
      .reduce((sum, call) => sum + ((call.json?.input as string[] | undefined)?.length ?? 0) * 3, 0);
    expect(tokens(afterFill, 'miss') - tokens(start, 'miss')).toBe(billed);

    const requestId = `partial-${backend}-${Date.now()}`;
    const partial = await post(setup.gateway, '/v1/embeddings', { model: MODEL, input: [s3, s1, s2] }, { 'x-request-id': requestId });
    expect(partial.xCache).toBe('PARTIAL');
    const end = await scrape(setup.gateway.url);
    expect(tokens(end, 'miss') - tokens(afterFill, 'miss')).toBe(3);
    // s1 and s2 were billed 6 together, proportionally to their (equal) lengths: 3 each.
    expect(tokens(end, 'hit') - tokens(afterFill, 'hit')).toBe(6);
    const partialRequests = (s: Scrape) => s.sum('gateway_requests_total', { endpoint: 'embeddings', cache: 'PARTIAL', status: '200' });
    expect(partialRequests(end) - partialRequests(afterFill)).toBe(1);
    expect(end.select('gateway_request_duration_seconds_count', { endpoint: 'embeddings', cache: 'PARTIAL' })).toHaveLength(1);
    // Present from start-up, as every label the endpoint can take.
    expect(start.select('gateway_request_duration_seconds_count', { endpoint: 'embeddings', cache: 'PARTIAL' })).toHaveLength(1);
    await until(() => setup.gateway.logs.some((line) => line.includes(requestId)), 2_000);
    const line = JSON.parse(setup.gateway.logs.find((text) => text.includes(requestId))!) as Record<string, unknown>;
    expect(line).toMatchObject({ msg: 'request', cache: 'PARTIAL', status: 200, route: '/v1/embeddings' });
  });

  it("a document re-embedded in Open WebUI's batches after an edit costs only the changed chunk", async () => {
    const doc = unique('doc');
    // Ten chunks of equal length, embedded in batches of four (RAG_EMBEDDING_BATCH_SIZE=4).
    const chunks = Array.from({ length: 10 }, (_, i) => `${doc} chunk ${String(i).padStart(2, '0')} of the handbook`);
    const batches = (all: string[]) => [all.slice(0, 4), all.slice(4, 8), all.slice(8)];
    for (const batch of batches(chunks)) expect((await embed(setup, batch)).xCache).toBe('MISS');
    await until(async () => (await embed(setup, chunks.slice(8))).xCache === 'HIT', 3_000);
    const afterFirst = await scrape(setup.gateway.url);
    const calls = embeddingCalls(setup).length;

    const edited = [...chunks];
    edited[5] = `${doc} chunk 05 of the HANDBOOK`;
    const outcomes: string[] = [];
    for (const batch of batches(edited)) {
      const answer = await embed(setup, batch);
      expect(answer.status).toBe(200);
      expect(answer.json.data).toHaveLength(batch.length);
      outcomes.push(`${answer.xCache} ${answer.headers.get('x-cache-hits')}`);
    }
    expect(outcomes).toEqual(['HIT 4/4', 'PARTIAL 3/4', 'HIT 2/2']);
    expect(
      embeddingCalls(setup)
        .slice(calls)
        .map((r) => r.json?.input),
    ).toEqual([[edited[5]]]);
    const end = await scrape(setup.gateway.url);
    expect(tokens(end, 'miss') - tokens(afterFirst, 'miss')).toBe(3);
    expect(tokens(end, 'hit') - tokens(afterFirst, 'hit')).toBe(27);
  });
});

describe('an embeddings batch while Redis is down', () => {
  const setup = useGateway('redis', { env: { REDIS_COMMAND_TIMEOUT_MS: '1000' } });

  it('is served from upstream in one call (BYPASS), and its inputs are cached again once Redis is back', async () => {
    const redis = setup.redis;
    if (!redis) throw new Error('the Redis backend was not started');
    const [u, v] = [unique('u'), unique('v')];
    redis.kill();
    const down = await embed(setup, [u, v]);
    expect(down.status).toBe(200);
    expect(down.xCache).toBe('BYPASS');
    expect(down.headers.get('x-cache-hits')).toBeNull();
    expect(down.json.data).toHaveLength(2);
    expect(embeddingCalls(setup).map((r) => r.json?.input)).toEqual([[u, v]]);

    await redis.restart();
    // Once the gateway has reconnected the cache answers again: a MISS, or already a HIT when a
    // request bypassed on a read that failed just before and its write went through just after.
    const seen: Array<string | null> = [];
    const answering = await until(async () => {
      seen.push((await embed(setup, [u, v])).xCache);
      return seen.at(-1) === 'MISS' || seen.at(-1) === 'HIT';
    }, 15_000);
    expect(answering, `X-Cache seen: ${seen.join(' ')}`).toBe(true);
    await untilAllCached(() => embed(setup, [v, u]));
  });
});
