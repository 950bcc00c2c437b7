/**
 * LiteLLM's body field `cache` (`no-cache`, `no-store`, `ttl`, `s-maxage`) acts as the matching
 * request control on every cached route, and never reaches the key or the provider: the same
 * request with and without it shares one entry, and the provider receives the body without it.
 * A value the gateway cannot honour is refused with an OpenAI-shaped 400 before any provider call.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { applyBodyCacheControls } from '../src/cache/litellm-cache-field.js';
import { parseCachePolicy, type CachePolicy } from '../src/cache/policy.js';
import { chatBody, post, unique, until, useGateway, type GatewayResponse } from './helpers/cache-e2e.js';
import { openaiClient } from './helpers/sdk-clients.js';

type Body = Record<string, unknown>;

/** One request of each cached route, told apart by a prompt no other test uses. */
const ROUTES: Array<[path: string, body: (prompt: string) => Body]> = [
  ['/v1/chat/completions', (prompt) => chatBody(prompt)],
  ['/v1/completions', (prompt) => ({ model: 'gpt-3.5-turbo-instruct', prompt })],
  ['/v1/embeddings', (prompt) => ({ model: 'text-embedding-3-small', input: prompt })],
  ['/v1/responses', (prompt) => ({ model: 'gpt-4o-mini', input: prompt })],
  ['/openai/v1/chat/completions', (prompt) => ({ model: 'llama-3.1-8b-instant', messages: [{ role: 'user', content: prompt }] })],
];

describe('the body field `cache`', () => {
  const setup = useGateway('memory');
  const send = (path: string, body: Body, headers: Record<string, string> = {}): Promise<GatewayResponse> => post(setup.gateway, path, body, headers);
  const calls = (): number => setup.fake.completionCalls().length;
  /** Sends until the answer is stored (the store is written after the answer leaves). */
  const stored = async (path: string, body: Body): Promise<void> => {
    expect(await until(async () => (await send(path, body)).xCache === 'HIT', 3_000)).toBe(true);
  };

  it.each(ROUTES)('%s: removed before the key and before the provider; the same request with or without it is one entry', async (path, make) => {
    const body = make(unique('same-key'));
    expect((await send(path, body)).xCache).toBe('MISS');
    await stored(path, body);
    for (const cache of [{ ttl: 600 }, { 's-maxage': 600 }, {}, null]) {
      const answer = await send(path, { ...body, cache });
      expect(answer.status).toBe(200);
      expect(answer.xCache).toBe('HIT');
    }
    expect((await send(path, { ...body, cache: { 'no-store': true } })).xCache).toBe('BYPASS');
    expect((await send(path, { ...body, stream: path.endsWith('embeddings') ? undefined : true, cache: { 'no-cache': true } })).xCache).toBe('BYPASS');
    const received = setup.fake.completionCalls();
    expect(received).toHaveLength(3);
    for (const request of received) {
      expect(request.json).toBeDefined();
      expect(Object.keys(request.json ?? {})).not.toContain('cache');
      expect(request.json?.['model']).toBe(body.model);
    }
  });

  it('{"no-cache": true} skips the lookup, calls the provider and stores the fresh answer', async () => {
    const body = chatBody(unique('no-cache'));
    await send('/v1/chat/completions', body);
    await stored('/v1/chat/completions', body);
    await sleep(1_100);
    const refreshed = await send('/v1/chat/completions', { ...body, cache: { 'no-cache': true } });
    expect(refreshed.xCache).toBe('BYPASS');
    expect(calls()).toBe(2);
    // Stored anew: an entry younger than one second now answers.
    expect(await until(async () => (await send('/v1/chat/completions', body, { 'cache-control': 'max-age=1' })).xCache === 'HIT', 900, 20)).toBe(true);
    expect(calls()).toBe(2);
  });

  it('{"no-store": true} neither reads nor writes', async () => {
    const stored1 = chatBody(unique('no-store-read'));
    await send('/v1/chat/completions', stored1);
    await stored('/v1/chat/completions', stored1);
    expect((await send('/v1/chat/completions', { ...stored1, cache: { 'no-store': true } })).xCache).toBe('BYPASS');
    expect(calls()).toBe(2);

    const fresh = chatBody(unique('no-store-write'));
    expect((await send('/v1/chat/completions', { ...fresh, cache: { 'no-store': true } })).xCache).toBe('BYPASS');
    await sleep(100);
    expect((await send('/v1/chat/completions', fresh)).xCache).toBe('MISS');
  });

  it('{"ttl": N} stores the answer for N seconds', async () => {
    const body = chatBody(unique('ttl'));
    expect((await send('/v1/chat/completions', { ...body, cache: { ttl: 1 } })).xCache).toBe('MISS');
    await stored('/v1/chat/completions', body);
    await sleep(1_300);
    expect((await send('/v1/chat/completions', body)).xCache).toBe('MISS');
    // Without it the entry lives for CACHE_TTL_SECONDS (a day here).
    await stored('/v1/chat/completions', body);
    await sleep(1_300);
    expect((await send('/v1/chat/completions', body)).xCache).toBe('HIT');
  });

  it('{"s-maxage": N} accepts only an entry younger than N seconds, also when the same bytes come again', async () => {
    const body = chatBody(unique('s-maxage'));
    const strict = { ...body, cache: { 's-maxage': 1 } };
    await send('/v1/chat/completions', body);
    await stored('/v1/chat/completions', body);
    // Answered from the store: the gateway remembers these very bytes, controls included.
    expect((await send('/v1/chat/completions', strict)).xCache).toBe('HIT');
    await sleep(1_100);
    expect((await send('/v1/chat/completions', { ...body, cache: { 's-maxage': 600 } })).xCache).toBe('HIT');
    expect((await send('/v1/chat/completions', strict)).xCache).toBe('MISS');
  });

  it('a LiteLLM-style client through the openai SDK works unchanged', async () => {
    const client = openaiClient(setup.gateway);
    const messages = [{ role: 'user' as const, content: unique('sdk') }];
    const params = { model: 'gpt-4o-mini', messages, cache: { 'no-cache': true } };
    const { data, response } = await client.chat.completions
      .create(params as Parameters<typeof client.chat.completions.create>[0] & { stream?: false })
      .withResponse();
    expect(response.headers.get('x-cache')).toBe('BYPASS');
    expect(data.choices[0]?.message.content).toContain('Echo:');
    expect(setup.fake.completionCalls()[0]?.json).toEqual({ model: 'gpt-4o-mini', messages });
  });

  it.each([
    ['a string', 'no-cache'],
    ['an array', [{ 'no-cache': true }]],
    ['a number', 1],
    ['a non-boolean flag', { 'no-cache': 'true' }],
    ['a negative ttl', { ttl: -1 }],
    ['a fractional ttl', { ttl: 1.5 }],
    ['a ttl as text', { ttl: '60' }],
    ['an s-maxage too large', { 's-maxage': 1e12 }],
    ['an unknown key', { namespace: 'team-a' }],
  ])('%s is refused with an OpenAI-shaped 400 before any provider call', async (_label, cache) => {
    for (const [path, make] of ROUTES) {
      const answer = await send(path, { ...make(unique('bad')), cache });
      expect(answer.status).toBe(400);
      expect(answer.headers.get('content-type')).toMatch(/^application\/json/);
      const error = (JSON.parse(answer.text) as { error: { message: string; type: string; code: string } }).error;
      expect(error).toMatchObject({ type: 'invalid_request_error', code: 'invalid_cache_field' });
      expect(error.message).toMatch(/'cache/);
    }
    expect(calls()).toBe(0);
  });
});

describe('the body controls over the header policy', () => {
  const policy = (headers: Record<string, string>): CachePolicy => parseCachePolicy(headers, { ttlSeconds: 86_400 });

  it('only narrow what the headers allow: never turn reading or storing back on; the younger max-age wins', () => {
    const off: CachePolicy = { lookup: false, store: false, ttlSeconds: 86_400 };
    applyBodyCacheControls(off, { noCache: true });
    expect(off).toMatchObject({ lookup: false, store: false });

    const noStoreHeader = policy({ 'cache-control': 'no-store' });
    applyBodyCacheControls(noStoreHeader, { noCache: true });
    expect(noStoreHeader).toMatchObject({ lookup: false, store: false, bypassReason: 'no-store' });

    const noStoreBody = policy({ 'cache-control': 'no-cache' });
    applyBodyCacheControls(noStoreBody, { noStore: true });
    expect(noStoreBody).toMatchObject({ lookup: false, store: false, bypassReason: 'no-store' });

    const ages = policy({ 'cache-control': 'max-age=30' });
    applyBodyCacheControls(ages, { maxAgeSeconds: 600 });
    expect(ages.maxAgeSeconds).toBe(30);
    applyBodyCacheControls(ages, { maxAgeSeconds: 5 });
    expect(ages.maxAgeSeconds).toBe(5);
  });

  it('ttl sets the lifetime as X-Cache-TTL does, over that header (0: no expiry)', () => {
    const withHeader = policy({ 'x-cache-ttl': '60' });
    applyBodyCacheControls(withHeader, { ttlSeconds: 0 });
    expect(withHeader).toMatchObject({ lookup: true, store: true, ttlSeconds: 0 });
  });
});
