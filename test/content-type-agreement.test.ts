/**
 * A cache hit is answered by the hit fast path before Fastify sees the request; anything else
 * goes through Fastify, whose body parser decides which Content-Types are JSON. The two must
 * agree on every header value: a request Fastify refuses (415) must not be answered 200 from
 * the cache because its body happens to be cached. Each Content-Type below is sent with a body
 * that is cached (the fast path's case) and with one that is not (Fastify's case): the same
 * status both ways, and the expected one where the media type grammar is clear.
 */
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unique } from './helpers/cache-e2e.js';
import { startFakeUpstream, type FakeUpstream } from './helpers/fake-upstream.js';
import { startGateway, TEST_CLIENT_KEY, type RunningGateway } from './helpers/gateway.js';
import { wireRequest, type WireResponse } from './helpers/wire-request.js';

let fake: FakeUpstream;
let gw: RunningGateway;
/** Request ids that reached Fastify's lifecycle; a hit answered by the fast path never does. */
const seenByFastify = new Set<string>();
const cachedBody = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: unique('cached') }] });

function send(contentType: string, body: string): Promise<WireResponse> {
  return wireRequest(gw.url, '/v1/chat/completions', { headers: { authorization: `Bearer ${TEST_CLIENT_KEY}`, 'content-type': contentType }, body });
}

beforeAll(async () => {
  fake = await startFakeUpstream();
  const watch = (app: FastifyInstance): void => {
    app.addHook('onRequest', (request, _reply, done) => {
      seenByFastify.add(request.id);
      done();
    });
  };
  gw = await startGateway(fake, { GATEWAY_API_KEYS: TEST_CLIENT_KEY }, {}, { beforeListen: watch });
  expect((await fetch(`${gw.url}/v1/models`, { headers: { authorization: `Bearer ${TEST_CLIENT_KEY}` } })).status).toBe(200);
  const stored = await send('application/json', cachedBody);
  expect(stored.status).toBe(200);
  expect((await send('application/json', cachedBody)).headers['x-cache']).toBe('HIT');
});
afterAll(async () => {
  gw.app.server.closeAllConnections();
  await gw.close();
  await fake.close();
});

/** [Content-Type, the status both paths must give; undefined: only that they agree]. */
const TABLE: Array<[string, number | undefined]> = [
  ['application/json', 200],
  ['application/json; charset=utf-8', 200],
  ['application/json;charset=utf-8', 200],
  ['application/json; charset="utf-8"', 200],
  ['application/json ; charset=utf-8', 200],
  ['application/json\t;charset=utf-8', 200],
  ['Application/JSON', 200],
  ['APPLICATION/JSON; CHARSET=UTF-8', 200],
  ['application/json;', 200],
  ['application/json;;', 200],
  ['application/json; garbage', 200],
  ['application/json; charset=latin1', undefined],
  ['application/json garbage', 415],
  ['application/json\tgarbage', 415],
  ['application/json,text/plain', 415],
  ['application/json, text/plain', 415],
  ['application/json/x', 415],
  ['application/jsonx', 415],
  ['application/json-patch+json', 415],
  ['application/vnd.api+json', 415],
  ['application /json', 415],
  ['application/ json', 415],
  ['application', 415],
  ['json', 415],
  ['application/*', 415],
  ['*/*', 415],
  ['undefined', 415],
  ['application/x-www-form-urlencoded', 415],
  ['text/plain', undefined],
  ['text/json', 415],
];

describe('Content-Type: the hit fast path and Fastify agree', () => {
  it.each(TABLE)('%j', async (contentType, expected) => {
    const hit = await send(contentType, cachedBody);
    const miss = await send(contentType, JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: unique('miss') }] }));
    expect(hit.status, `cached body: ${hit.body.toString()}`).toBe(miss.status);
    if (expected !== undefined) expect(miss.status, miss.body.toString()).toBe(expected);
    if (hit.status === 200) {
      expect(hit.headers['x-cache']).toBe('HIT');
      // Every JSON spelling Fastify accepts is still a fast-path hit.
      expect(seenByFastify.has(String(hit.headers['x-request-id']))).toBe(false);
    } else expect(JSON.parse(hit.body.toString())).toMatchObject({ error: { type: 'invalid_request_error' } });
  });
});
