/**
 * Every kind of cache hit is written by one function (src/pipeline/write-hit.ts), and every
 * answer head on the cached routes by one (answerHead). This drives each kind of hit on the
 * embedded store and a real redis-server, on both URL layouts, and proves they agree in status,
 * header names and their order, body bytes, metric movements and log line:
 *
 * - a stored entry, filled as JSON or as a stream, answering JSON, a stream and a stream with
 *   usage (so both cross-forms), each sent as is, with a query string and with a chunked body
 *   (read without a Content-Length): the cached routes' pipeline takes every one of them, and
 *   none reaches Fastify's hooks;
 * - a flight that has answered while its entry is still being written (the store's writes are
 *   held), which must answer exactly as the stored entry does once written;
 * - a coalesced follower of a flight still in progress (the upstream's answer is held), whose
 *   head must be the hit's head (the provider's headers in the place of Age) and whose
 *   accounting must be a hit's (COALESCED in the place of HIT).
 */
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { BACKENDS, parseStream, streamText, unique, until, type Backend } from './helpers/cache-e2e.js';
import { answerFor, startFakeUpstream, type FakeUpstream } from './helpers/fake-upstream.js';
import { startGatedUpstream, type GatedUpstream } from './helpers/gated-upstream.js';
import { fakeUpstreamEnv, startGateway, type RunningGateway } from './helpers/gateway.js';
import { heldStoreWrites, type HeldStoreWrites } from './helpers/held-store-writes.js';
import { asHit, comparable, headerNames, movements, requestLine, withoutLeader, type LogLine } from './helpers/hit-parity.js';
import { scrape } from './helpers/metrics-scrape.js';
import { startRedis, type RedisServer } from './helpers/redis-server.js';
import { wireRequest, type WireResponse } from './helpers/wire-request.js';

const LAYOUTS = [
  { prefix: '/v1', model: 'gpt-4o-mini', provider: 'openai' },
  { prefix: '/openai/v1', model: 'llama-3.1-8b-instant', provider: 'groq' },
] as const;
type Layout = (typeof LAYOUTS)[number];

/** How the entry is filled: the form of the request whose answer is stored. */
const FILLS = [
  { name: 'JSON', extra: {} },
  { name: 'a stream', extra: { stream: true } },
] as const;
interface Form {
  name: string;
  stream: boolean;
  usage: boolean;
  extra: Record<string, unknown>;
}
/** The forms a hit answers in. */
const FORMS: readonly Form[] = [
  { name: 'JSON', stream: false, usage: false, extra: {} },
  { name: 'a stream', stream: true, usage: false, extra: { stream: true } },
  { name: 'a stream with usage', stream: true, usage: true, extra: { stream: true, stream_options: { include_usage: true } } },
];

/** The ways a request is sent: as is, with a query string, with a chunked body (no Content-Length). */
const WAYS = ['as is', 'query string', 'chunked body'] as const;
type Way = (typeof WAYS)[number];

const HIT_HEAD = ['x-request-id', 'x-gateway-provider', 'x-gateway-model', 'x-cache', 'age'];
const JSON_CONTENT = ['content-type', 'content-length'];
const SSE_CONTENT = ['content-type', 'cache-control', 'connection', 'x-accel-buffering'];
/** What the fake provider sends that reaches a client answered by its call. */
const PROVIDER_HEADERS = ['x-upstream-request-id', 'x-ratelimit-remaining-requests', 'x-ratelimit-limit-requests'];
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** One answer and everything it left behind. */
interface Observed {
  response: WireResponse;
  names: string[];
  id: string;
  viaFastify: boolean;
  line: LogLine;
  moved: Map<string, number>;
}

describe.each(BACKENDS)('every kind of cache hit is written alike (%s)', (backend: Backend) => {
  let fake: FakeUpstream;
  let gate: GatedUpstream;
  let redis: RedisServer | undefined;
  let writes: HeldStoreWrites;
  let gateway: RunningGateway;
  /** Ids of the requests that went through Fastify's lifecycle (its onRequest hook): none of the cached routes'. */
  const seenByFastify = new Set<string>();

  beforeAll(async () => {
    fake = await startFakeUpstream();
    gate = await startGatedUpstream(fake.url);
    redis = backend === 'redis' ? await startRedis() : undefined;
    const env = {
      LOG_LEVEL: 'info',
      OPENAI_BASE_URL: `${gate.url}/v1`,
      GROQ_BASE_URL: `${gate.url}/openai/v1`,
      ...(redis ? { REDIS_URL: redis.url, REDIS_COMMAND_TIMEOUT_MS: '2000' } : {}),
    };
    writes = await heldStoreWrites(loadConfig({ PORT: '0', ...fakeUpstreamEnv(fake), ...env }));
    const watch = (app: FastifyInstance): void => {
      app.addHook('onRequest', (request, _reply, done) => {
        seenByFastify.add(request.id);
        done();
      });
    };
    gateway = await startGateway(fake, env, { store: writes.store }, { beforeListen: watch });
    // Routing by the providers' lists: fetch them first, as a running gateway has.
    expect((await fetch(`${gateway.url}/v1/models`)).status).toBe(200);
  });
  afterAll(async () => {
    gateway?.app.server.closeAllConnections();
    await gateway?.close();
    await writes?.close();
    await gate?.close();
    await fake?.close();
    await redis?.stop();
  });

  function sendNow(path: string, body: unknown, way: Way = 'as is'): Promise<WireResponse> {
    const target = way === 'query string' ? `${path}?via=query` : path;
    const chunked = way === 'chunked body';
    // Node's client frames a body given at once with a Content-Length unless the header says otherwise.
    const framing: Record<string, string> = chunked ? { 'transfer-encoding': 'chunked' } : {};
    return wireRequest(gateway.url, target, { headers: { 'content-type': 'application/json', ...framing }, body: JSON.stringify(body), chunked });
  }

  async function lineOf(id: string): Promise<LogLine> {
    let line: LogLine | undefined;
    expect(await until(() => (line = requestLine(gateway.logs, id)) !== undefined, 5_000)).toBe(true);
    return line!;
  }

  /** Sends one request alone and collects what it moved (its log line is written after its metrics). */
  async function observe(path: string, body: unknown, way: Way = 'as is'): Promise<Observed> {
    const before = await scrape(gateway.url);
    const response = await sendNow(path, body, way);
    const id = String(response.headers['x-request-id']);
    const line = await lineOf(id);
    const after = await scrape(gateway.url);
    return { response, names: headerNames(response), id, viaFastify: seenByFastify.has(id), line, moved: movements(before, after) };
  }

  /** Until the stored entry itself answers (read from the store, not the flight that filled it). */
  async function stored(path: string, body: unknown): Promise<void> {
    const answeredByStore = await until(async () => {
      const reads = writes.reads;
      const response = await sendNow(path, body);
      return response.headers['x-cache'] === 'HIT' && writes.reads > reads;
    }, 5_000);
    expect(answeredByStore).toBe(true);
  }

  /** The checks every hit passes, whatever kind. */
  function expectHit(hit: Observed, layout: Layout, form: Form, prompt: string): void {
    expect(hit.response.status).toBe(200);
    const content = form.stream ? SSE_CONTENT : JSON_CONTENT;
    expect(hit.names.slice(0, HIT_HEAD.length + content.length)).toEqual([...HIT_HEAD, ...content]);
    expect(hit.id).toMatch(UUID);
    expect(hit.response.headers['x-gateway-provider']).toBe(layout.provider);
    expect(hit.response.headers['x-cache']).toBe('HIT');
    expect(hit.response.headers['age']).toMatch(/^\d+$/);
    if (!form.stream) expect(Number(hit.response.headers['content-length'])).toBe(hit.response.body.length);
    expect(answerText(hit.response, form)).toBe(answerFor({ messages: [{ content: prompt }] }));
    if (form.stream) {
      const parsed = parseStream(hit.response.body.toString('utf8'));
      expect(parsed.done).toBe(true);
      expect(parsed.chunks.some((chunk) => chunk.choices?.length === 0 && chunk.usage)).toBe(form.usage);
    }
    expect(hit.line).toMatchObject({ status: 200, cache: 'HIT', provider: layout.provider, model: layout.model, bytes: hit.response.body.length });
    expect(hit.moved.get(`gateway_cache_hits_total{endpoint=chat.completions}`)).toBe(1);
    expect(hit.moved.get(`gateway_requests_total{cache=HIT,endpoint=chat.completions,model=${layout.model},provider=${layout.provider},status=200}`)).toBe(1);
    const tokens = [...hit.moved.keys()].filter((id) => id.startsWith('gateway_tokens_total{cache=hit'));
    expect(tokens).toHaveLength(2);
  }

  /** Two answers to the same entry in the same form: one answer. */
  function expectSameAnswer(a: Observed, b: Observed): void {
    expect(b.response.status).toBe(a.response.status);
    expect(b.names).toEqual(a.names);
    expect(b.response.headers['x-gateway-provider']).toBe(a.response.headers['x-gateway-provider']);
    expect(b.response.headers['x-cache']).toBe(a.response.headers['x-cache']);
    expect(b.response.headers['content-type']).toBe(a.response.headers['content-type']);
    expect(b.response.body.equals(a.response.body)).toBe(true);
    expect(b.moved).toEqual(a.moved);
    expect(Object.keys(b.line)).toEqual(Object.keys(a.line));
    expect(comparable(b.line)).toEqual(comparable(a.line));
  }

  describe.each(LAYOUTS)('$prefix', (layout) => {
    const path = `${layout.prefix}/chat/completions`;
    const chatOf = (prompt: string, extra: object = {}): Record<string, unknown> => ({
      model: layout.model,
      messages: [{ role: 'user', content: prompt }],
      ...extra,
    });

    it.each(FILLS)('a stored entry filled as $name answers every form alike, sent as is, with a query string or chunked', async (fill) => {
      const prompt = unique('parity-stored');
      const miss = await sendNow(path, chatOf(prompt, fill.extra));
      expect(miss.headers['x-cache']).toBe('MISS');
      await stored(path, chatOf(prompt, fill.extra));
      for (const form of FORMS) {
        const hits: Observed[] = [];
        for (const way of WAYS) hits.push(await observe(path, chatOf(prompt, form.extra), way));
        expect(hits.map((hit) => hit.viaFastify)).toEqual([false, false, false]);
        for (const hit of hits) expectHit(hit, layout, form, prompt);
        for (const hit of hits.slice(1)) expectSameAnswer(hits[0]!, hit);
      }
    });

    it('legacy completions (both forms) and embeddings: a stored entry gives one answer however the request is sent', async () => {
      const cases = [
        { path: `${layout.prefix}/completions`, body: { model: 'gpt-3.5-turbo-instruct', prompt: unique('parity-legacy') }, forms: FORMS },
        { path: `${layout.prefix}/embeddings`, body: { model: 'text-embedding-3-small', input: unique('parity-embedding') }, forms: FORMS.slice(0, 1) },
      ];
      for (const { path: casePath, body, forms } of cases) {
        expect((await sendNow(casePath, body)).headers['x-cache']).toBe('MISS');
        await stored(casePath, body);
        for (const form of forms) {
          const hits: Observed[] = [];
          for (const way of WAYS) hits.push(await observe(casePath, { ...body, ...form.extra }, way));
          expect(hits.map((hit) => hit.viaFastify)).toEqual([false, false, false]);
          const content = form.stream ? SSE_CONTENT : JSON_CONTENT;
          for (const hit of hits) {
            expect([hit.response.status, hit.response.headers['x-cache']]).toEqual([200, 'HIT']);
            expect(hit.names.slice(0, HIT_HEAD.length + content.length)).toEqual([...HIT_HEAD, ...content]);
          }
          for (const hit of hits.slice(1)) expectSameAnswer(hits[0]!, hit);
        }
      }
    });

    it.each(FILLS)('a flight filled as $name that answered while its entry is being written answers as the stored entry does', async (fill) => {
      const prompt = unique('parity-answered');
      writes.hold();
      try {
        const miss = await sendNow(path, chatOf(prompt, fill.extra));
        expect(miss.headers['x-cache']).toBe('MISS');
        expect(await until(() => writes.waiting === 1, 5_000)).toBe(true);
        const answered = new Map<Form, Observed[]>();
        for (const form of FORMS) {
          const hits: Observed[] = [];
          const reads = writes.reads;
          for (const way of WAYS) hits.push(await observe(path, chatOf(prompt, form.extra), way));
          // Answered by the flight, before any store read (its entry is not written yet anyway).
          expect(hits.map((hit) => hit.viaFastify)).toEqual([false, false, false]);
          expect(writes.reads).toBe(reads);
          answered.set(form, hits);
        }
        expect(writes.waiting).toBe(1);
        await writes.release();
        await stored(path, chatOf(prompt, fill.extra));
        for (const form of FORMS) {
          const fromStore = await observe(path, chatOf(prompt, form.extra));
          expect(fromStore.viaFastify).toBe(false);
          expectHit(fromStore, layout, form, prompt);
          for (const hit of answered.get(form)!) {
            expectHit(hit, layout, form, prompt);
            expectSameAnswer(fromStore, hit);
          }
        }
      } finally {
        await writes.release();
      }
    });

    it.each(FILLS)('a coalesced follower of a flight filled as $name has a hit’s head, body and accounting', async (fill) => {
      for (const form of FORMS) {
        for (const way of ['as is', 'query string'] as const) {
          const prompt = unique('parity-coalesced');
          gate.hold();
          let follower: Observed;
          try {
            const leader = sendNow(path, chatOf(prompt, fill.extra));
            expect(await until(() => gate.waiting === 1, 5_000)).toBe(true);
            const before = await scrape(gateway.url);
            const response = sendNow(path, chatOf(prompt, form.extra), way);
            const joined = await until(
              async () => (await scrape(gateway.url)).sum('gateway_cache_coalesced_total') > before.sum('gateway_cache_coalesced_total'),
              5_000,
            );
            expect(joined).toBe(true);
            gate.release();
            expect((await leader).headers['x-cache']).toBe('MISS');
            const answer = await response;
            const id = String(answer.headers['x-request-id']);
            const line = await lineOf(id);
            const after = await scrape(gateway.url);
            follower = {
              response: answer,
              names: headerNames(answer),
              id,
              viaFastify: seenByFastify.has(id),
              line,
              moved: withoutLeader(movements(before, after)),
            };
          } finally {
            gate.release();
          }
          expect(follower.viaFastify).toBe(false);
          await stored(path, chatOf(prompt, fill.extra));
          const hit = await observe(path, chatOf(prompt, form.extra));
          expectHit(hit, layout, form, prompt);

          expect(follower.response.status).toBe(200);
          expect(follower.response.headers['x-cache']).toBe('COALESCED');
          expect(follower.response.headers['age']).toBeUndefined();
          expect(follower.id).toMatch(UUID);
          // The hit's head with the provider's headers in the place of Age: one head, written once.
          const content = form.stream ? SSE_CONTENT : JSON_CONTENT;
          expect(follower.names.slice(0, 4 + PROVIDER_HEADERS.length + content.length)).toEqual([...HIT_HEAD.slice(0, 4), ...PROVIDER_HEADERS, ...content]);
          expect(follower.names.filter((name) => !PROVIDER_HEADERS.includes(name))).toEqual(hit.names.filter((name) => name !== 'age'));
          expect(follower.response.body.toString('utf8')).toBe(hit.response.body.toString('utf8'));
          expect(asHit(follower.moved)).toEqual(hit.moved);
          expect(Object.keys(follower.line)).toEqual(Object.keys(hit.line));
          expect(comparable(follower.line, 'cache')).toEqual(comparable(hit.line, 'cache'));
          expect(follower.line['cache']).toBe('COALESCED');
        }
      }
    });
  });
});

function answerText(response: WireResponse, form: Form): string {
  const text = response.body.toString('utf8');
  if (form.stream) return streamText(parseStream(text));
  return (JSON.parse(text) as { choices: Array<{ message: { content: string } }> }).choices[0]!.message.content;
}
