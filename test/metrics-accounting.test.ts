/**
 * /metrics against the truth: a scripted mix of hits, misses, coalesced requests, bypasses,
 * errors and streams on both providers, then one scrape checked counter by counter against
 * what the fake upstream saw and what each client received. Tokens and money must equal the
 * sums computed from the fake upstream's usage and the price table.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BUILTIN_PRICES } from '../src/pricing/builtin-prices.js';
import { responsesAnswerFor } from './helpers/fake-responses.js';
import { answerFor, startFakeUpstream, type FakeUpstream, type Flavour } from './helpers/fake-upstream.js';
import { startGateway, type RunningGateway } from './helpers/gateway.js';
import { scrape, waitForModelLists, type Scrape } from './helpers/metrics-scrape.js';
import { readSse, type TimedEvent } from './helpers/sse-reader.js';

type Endpoint = 'chat.completions' | 'completions' | 'embeddings' | 'responses';
const PATHS: Record<Endpoint, string> = {
  'chat.completions': '/chat/completions',
  completions: '/completions',
  embeddings: '/embeddings',
  responses: '/responses',
};
const ENDPOINTS = Object.keys(PATHS) as Endpoint[];

interface Usage {
  prompt: number;
  completion: number;
}

/** One answer as the client received it, with the usage the fake upstream billed for it. */
interface Received {
  endpoint: Endpoint;
  provider: Flavour | 'none';
  model: string;
  cache: string;
  status: number;
  usage: Usage | undefined;
  events: TimedEvent[] | undefined;
  json: Record<string, unknown> | undefined;
}

/** The usage the fake upstream reports for a request body (see helpers/fake-upstream.ts). */
function fakeUsage(endpoint: Endpoint, body: Record<string, unknown>): Usage {
  if (endpoint === 'embeddings') return { prompt: (Array.isArray(body.input) ? body.input.length : 1) * 3, completion: 0 };
  if (endpoint === 'responses') return { prompt: 11, completion: Math.max(1, responsesAnswerFor(body).split(/\s+/).filter(Boolean).length) };
  return { prompt: 11, completion: Math.max(1, answerFor(body).split(/\s+/).filter(Boolean).length) };
}

function costOf(provider: string, model: string, usage: Usage): number {
  const price = BUILTIN_PRICES[provider as Flavour]?.[model];
  if (!price) throw new Error(`test uses an unpriced model ${provider}/${model}`);
  return (usage.prompt * price.input + usage.completion * price.output) / 1e6;
}

let fake: FakeUpstream;
let gw: RunningGateway;
const received: Received[] = [];

async function send(
  endpoint: Endpoint,
  body: Record<string, unknown>,
  options: { headers?: Record<string, string>; signal?: AbortSignal; onEvent?: (event: TimedEvent) => void } = {},
): Promise<Received> {
  const response = await fetch(`${gw.baseURL}${PATHS[endpoint]}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...options.headers },
    body: JSON.stringify(body),
    ...(options.signal ? { signal: options.signal } : {}),
  });
  const streamed = response.headers.get('content-type')?.includes('text/event-stream') === true;
  const events = streamed ? await readSse(response, options.onEvent) : undefined;
  const json = streamed ? undefined : ((await response.json()) as Record<string, unknown>);
  const answer: Received = {
    endpoint,
    provider: (response.headers.get('x-gateway-provider') as Flavour | null) ?? 'none',
    model: String(body.model),
    cache: response.headers.get('x-cache') ?? 'BYPASS',
    status: response.status,
    usage: response.status === 200 ? fakeUsage(endpoint, body) : undefined,
    events,
    json,
  };
  received.push(answer);
  return answer;
}

const chat = (model: string, content: string, extra: Record<string, unknown> = {}) => ({ model, messages: [{ role: 'user', content }], ...extra });
const withUsage = { stream: true, stream_options: { include_usage: true } };

/** Chunks of a stream that are the usage-only chunk (`choices: []` with `usage`). */
function usageChunks(events: TimedEvent[] | undefined): Array<{ usage: { prompt_tokens: number; completion_tokens: number } }> {
  return (events ?? [])
    .filter((e) => e.data !== '[DONE]')
    .map((e) => JSON.parse(e.data) as { choices: unknown[]; usage?: { prompt_tokens: number; completion_tokens: number } })
    .filter((chunk) => chunk.choices.length === 0 && chunk.usage !== undefined) as Array<{ usage: { prompt_tokens: number; completion_tokens: number } }>;
}

async function until(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

beforeAll(async () => {
  fake = await startFakeUpstream({ chunks: 5 });
  gw = await startGateway(fake, { UPSTREAM_MAX_RETRIES: '0' });
  await waitForModelLists(gw.url);
});
afterEach(() => {
  fake.options.latencyMs = 0;
  fake.options.chunkDelayMs = 0;
});
afterAll(async () => {
  await gw.close();
  await fake.close();
});

describe('a scripted mix, then one scrape', () => {
  let before: Scrape;
  let after: Scrape;

  it('runs the mix; clients get what they asked for (usage chunk only when asked, upstream always asked)', async () => {
    before = await scrape(gw.url);
    const upstreamBefore = fake.completionCalls().length;

    // OpenAI chat, JSON: miss then hit.
    expect((await send('chat.completions', chat('gpt-4o-mini', 'alpha'))).cache).toBe('MISS');
    expect((await send('chat.completions', chat('gpt-4o-mini', 'alpha'))).cache).toBe('HIT');

    // A stream that did not ask for usage: the upstream is asked anyway, the client never sees it.
    const beta = await send('chat.completions', chat('gpt-4o-mini', 'beta', { stream: true }));
    expect(beta.cache).toBe('MISS');
    const betaCall = fake.completionCalls().at(-1);
    expect(betaCall?.json?.stream_options).toEqual({ include_usage: true });
    expect(usageChunks(beta.events)).toEqual([]);
    expect(beta.events?.at(-1)?.data).toBe('[DONE]');
    // The same stream asking for usage, from the cache: gets exactly the upstream's usage.
    const betaHit = await send('chat.completions', chat('gpt-4o-mini', 'beta', withUsage));
    expect(betaHit.cache).toBe('HIT');
    expect(usageChunks(betaHit.events).map((c) => c.usage)).toEqual([
      expect.objectContaining({ prompt_tokens: betaHit.usage?.prompt, completion_tokens: betaHit.usage?.completion }),
    ]);
    // A live stream that asked: one usage chunk, the upstream's own.
    const gamma = await send('chat.completions', chat('gpt-4o-mini', 'gamma', withUsage));
    expect(gamma.cache).toBe('MISS');
    expect(fake.completionCalls().at(-1)?.json?.stream_options).toEqual({ include_usage: true });
    expect(usageChunks(gamma.events).map((c) => c.usage.completion_tokens)).toEqual([gamma.usage?.completion]);

    // Coalescing: one upstream call answers a stream without usage, a stream with usage and a JSON request.
    fake.options.latencyMs = 200;
    const calls = fake.completionCalls().length;
    const first = send('chat.completions', chat('gpt-4o-mini', 'delta', { stream: true }));
    await until(() => fake.completionCalls().length === calls + 1, 'the first delta request upstream');
    const joined = [send('chat.completions', chat('gpt-4o-mini', 'delta', withUsage)), send('chat.completions', chat('gpt-4o-mini', 'delta'))];
    const [leader, streamFollower, jsonFollower] = await Promise.all([first, ...joined]);
    expect([leader?.cache, streamFollower?.cache, jsonFollower?.cache]).toEqual(['MISS', 'COALESCED', 'COALESCED']);
    expect(fake.completionCalls().length).toBe(calls + 1);
    expect(fake.completionCalls().at(-1)?.json?.stream_options).toEqual({ include_usage: true });
    expect(usageChunks(leader?.events)).toEqual([]);
    expect(usageChunks(streamFollower?.events)).toHaveLength(1);
    expect((jsonFollower?.json?.usage as { completion_tokens?: number } | undefined)?.completion_tokens).toBe(jsonFollower?.usage?.completion);
    fake.options.latencyMs = 0;

    // Groq: JSON miss then hit; a stream (Groq reports usage in x_groq of its last chunk).
    expect((await send('chat.completions', chat('llama-3.1-8b-instant', 'epsilon'))).cache).toBe('MISS');
    expect((await send('chat.completions', chat('llama-3.1-8b-instant', 'epsilon'))).cache).toBe('HIT');
    const zeta = await send('chat.completions', chat('llama-3.1-8b-instant', 'zeta', { stream: true }));
    expect(zeta.cache).toBe('MISS');
    expect(zeta.provider).toBe('groq');
    expect(usageChunks(zeta.events)).toEqual([]);

    // Legacy completions: a JSON miss answers a later stream as a hit.
    expect((await send('completions', { model: 'gpt-3.5-turbo-instruct', prompt: 'eta' })).cache).toBe('MISS');
    expect((await send('completions', { model: 'gpt-3.5-turbo-instruct', prompt: 'eta', ...withUsage })).cache).toBe('HIT');

    // Embeddings: prompt tokens only.
    expect((await send('embeddings', { model: 'text-embedding-3-small', input: ['a', 'b'] })).cache).toBe('MISS');
    expect((await send('embeddings', { model: 'text-embedding-3-small', input: ['a', 'b'] })).cache).toBe('HIT');

    // Responses API: a JSON miss answers a stream as a hit; a stream miss with a JSON request coalesced on it.
    expect((await send('responses', { model: 'gpt-4o-mini', input: 'nu' })).cache).toBe('MISS');
    const nuHit = await send('responses', { model: 'gpt-4o-mini', input: 'nu', stream: true });
    expect(nuHit.cache).toBe('HIT');
    expect(nuHit.events?.at(-1)?.data).toContain('"type":"response.completed"');
    fake.options.latencyMs = 200;
    const callsBeforeXi = fake.completionCalls().length;
    const xi = send('responses', { model: 'llama-3.1-8b-instant', input: 'xi', stream: true });
    await until(() => fake.completionCalls().length === callsBeforeXi + 1, 'the first xi request upstream');
    const [xiLeader, xiFollower] = await Promise.all([xi, send('responses', { model: 'llama-3.1-8b-instant', input: 'xi' })]);
    expect([xiLeader.cache, xiFollower.cache]).toEqual(['MISS', 'COALESCED']);
    expect((xiFollower.json?.usage as { output_tokens?: number } | undefined)?.output_tokens).toBe(xiFollower.usage?.completion);
    fake.options.latencyMs = 0;

    // no-store: paid upstream, not looked up.
    expect((await send('chat.completions', chat('gpt-4o-mini', 'theta'), { headers: { 'cache-control': 'no-store' } })).cache).toBe('BYPASS');

    // Errors: an upstream 500 (no retries configured), a model the upstream does not know, an
    // unroutable model (no upstream call), a Groq 503.
    fake.queue.push({ status: 500 });
    expect((await send('chat.completions', chat('gpt-4o-mini', 'iota'))).status).toBe(500);
    expect((await send('chat.completions', chat('gpt-unknown-to-upstream', 'kappa'))).status).toBe(404);
    expect((await send('chat.completions', chat('no-provider-serves-this', 'lambda'))).status).toBe(404);
    fake.queue.push({ status: 503 });
    expect((await send('chat.completions', chat('llama-3.3-70b-versatile', 'mu'))).status).toBe(503);

    // The upstream was called for every miss, bypass and error that had a provider, nothing more.
    const upstreamCalls = received.filter((r) => r.provider !== 'none' && (r.cache === 'MISS' || r.cache === 'BYPASS')).length;
    expect(fake.completionCalls().length - upstreamBefore).toBe(upstreamCalls);
    after = await scrape(gw.url);
  });

  const delta = (name: string, match: Record<string, string> = {}) => after.sum(name, match) - before.sum(name, match);

  it('gateway_requests_total: one per answer, by endpoint, provider, model, cache and status', () => {
    const expected = new Map<string, number>();
    for (const r of received) {
      const model = r.provider === 'none' || r.model === 'gpt-unknown-to-upstream' ? 'other' : r.model;
      const key = JSON.stringify({ endpoint: r.endpoint, provider: r.provider, model, cache: r.cache, status: String(r.status) });
      expected.set(key, (expected.get(key) ?? 0) + 1);
    }
    for (const [key, count] of expected) expect(delta('gateway_requests_total', JSON.parse(key) as Record<string, string>), key).toBe(count);
    expect(delta('gateway_requests_total')).toBe(received.length);
  });

  it('hits, misses and coalesced per endpoint equal the X-Cache the clients saw', () => {
    for (const endpoint of ENDPOINTS) {
      const mine = received.filter((r) => r.endpoint === endpoint);
      expect(delta('gateway_cache_hits_total', { endpoint }), endpoint).toBe(mine.filter((r) => r.cache === 'HIT').length);
      // A miss is a lookup that went upstream, whatever the upstream then answered.
      expect(delta('gateway_cache_misses_total', { endpoint }), endpoint).toBe(mine.filter((r) => r.cache === 'MISS').length);
      expect(delta('gateway_cache_coalesced_total', { endpoint }), endpoint).toBe(mine.filter((r) => r.cache === 'COALESCED').length);
    }
    const hits = delta('gateway_cache_hits_total');
    expect(hits / (hits + delta('gateway_cache_misses_total'))).toBeCloseTo(
      received.filter((r) => r.cache === 'HIT').length / received.filter((r) => r.cache === 'HIT' || r.cache === 'MISS').length,
      12,
    );
  });

  it('every answer is one observation of the duration and time-to-first-byte histograms', () => {
    for (const endpoint of ENDPOINTS) {
      for (const cache of ['HIT', 'MISS', 'BYPASS', 'COALESCED']) {
        const count = received.filter((r) => r.endpoint === endpoint && r.cache === cache).length;
        expect(delta('gateway_request_duration_seconds_count', { endpoint, cache }), `${endpoint} ${cache}`).toBe(count);
        expect(delta('gateway_time_to_first_byte_seconds_count', { endpoint, cache }), `${endpoint} ${cache}`).toBe(count);
        expect(delta('gateway_request_duration_seconds_bucket', { endpoint, cache, le: '+Inf' })).toBe(count);
      }
    }
    // The first byte never comes after the last one.
    expect(delta('gateway_time_to_first_byte_seconds_sum')).toBeLessThanOrEqual(delta('gateway_request_duration_seconds_sum') + 1e-9);
  });

  it('upstream durations count every upstream call the fake saw; upstream errors every error it gave', () => {
    for (const provider of ['openai', 'groq'] as const) {
      const seen = fake.requests.filter((r) => r.flavour === provider).length;
      expect(after.sum('gateway_upstream_duration_seconds_count', { provider }), provider).toBe(seen);
    }
    expect(delta('gateway_upstream_errors_total', { provider: 'openai', status: '500' })).toBe(1);
    expect(delta('gateway_upstream_errors_total', { provider: 'openai', status: '404' })).toBe(1);
    expect(delta('gateway_upstream_errors_total', { provider: 'groq', status: '503' })).toBe(1);
    expect(delta('gateway_upstream_errors_total')).toBe(3);
  });

  it('tokens: misses and bypasses at cache=miss, hits and coalesced at cache=hit, equal to the upstream usage', () => {
    const expected = new Map<string, number>();
    const add = (labels: Record<string, string>, n: number) => {
      if (n === 0) return;
      const key = JSON.stringify(labels);
      expected.set(key, (expected.get(key) ?? 0) + n);
    };
    for (const r of received) {
      if (!r.usage || r.provider === 'none') continue;
      const cache = r.cache === 'HIT' || r.cache === 'COALESCED' ? 'hit' : 'miss';
      add({ provider: r.provider, model: r.model, type: 'prompt', cache }, r.usage.prompt);
      add({ provider: r.provider, model: r.model, type: 'completion', cache }, r.usage.completion);
    }
    for (const [key, n] of expected) expect(delta('gateway_tokens_total', JSON.parse(key) as Record<string, string>), key).toBe(n);
    expect(delta('gateway_tokens_total')).toBe([...expected.values()].reduce((a, b) => a + b, 0));
  });

  it('cost spent and cost saved equal the price table applied to the upstream usage', () => {
    const spent = new Map<string, number>();
    const saved = new Map<string, number>();
    for (const r of received) {
      if (!r.usage || r.provider === 'none') continue;
      const target = r.cache === 'HIT' || r.cache === 'COALESCED' ? saved : spent;
      const key = `${r.provider}|${r.model}`;
      target.set(key, (target.get(key) ?? 0) + costOf(r.provider, r.model, r.usage));
    }
    for (const [key, usd] of spent) {
      const [provider, model] = key.split('|') as [string, string];
      expect(delta('gateway_cost_usd_total', { provider, model }), key).toBeCloseTo(usd, 12);
    }
    for (const [key, usd] of saved) {
      const [provider, model] = key.split('|') as [string, string];
      expect(delta('gateway_cost_saved_usd_total', { provider, model }), key).toBeCloseTo(usd, 12);
    }
    expect(delta('gateway_cost_usd_total')).toBeCloseTo(
      [...spent.values()].reduce((a, b) => a + b, 0),
      12,
    );
    expect(delta('gateway_cost_saved_usd_total')).toBeCloseTo(
      [...saved.values()].reduce((a, b) => a + b, 0),
      12,
    );
    expect(delta('gateway_cost_saved_usd_total')).toBeGreaterThan(0);
  });
});

describe('streams', () => {
  it('time to first byte is the first SSE event, well before the end of a slow stream', async () => {
    fake.options.chunkDelayMs = 50;
    const series = { endpoint: 'completions', cache: 'MISS' };
    const before = await scrape(gw.url);
    const answer = await send('completions', { model: 'gpt-3.5-turbo-instruct', prompt: 'a slow stream', stream: true });
    expect(answer.cache).toBe('MISS');
    const after = await scrape(gw.url);
    const ttfb = after.sum('gateway_time_to_first_byte_seconds_sum', series) - before.sum('gateway_time_to_first_byte_seconds_sum', series);
    const total = after.sum('gateway_request_duration_seconds_sum', series) - before.sum('gateway_request_duration_seconds_sum', series);
    // Five content chunks, each 50 ms after the one before, all after the first byte left.
    expect(total).toBeGreaterThanOrEqual(0.24);
    expect(ttfb).toBeGreaterThan(0);
    expect(total - ttfb).toBeGreaterThanOrEqual(0.2);
  });

  it('money paid upstream is counted once per upstream call, even when the client that started it leaves', async () => {
    fake.options.chunkDelayMs = 40;
    const body = chat('gpt-4o-mini', 'the leader leaves', { stream: true });
    const usage = fakeUsage('chat.completions', body);
    const cost = costOf('openai', 'gpt-4o-mini', usage);
    const series = { provider: 'openai', model: 'gpt-4o-mini' };
    const before = await scrape(gw.url);
    const leaving = new AbortController();
    let leaderEvents = 0;
    const leader = send('chat.completions', body, { signal: leaving.signal, onEvent: () => void leaderEvents++ }).catch(() => undefined);
    await until(() => leaderEvents >= 2, 'the leader to receive its first chunks');
    const follower = send('chat.completions', body);
    await until(() => fake.completionCalls().at(-1)?.json?.messages !== undefined && leaderEvents >= 3, 'the stream to go on');
    leaving.abort();
    await leader;
    const followed = await follower;
    expect(followed.cache).toBe('COALESCED');
    expect(followed.events?.at(-1)?.data).toBe('[DONE]');
    expect(fake.completionCalls().at(-1)?.aborted).toBe(false);
    const after = await scrape(gw.url);
    const change = (name: string, labels: Record<string, string>) => after.sum(name, labels) - before.sum(name, labels);
    expect(change('gateway_cost_usd_total', series)).toBeCloseTo(cost, 12);
    expect(change('gateway_cost_saved_usd_total', series)).toBeCloseTo(cost, 12);
    expect(change('gateway_tokens_total', { ...series, cache: 'miss', type: 'completion' })).toBe(usage.completion);
    expect(change('gateway_tokens_total', { ...series, cache: 'hit', type: 'completion' })).toBe(usage.completion);
  });

  it('a client that leaves mid-stream is still counted, once, as status 499 (client closed request), with a log line', async () => {
    fake.options.chunkDelayMs = 40;
    const before = await scrape(gw.url);
    const leaving = new AbortController();
    let events = 0;
    const request = send('chat.completions', chat('gpt-4o-mini', 'the user pressed stop', { stream: true }), {
      signal: leaving.signal,
      onEvent: () => void events++,
    }).catch(() => undefined);
    await until(() => events >= 2, 'the first chunks');
    leaving.abort();
    await request;
    await until(() => fake.completionCalls().at(-1)?.aborted === true, 'the upstream call to be aborted');
    const series = { endpoint: 'chat.completions', provider: 'openai', model: 'gpt-4o-mini', cache: 'MISS' };
    let after = await scrape(gw.url);
    const deadline = Date.now() + 5_000;
    while (
      after.sum('gateway_requests_total', { ...series, status: '499' }) === before.sum('gateway_requests_total', { ...series, status: '499' }) &&
      Date.now() < deadline
    ) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      after = await scrape(gw.url);
    }
    const change = (name: string, labels: Record<string, string>) => after.sum(name, labels) - before.sum(name, labels);
    expect(change('gateway_requests_total', { ...series, status: '499' })).toBe(1);
    expect(change('gateway_requests_total', {})).toBe(1);
    expect(change('gateway_request_duration_seconds_count', { endpoint: 'chat.completions', cache: 'MISS' })).toBe(1);
    expect(change('gateway_time_to_first_byte_seconds_count', { endpoint: 'chat.completions', cache: 'MISS' })).toBe(1);
    // Nobody received the whole answer and the upstream call was stopped: nothing paid is known.
    expect(change('gateway_cost_usd_total', {})).toBe(0);
    const line = gw.logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === 'request' && l.status === 499);
    expect(line.at(-1)).toMatchObject({ route: '/v1/chat/completions', provider: 'openai', model: 'gpt-4o-mini', cache: 'MISS' });
  });

  it('a client that gives up before the upstream answered is not an upstream error', async () => {
    fake.options.latencyMs = 300;
    const before = await scrape(gw.url);
    const calls = fake.completionCalls().length;
    const leaving = new AbortController();
    const request = send('chat.completions', chat('gpt-4o-mini', 'nobody waits', { stream: true }), { signal: leaving.signal }).catch(() => undefined);
    await until(() => fake.completionCalls().length === calls + 1, 'the request upstream');
    leaving.abort();
    await request;
    await until(() => fake.completionCalls().at(-1)?.aborted === true, 'the upstream call to be aborted');
    const after = await scrape(gw.url);
    expect(after.sum('gateway_upstream_errors_total') - before.sum('gateway_upstream_errors_total')).toBe(0);
    expect(after.sum('gateway_cost_usd_total') - before.sum('gateway_cost_usd_total')).toBe(0);
  });
});
