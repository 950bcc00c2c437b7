/**
 * A cache hit must not cost much more than serving a constant: every POST to a cached route is
 * served by the cached routes' pipeline at the HTTP server (src/pipeline/cached-requests.ts),
 * hit or miss, never by Fastify. These tests pin what that must keep: no cached-route request
 * reaches Fastify's hooks; a hit is the same answer, with the same headers, metrics and log
 * line, with or without a query string; a miss reads the store once; everything refused is
 * refused in OpenAI's shape and a miss reaches the provider with its body intact. Embedded
 * store and real Redis.
 */
import { connect } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { MemoryStore } from '../src/cache/memory-store.js';
import type { CacheStore } from '../src/cache/store.js';
import { BACKENDS, chatBody, parseStream, streamText, unique, until, type Backend } from './helpers/cache-e2e.js';
import { startFakeUpstream, type FakeUpstream } from './helpers/fake-upstream.js';
import { startGateway, type RunningGateway } from './helpers/gateway.js';
import { scrape } from './helpers/metrics-scrape.js';
import { rawRequest, type RawResponse } from './helpers/raw-http.js';
import { groqClient, openaiClient, readChatStream } from './helpers/sdk-clients.js';
import { startRedis, type RedisServer } from './helpers/redis-server.js';

/** A store that counts its reads: the embedded backend's count of round trips. */
class CountingStore implements CacheStore {
  gets = 0;
  readonly label = 'memory';
  constructor(private readonly inner: MemoryStore) {}
  // Synchronous, as the embedded store's read is.
  get(key: string): Buffer | undefined {
    this.gets++;
    return this.inner.get(key);
  }
  set(key: string, value: Buffer, ttlSeconds: number): Promise<void> {
    return this.inner.set(key, value, ttlSeconds);
  }
  delete(key: string): Promise<void> {
    return this.inner.delete(key);
  }
  ping(): boolean {
    return this.inner.ping();
  }
  isUp(): boolean {
    return this.inner.isUp();
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

describe.each(BACKENDS)("the cached routes' pipeline (%s)", (backend: Backend) => {
  let fake: FakeUpstream;
  let gateway: RunningGateway;
  let redis: RedisServer | undefined;
  let redisClient: Redis | undefined;
  let counting: CountingStore | undefined;
  /** Requests that went through Fastify's lifecycle (its onRequest hook), by URL. */
  const seenByFastify: string[] = [];

  beforeAll(async () => {
    fake = await startFakeUpstream();
    if (backend === 'redis') {
      redis = await startRedis();
      redisClient = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
      await redisClient.connect();
    } else {
      counting = new CountingStore(new MemoryStore({ maxBytes: 16 * 1024 * 1024 }));
    }
    const env = { LOG_LEVEL: 'info', ...(redis ? { REDIS_URL: redis.url, REDIS_COMMAND_TIMEOUT_MS: '2000' } : {}) };
    const watch = (app: FastifyInstance): void => {
      app.addHook('onRequest', (request, _reply, done) => {
        seenByFastify.push(request.url);
        done();
      });
    };
    gateway = await startGateway(fake, env, counting ? { store: counting } : {}, { beforeListen: watch });
    // Routing by the providers' lists: fetch them first, as a running gateway has.
    expect((await fetch(`${gateway.url}/v1/models`)).status).toBe(200);
  });
  afterAll(async () => {
    gateway?.app.server.closeAllConnections();
    await gateway?.close();
    redisClient?.disconnect();
    await fake?.close();
    await redis?.stop();
  });
  beforeEach(() => {
    fake.reset();
    seenByFastify.splice(0);
  });

  async function storeReads(): Promise<number> {
    if (counting) return counting.gets;
    const stats = await redisClient!.info('commandstats');
    return Number(/cmdstat_get:calls=(\d+)/.exec(stats)?.[1] ?? 0);
  }

  function send(path: string, body: unknown, headers: Record<string, string> = {}): Promise<RawResponse> {
    return rawRequest(gateway.url + path, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify(body),
    });
  }

  /**
   * Until a fresh entry is written, the flight that answered serves it (a HIT without a store
   * read); waits until the stored entry itself answers.
   */
  async function stored(path: string, body: unknown): Promise<void> {
    const answeredHere = await until(async () => {
      const reads = await storeReads();
      const response = await send(path, body);
      return response.headers['x-cache'] === 'HIT' && (await storeReads()) > reads;
    }, 3_000);
    expect(answeredHere).toBe(true);
  }

  it('answers every cached-route request without Fastify, hits in both forms and on both URL layouts', async () => {
    const openai = chatBody(unique('fast'));
    const groq = { ...chatBody(unique('fast-groq')), model: 'llama-3.1-8b-instant' };
    expect((await send('/v1/chat/completions', openai)).headers['x-cache']).toBe('MISS');
    expect((await send('/openai/v1/chat/completions', groq)).headers['x-cache']).toBe('MISS');
    // No cached-route request reaches Fastify's hooks, misses included.
    expect(seenByFastify).toEqual([]);
    await stored('/v1/chat/completions', openai);
    await stored('/openai/v1/chat/completions', groq);
    seenByFastify.splice(0);

    const json = await send('/v1/chat/completions', openai);
    const stream = await send('/v1/chat/completions', { ...openai, stream: true });
    const groqHit = await send('/openai/v1/chat/completions', { ...groq, stream: true, stream_options: { include_usage: true } });
    for (const hit of [json, stream, groqHit]) expect([hit.status, hit.headers['x-cache']]).toEqual([200, 'HIT']);
    expect(seenByFastify).toEqual([]);
    expect(fake.requests.filter((r) => r.method === 'POST')).toHaveLength(2);
    const text = (JSON.parse(json.body.toString()) as { choices: Array<{ message: { content: string } }> }).choices[0]!.message.content;
    expect(streamText(parseStream(stream.body.toString()))).toBe(text);
    expect(parseStream(groqHit.body.toString()).chunks.at(-1)?.usage).toBeTruthy();

    // The other two cached routes too.
    const embedding = { model: 'text-embedding-3-small', input: unique('fast-embedding') };
    const completion = { model: 'gpt-3.5-turbo-instruct', prompt: unique('fast-completion') };
    for (const [path, body] of [
      ['/v1/embeddings', embedding],
      ['/v1/completions', completion],
    ] as const) {
      const miss = await send(path, body);
      expect([miss.status, miss.headers['x-cache']]).toEqual([200, 'MISS']);
      await stored(path, body);
      seenByFastify.splice(0);
      const hit = await send(path, body);
      expect([hit.status, hit.headers['x-cache']]).toEqual([200, 'HIT']);
      expect(hit.body.equals(miss.body)).toBe(true);
      expect(seenByFastify).toEqual([]);
    }
  });

  it('answers the real openai and groq-sdk clients from the cache, JSON and streams', async () => {
    const openai = openaiClient(gateway);
    const groq = groqClient(gateway);
    const prompt = unique('sdk');
    const first = await openai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: prompt }] });
    await stored('/v1/chat/completions', { model: 'gpt-4o-mini', messages: [{ role: 'user', content: prompt }] });
    const groqPrompt = unique('sdk-groq');
    await groq.chat.completions.create({ model: 'llama-3.1-8b-instant', messages: [{ role: 'user', content: groqPrompt }] });
    await stored('/openai/v1/chat/completions', { model: 'llama-3.1-8b-instant', messages: [{ role: 'user', content: groqPrompt }] });
    seenByFastify.splice(0);

    const again = await openai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: prompt }] }).withResponse();
    expect(again.response.headers.get('x-cache')).toBe('HIT');
    expect(again.data.choices[0]?.message.content).toBe(first.choices[0]?.message.content);
    const stream = await openai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: prompt }], stream: true });
    expect((await readChatStream(stream)).text).toBe(first.choices[0]?.message.content);
    const groqStream = await groq.chat.completions.create({ model: 'llama-3.1-8b-instant', messages: [{ role: 'user', content: groqPrompt }], stream: true });
    const groqRead = await readChatStream(groqStream);
    expect(groqRead.failure).toBeUndefined();
    expect(groqRead.text.length).toBeGreaterThan(0);
    expect(seenByFastify).toEqual([]);
  });

  it('gives the same hit, headers, metrics and log line with a query string as without', async () => {
    for (const stream of [false, true]) {
      const body = chatBody(unique('parity'), stream ? { stream: true } : {});
      await send('/v1/chat/completions', body);
      await stored('/v1/chat/completions', body);
      // A query string changes nothing: the route is its path, the cache key never holds the URL.
      const before = await scrape(gateway.url);
      const logsBefore = gateway.logs.length;
      const withQuery = await send('/v1/chat/completions?via=query', body, { 'x-request-id': 'parity-query' });
      const between = await scrape(gateway.url);
      const asIs = await send('/v1/chat/completions', body, { 'x-request-id': 'parity-plain' });
      expect(seenByFastify.filter((url) => url !== '/metrics')).toEqual([]);
      const after = await scrape(gateway.url);

      expect(asIs.status).toBe(withQuery.status);
      expect(asIs.body.equals(withQuery.body)).toBe(true);
      const comparable = (response: RawResponse): Record<string, unknown> => {
        const { date: _date, age, ...rest } = response.headers;
        expect(Number(age)).toBeGreaterThanOrEqual(0);
        return rest;
      };
      expect({ ...comparable(asIs), 'x-request-id': 'x' }).toEqual({ ...comparable(withQuery), 'x-request-id': 'x' });
      expect([withQuery.headers['x-request-id'], asIs.headers['x-request-id']]).toEqual(['parity-query', 'parity-plain']);
      expect(Object.keys(asIs.headers)).toEqual(Object.keys(withQuery.headers));

      // Every series one request moved, the other moved by the same amount.
      const moved = (from: typeof before, to: typeof before): Map<string, number> => {
        const deltas = new Map<string, number>();
        for (const sample of to.samples) {
          if (!sample.name.startsWith('gateway_') || sample.name.includes('duration') || sample.name.includes('first_byte')) continue;
          const id = `${sample.name}${JSON.stringify(sample.labels)}`;
          const old = from.samples.find((s) => s.name === sample.name && JSON.stringify(s.labels) === JSON.stringify(sample.labels))?.value ?? 0;
          // Rounded: a dollar delta read off two running float sums differs in its last bits.
          if (sample.value !== old) deltas.set(id, Number((sample.value - old).toPrecision(10)));
        }
        return deltas;
      };
      const queryMoved = moved(before, between);
      expect(queryMoved.size).toBeGreaterThanOrEqual(4);
      expect(moved(between, after)).toEqual(queryMoved);
      for (const name of ['gateway_request_duration_seconds_count', 'gateway_time_to_first_byte_seconds_count']) {
        const labels = { endpoint: 'chat.completions', cache: 'HIT' };
        expect(after.sum(name, labels) - between.sum(name, labels)).toBe(between.sum(name, labels) - before.sum(name, labels));
      }

      // The log lines: same fields in the same order, the same values but id and duration.
      const lines = (): Array<Record<string, unknown>> =>
        gateway.logs
          .slice(logsBefore)
          .map((line) => JSON.parse(line) as Record<string, unknown>)
          .filter((line) => line['msg'] === 'request' && line['route'] === '/v1/chat/completions');
      await until(() => lines().length >= 2, 2_000);
      const [queryLine, plainLine] = lines() as [Record<string, unknown>, Record<string, unknown>];
      expect([queryLine['id'], plainLine['id']]).toEqual(['parity-query', 'parity-plain']);
      expect(Object.keys(plainLine)).toEqual(Object.keys(queryLine));
      const strip = ({ id: _id, durationMs: _duration, time: _time, ...rest }: Record<string, unknown>): Record<string, unknown> => rest;
      expect(strip(plainLine)).toEqual(strip(queryLine));
      expect(plainLine).toMatchObject({ cache: 'HIT', status: 200, route: '/v1/chat/completions', provider: 'openai' });
    }
  });

  it('reads the store once per request: a miss costs no second read', async () => {
    const body = chatBody(unique('reads'));
    const before = await storeReads();
    expect((await send('/v1/chat/completions', body)).headers['x-cache']).toBe('MISS');
    expect((await storeReads()) - before).toBe(1);
    await stored('/v1/chat/completions', body);
    const settled = await storeReads();
    expect((await send('/v1/chat/completions', body)).headers['x-cache']).toBe('HIT');
    expect((await send('/v1/chat/completions', { ...body, stream: true })).headers['x-cache']).toBe('HIT');
    expect((await storeReads()) - settled).toBe(2);
    const sent = settled + 2 - before;
    // A no-store request never reads it.
    await send('/v1/chat/completions', body, { 'cache-control': 'no-store' });
    expect((await storeReads()) - before).toBe(sent);
  });

  it("refuses bad bodies in OpenAI's shape and sends a miss upstream byte for byte", async () => {
    const invalid = await rawRequest(`${gateway.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"model": "gpt-4o-mini", "messages": [',
    });
    expect(invalid.status).toBe(400);
    expect(JSON.parse(invalid.body.toString())).toMatchObject({ error: { type: 'invalid_request_error' } });
    const poisoned = await rawRequest(`${gateway.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"model":"gpt-4o-mini","messages":[],"__proto__":{"x":1}}',
    });
    expect(poisoned.status).toBe(400);
    const unknownModel = await send('/v1/chat/completions', { ...chatBody(unique('unknown')), model: 'no-such-model-anywhere' });
    expect(unknownModel.status).toBe(404);
    expect(JSON.parse(unknownModel.body.toString())).toMatchObject({ error: { code: 'model_not_found' } });

    // A miss with a multi-byte body reaches the upstream byte for byte.
    const body = chatBody(`${unique('utf8')} żółć 日本語 🙂 ${'x'.repeat(70_000)}`);
    const miss = await send('/v1/chat/completions', body, { 'content-type': 'application/json; charset=utf-8' });
    expect(miss.headers['x-cache']).toBe('MISS');
    expect(fake.requests.at(-1)?.json).toEqual(body);
    // A large body is a hit all the same (worked out each time instead of remembered).
    await stored('/v1/chat/completions', body);
  });

  it('keeps pipelined requests on one connection in order, hits and misses mixed, and honours Expect: 100-continue', async () => {
    const hit = chatBody(unique('pipelined-hit'));
    await send('/v1/chat/completions', hit);
    await stored('/v1/chat/completions', hit);
    const misses = [chatBody(unique('pipelined-miss-1')), chatBody(unique('pipelined-miss-2'))];
    const request = (body: unknown, extra = ''): string => {
      const json = JSON.stringify(body);
      return `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(json)}\r\n${extra}\r\n${json}`;
    };
    const port = Number(new URL(gateway.url).port);
    const socket = connect(port, '127.0.0.1');
    await new Promise<void>((resolve) => socket.once('connect', resolve));
    let received = '';
    socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
    // Four requests in one write: miss, hit, miss, hit. Answers must come back in that order.
    socket.write(request(misses[0]) + request(hit) + request(misses[1]) + request(hit));
    const caches = (): string[] => [...received.matchAll(/^x-cache: (\w+)\r$/gim)].map((match) => match[1] as string);
    expect(await until(() => caches().length === 4, 5_000)).toBe(true);
    expect(caches()).toEqual(['MISS', 'HIT', 'MISS', 'HIT']);
    const answers = [...received.matchAll(/"content":"((?:[^"\\]|\\.)*)"/g)].map((match) => match[1]);
    expect(answers).toHaveLength(4);
    expect(answers[1]).toBe(answers[3]);
    expect(new Set(answers).size).toBe(3);

    // A client that waits for 100 Continue before sending its body (curl does for large bodies).
    received = '';
    const json = JSON.stringify(hit);
    socket.write(
      `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(json)}\r\nExpect: 100-continue\r\n\r\n`,
    );
    expect(await until(() => received.startsWith('HTTP/1.1 100 Continue'), 2_000)).toBe(true);
    socket.write(json);
    expect(await until(() => caches().length === 1, 2_000)).toBe(true);
    expect(caches()).toEqual(['HIT']);
    socket.destroy();
  });

  it('logs a client that leaves while sending its body once, as 499', async () => {
    const logsBefore = gateway.logs.length;
    const before = await scrape(gateway.url);
    const port = Number(new URL(gateway.url).port);
    const socket = connect(port, '127.0.0.1');
    await new Promise<void>((resolve) => socket.once('connect', resolve));
    socket.write('POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{"model":"gpt-4o-');
    await until(() => false, 100);
    socket.destroy();
    const logged = (): Array<Record<string, unknown>> =>
      gateway.logs
        .slice(logsBefore)
        .map((line) => JSON.parse(line) as Record<string, unknown>)
        .filter((line) => line['msg'] === 'request' && line['route'] === '/v1/chat/completions');
    expect(await until(() => logged().length > 0, 2_000)).toBe(true);
    await until(() => false, 100);
    expect(logged()).toHaveLength(1);
    expect(logged()[0]).toMatchObject({ status: 499, route: '/v1/chat/completions', method: 'POST' });
    const after = await scrape(gateway.url);
    const labels = { endpoint: 'chat.completions', status: '499' };
    expect(after.sum('gateway_requests_total', labels) - before.sum('gateway_requests_total', labels)).toBe(1);
  });
});

describe("the cached routes' pipeline while the server closes", () => {
  it('answers a request that arrives during close with an OpenAI-shaped 503 (not a late hit)', async () => {
    const fake = await startFakeUpstream({ latencyMs: 400 });
    const gateway = await startGateway(fake, { LOG_LEVEL: 'warn' });
    try {
      expect((await fetch(`${gateway.url}/v1/models`)).status).toBe(200);
      const hit = chatBody(unique('closing-hit'));
      const post = (body: unknown): Promise<RawResponse> =>
        rawRequest(`${gateway.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      await post(hit);
      expect(await until(async () => (await post(hit)).headers['x-cache'] === 'HIT', 5_000)).toBe(true);

      // A slow miss keeps one connection busy while the server starts closing; the hit then
      // arrives on that same connection.
      const socket = connect(Number(new URL(gateway.url).port), '127.0.0.1');
      await new Promise<void>((resolve) => socket.once('connect', resolve));
      let received = '';
      socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
      const request = (body: unknown): string => {
        const json = JSON.stringify(body);
        return `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(json)}\r\n\r\n${json}`;
      };
      socket.write(request(chatBody(unique('closing-miss'))));
      await until(() => false, 100);
      const closed = gateway.close();
      await until(() => false, 50);
      socket.write(request(hit));
      const statusLines = (): string[] => received.match(/HTTP\/1\.1 \d{3} /g) ?? [];
      expect(await until(() => statusLines().length >= 2 && received.endsWith('}'), 5_000)).toBe(true);
      expect(statusLines()).toEqual(['HTTP/1.1 200 ', 'HTTP/1.1 503 ']);
      const refusal = received.slice(received.lastIndexOf('HTTP/1.1 503 '));
      expect(refusal).toMatch(/\r\nretry-after: 1\r\n/i);
      expect(refusal).toMatch(/\r\nx-request-id: [\w-]+\r\n/i);
      expect(refusal).not.toMatch(/x-cache/i);
      expect(JSON.parse(refusal.slice(refusal.indexOf('\r\n\r\n') + 4))).toEqual({
        error: { message: 'The gateway is shutting down; retry the request.', type: 'server_error', code: 'gateway_shutting_down' },
      });
      socket.destroy();
      await closed;
    } finally {
      await fake.close();
    }
  });
});
