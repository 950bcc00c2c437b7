/**
 * A request target has one meaning whatever its spelling. `/v1/./chat/completions`,
 * `/v1/chat/completions/`, `//v1/chat/completions`, `/v1/chat/%63ompletions`, absolute-form
 * `POST http://host/v1/chat/completions`… are the cached route they name: validated, cached
 * (the repeat is a HIT, answered by the cached routes' pipeline), counted in tokens; never a passthrough
 * request that a provider would answer uncounted. Absolute-form works on every route, the
 * passthrough included. What cannot be normalised safely (an encoded `/`, a `\`) is refused
 * with an OpenAI-shaped 400.
 */
import type { IncomingMessage } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { normaliseRequestTarget, targetRefusalOf } from '../src/http/request-target.js';
import { multipartBody, tinyWav } from './helpers/audio.js';
import { unique, until } from './helpers/cache-e2e.js';
import { startFakeUpstream, type FakeUpstream } from './helpers/fake-upstream.js';
import { startGateway, TEST_CLIENT_KEY, type RunningGateway } from './helpers/gateway.js';
import { scrape } from './helpers/metrics-scrape.js';
import { rawExchange, wireRequest, type WireResponse } from './helpers/wire-request.js';

describe('normaliseRequestTarget', () => {
  const normalised = (url: string): string | 'refused' => {
    const request = { url } as IncomingMessage;
    normaliseRequestTarget(request);
    return targetRefusalOf(request) ? 'refused' : (request.url as string);
  };

  it.each([
    ['/v1/chat/completions', '/v1/chat/completions'],
    ['/', '/'],
    ['/v1/files?purpose=a/./b//c/', '/v1/files?purpose=a/./b//c/'],
    ['/v1/.well-known/x', '/v1/.well-known/x'],
    ['/v1/chat/completions.', '/v1/chat/completions.'],
    ['/v1/..x/y', '/v1/..x/y'],
    ['/v1/./chat/completions', '/v1/chat/completions'],
    ['/v1/chat/completions/', '/v1/chat/completions'],
    ['/v1/chat/completions/.', '/v1/chat/completions'],
    ['/v1/chat/completions/?x=1', '/v1/chat/completions?x=1'],
    ['//v1/chat/completions', '/v1/chat/completions'],
    ['/v1//chat///completions', '/v1/chat/completions'],
    ['/v1/x/../chat/completions', '/v1/chat/completions'],
    ['/../../v1/chat/completions', '/v1/chat/completions'],
    ['/v1/chat/%63ompletions', '/v1/chat/completions'],
    ['/%76%31/%43hat/completions', '/v1/Chat/completions'],
    ['/v1/%2e/chat/completions', '/v1/chat/completions'],
    ['/v1/%2E%2E/v1/chat/completions', '/v1/chat/completions'],
    ['/v1/files/a%3Ab%20c', '/v1/files/a%3Ab%20c'],
    ['/v1/files/%zz', '/v1/files/%zz'],
    ['/v1/files/%', '/v1/files/%'],
    ['http://gateway.example/v1/chat/completions', '/v1/chat/completions'],
    ['HTTPS://gateway.example:8443/openai/v1/./embeddings?x=1', '/openai/v1/embeddings?x=1'],
    ['http://gateway.example', '/'],
    ['http://gateway.example?x', '/?x'],
    ['*', '*'],
    ['/v1/chat%2Fcompletions', 'refused'],
    ['/v1/chat%2fcompletions', 'refused'],
    ['/v1/chat%5Ccompletions', 'refused'],
    ['/v1/chat\\completions', 'refused'],
  ])('%s → %s', (url, expected) => {
    expect(normalised(url)).toBe(expected);
  });
});

let fake: FakeUpstream;
let gw: RunningGateway;
/** URLs that reached Fastify's lifecycle (its onRequest hook); the cached routes' requests do not. */
const seenByFastify: string[] = [];
const auth = { authorization: `Bearer ${TEST_CLIENT_KEY}` };

beforeAll(async () => {
  fake = await startFakeUpstream();
  const watch = (app: FastifyInstance): void => {
    app.addHook('onRequest', (request, _reply, done) => {
      seenByFastify.push(request.url);
      done();
    });
  };
  gw = await startGateway(fake, { GATEWAY_API_KEYS: TEST_CLIENT_KEY }, {}, { beforeListen: watch });
  expect((await fetch(`${gw.url}/v1/models`, { headers: auth })).status).toBe(200); // lists fetched
});
beforeEach(() => {
  fake.reset();
  seenByFastify.length = 0;
});
afterAll(async () => {
  gw.app.server.closeAllConnections();
  await gw.close();
  await fake.close();
});

const ROUTES = [
  { path: 'chat/completions', endpoint: 'chat.completions', body: (text: string) => ({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: text }] }) },
  { path: 'completions', endpoint: 'completions', body: (text: string) => ({ model: 'gpt-3.5-turbo-instruct', prompt: text }) },
  { path: 'embeddings', endpoint: 'embeddings', body: (text: string) => ({ model: 'text-embedding-3-small', input: text }) },
] as const;

/** Odd spellings of `${prefix}/${path}` (prefix '/v1' or '/openai/v1'). */
function spellings(prefix: string, path: string, origin: string): string[] {
  const [first, ...rest] = path;
  return [
    `${prefix}/./${path}`,
    `${prefix}/${path}/`,
    `/${prefix}/${path}`,
    `${prefix}//${path}`,
    `${prefix}/x/../${path}`,
    `${prefix}/%2e/${path}`,
    `${prefix}/%${first!.charCodeAt(0).toString(16)}${rest.join('')}`,
    `${origin}${prefix}/${path}`,
  ];
}

function post(target: string, body: unknown): Promise<WireResponse> {
  return wireRequest(gw.url, target, { headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify(body) });
}

describe.each(['/v1', '/openai/v1'])('odd spellings of the cached routes under %s', (prefix) => {
  it.each(ROUTES)("$path: every spelling is validated, cached (the repeat is a HIT) and counted in tokens, by the cached routes' pipeline", async (route) => {
    const canonical = `${prefix}/${route.path}`;
    for (const target of spellings(prefix, route.path, gw.url)) {
      fake.reset();
      seenByFastify.length = 0;
      const body = route.body(unique(target));
      const before = await scrape(gw.url);
      const first = await post(target, body);
      expect(first.status, `${target}: ${first.body.toString()}`).toBe(200);
      expect(first.headers['x-cache'], target).toBe('MISS');
      const second = await post(target, body);
      expect(second.status, target).toBe(200);
      expect(second.headers['x-cache'], target).toBe('HIT');
      expect(second.body.equals(first.body), target).toBe(true);
      // The provider was asked once, on the route's own path.
      expect(
        fake.completionCalls().map((call) => call.path.replace(/^\/openai/, '')),
        target,
      ).toEqual([`/v1/${route.path}`]);
      // The cached routes' pipeline served both under the normal spelling (the route of their log
      // lines); neither reached Fastify (which would have matched an odd one to the passthrough).
      expect(
        seenByFastify.filter((url) => url !== '/metrics'),
        target,
      ).toEqual([]);
      for (const answer of [first, second]) {
        const id = String(answer.headers['x-request-id']);
        const line = () => gw.logs.map((text) => JSON.parse(text) as Record<string, unknown>).find((l) => l['msg'] === 'request' && l['id'] === id);
        expect(await until(() => line() !== undefined, 2_000), target).toBe(true);
        expect(line()?.['route'], target).toBe(canonical);
      }
      const after = await scrape(gw.url);
      const tokens = (cache: string) => after.sum('gateway_tokens_total', { cache }) - before.sum('gateway_tokens_total', { cache });
      expect(tokens('miss'), target).toBeGreaterThan(0);
      expect(tokens('hit'), target).toBe(tokens('miss'));
      const requests = (cache: string) =>
        after.sum('gateway_requests_total', { endpoint: route.endpoint, cache }) - before.sum('gateway_requests_total', { endpoint: route.endpoint, cache });
      expect([requests('MISS'), requests('HIT')], target).toEqual([1, 1]);
    }
  });

  it('an odd spelling is validated as the route is: a body without messages is a 400, not forwarded', async () => {
    const response = await post(`${prefix}/./chat/completions/`, { model: 'gpt-4o-mini' });
    expect(response.status).toBe(400);
    expect(JSON.parse(response.body.toString()).error.code).toBe('missing_messages');
    expect(fake.requests).toHaveLength(0);
  });
});

describe('the passthrough', () => {
  const { body, contentType } = multipartBody({ model: 'whisper-1' }, { name: 'file', filename: 'a.wav', type: 'audio/wav', data: tinyWav() });

  it('absolute-form: POST http://host/v1/audio/transcriptions is forwarded and answered', async () => {
    const response = await wireRequest(gw.url, `${gw.url}/v1/audio/transcriptions`, { headers: { ...auth, 'content-type': contentType }, body });
    expect(response.status, response.body.toString()).toBe(200);
    const [upstream] = fake.requests;
    expect(upstream?.path).toBe('/v1/audio/transcriptions');
    expect(upstream?.raw.equals(body)).toBe(true);
  });

  it('an odd spelling is forwarded under its normal form, the query as sent', async () => {
    fake.queue.push({ status: 200, body: { object: 'list', data: [] } });
    const response = await wireRequest(gw.url, '/v1//files/./?purpose=batch&x=a/../b', { method: 'GET', headers: auth });
    expect(response.status).toBe(200);
    expect(fake.requests.map((r) => r.path + r.query)).toEqual(['/v1/files?purpose=batch&x=a/../b']);
  });
});

describe('targets that cannot be normalised safely', () => {
  it.each(['/v1/chat%2Fcompletions', '/openai/v1/chat%2fcompletions', '/v1/audio%5Ctranscriptions'])(
    '%s: 400 in OpenAI shape, nothing forwarded, one log line',
    async (target) => {
      const response = await post(target, ROUTES[0].body('refused'));
      expect(response.status).toBe(400);
      expect(response.headers['content-type']).toMatch(/^application\/json/);
      expect(response.headers['x-request-id']).toBeTruthy();
      const { error } = JSON.parse(response.body.toString()) as { error: { type: string; code: string; message: string } };
      expect(error).toMatchObject({ type: 'invalid_request_error', code: 'invalid_request' });
      expect(fake.requests).toHaveLength(0);
      const line = gw.logs.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.id === response.headers['x-request-id']);
      expect(line?.status).toBe(400);
    },
  );

  it('a literal backslash in the path (read as "/" by URL parsers): 400, nothing forwarded', async () => {
    const { text } = await rawExchange(
      gw.url,
      `GET /v1/chat\\completions HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer ${TEST_CLIENT_KEY}\r\nConnection: close\r\n\r\n`,
    );
    expect(text).toMatch(/^HTTP\/1\.1 400 /);
    expect(text).toContain('"type":"invalid_request_error"');
    expect(fake.requests).toHaveLength(0);
  });
});
