/**
 * A store whose reads throw where they stand (a defect in an embedded store, which answers
 * without a promise) costs requests nothing: the cache counts as unavailable and every request
 * is answered from upstream, X-Cache: BYPASS, on the hit fast path and on the ordinary path alike.
 */
import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { chat, chatBody, parseStream, unique } from './helpers/cache-e2e.js';
import { startFakeUpstream, type FakeUpstream } from './helpers/fake-upstream.js';
import { startGateway, type RunningGateway } from './helpers/gateway.js';
import { ThrowingStore } from './helpers/throwing-store.js';

/** POSTs without a content-length (chunked), which the hit fast path leaves to the ordinary path. */
function postChunked(url: string, body: unknown): Promise<{ status: number; xCache: string | undefined; text: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        const xCache = res.headers['x-cache'];
        resolve({ status: res.statusCode ?? 0, xCache: typeof xCache === 'string' ? xCache : undefined, text: Buffer.concat(chunks).toString() });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.write(JSON.stringify(body));
    req.end();
  });
}

describe('a store whose reads throw', () => {
  let fake: FakeUpstream;
  let gateway: RunningGateway;
  const store = new ThrowingStore();

  beforeAll(async () => {
    fake = await startFakeUpstream();
    gateway = await startGateway(fake, { LOG_LEVEL: 'warn' }, { store });
    expect((await fetch(`${gateway.url}/v1/models`)).status).toBe(200);
  });
  afterAll(async () => {
    gateway?.app.server.closeAllConnections();
    await gateway?.close();
    await fake?.close();
  });
  beforeEach(() => {
    fake.reset();
  });

  it('answers from upstream on the hit fast path, JSON and stream, the same request twice', async () => {
    const body = chatBody(unique('broken store'));
    const readsBefore = store.reads;
    for (const form of [body, body, { ...body, stream: true }]) {
      const answer = await chat(gateway, form);
      expect(answer.status).toBe(200);
      expect(answer.xCache).toBe('BYPASS');
      if ('stream' in form) expect(parseStream(answer.text).done).toBe(true);
      else expect(JSON.parse(answer.text)).toMatchObject({ object: 'chat.completion' });
    }
    expect(fake.completionCalls()).toHaveLength(3);
    // Read once each (the fast path's read is handed on, not repeated).
    expect(store.reads - readsBefore).toBe(3);
  });

  it('answers from upstream on the ordinary path, which reads the store itself', async () => {
    const readsBefore = store.reads;
    const answer = await postChunked(`${gateway.url}/v1/chat/completions`, chatBody(unique('broken store, chunked')));
    expect(answer.status).toBe(200);
    expect(answer.xCache).toBe('BYPASS');
    expect(JSON.parse(answer.text)).toMatchObject({ object: 'chat.completion' });
    expect(store.reads - readsBefore).toBe(1);
    expect(fake.completionCalls()).toHaveLength(1);
  });
});
