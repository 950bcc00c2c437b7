/**
 * gateway_time_to_first_byte_seconds means the first byte the client got, for every kind of
 * answer: a live SSE stream (the first event), a proxied body (the upstream's headers and first
 * bytes), a JSON answer (sent whole, so first byte and end coincide).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeUpstream, type FakeUpstream } from './helpers/fake-upstream.js';
import { startGateway, type RunningGateway } from './helpers/gateway.js';
import { scrape, waitForModelLists, type Scrape } from './helpers/metrics-scrape.js';

const SLOW_BODY_MS = 300;

let fake: FakeUpstream;
let slow: Server;
let gw: RunningGateway;

/** An OpenAI stand-in whose speech endpoint sends its first bytes at once and the rest later. */
async function startSlowOpenAI(): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/v1/models') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ object: 'list', data: [{ id: 'tts-1', object: 'model', created: 1, owned_by: 'openai' }] }));
      return;
    }
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'audio/mpeg' });
      res.write(Buffer.alloc(1024, 1));
      setTimeout(() => res.end(Buffer.alloc(1024, 2)), SLOW_BODY_MS);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

function change(before: Scrape, after: Scrape, name: string, labels: Record<string, string>): number {
  return after.sum(name, labels) - before.sum(name, labels);
}

beforeAll(async () => {
  fake = await startFakeUpstream({ chunks: 5 });
  slow = await startSlowOpenAI();
  const { port } = slow.address() as AddressInfo;
  gw = await startGateway(fake, { OPENAI_BASE_URL: `http://127.0.0.1:${port}/v1` });
  await waitForModelLists(gw.url);
});
afterAll(async () => {
  await gw.close();
  slow.closeAllConnections();
  await new Promise((resolve) => slow.close(resolve));
  await fake.close();
});

describe('time to first byte', () => {
  it('a proxied body: when its first bytes left, not when its last did', async () => {
    const series = { endpoint: 'passthrough', cache: 'BYPASS' };
    const before = await scrape(gw.url);
    const response = await fetch(`${gw.baseURL}/audio/speech`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'tts-1', input: 'hello', voice: 'alloy' }),
    });
    expect(response.status).toBe(200);
    expect((await response.arrayBuffer()).byteLength).toBe(2048);
    const after = await scrape(gw.url);
    expect(change(before, after, 'gateway_time_to_first_byte_seconds_count', series)).toBe(1);
    const total = change(before, after, 'gateway_request_duration_seconds_sum', series);
    const ttfb = change(before, after, 'gateway_time_to_first_byte_seconds_sum', series);
    expect(total).toBeGreaterThanOrEqual((SLOW_BODY_MS - 10) / 1000);
    expect(ttfb).toBeGreaterThan(0);
    expect(total - ttfb).toBeGreaterThanOrEqual((SLOW_BODY_MS - 50) / 1000);
  });

  it('a live stream: the first event, well before the last', async () => {
    fake.options.chunkDelayMs = 60;
    try {
      const series = { endpoint: 'chat.completions', cache: 'MISS' };
      const before = await scrape(gw.url);
      const response = await fetch(`${gw.baseURL}/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'llama-3.1-8b-instant', stream: true, messages: [{ role: 'user', content: 'slow groq stream' }] }),
      });
      expect(await response.text()).toContain('[DONE]');
      const after = await scrape(gw.url);
      const total = change(before, after, 'gateway_request_duration_seconds_sum', series);
      const ttfb = change(before, after, 'gateway_time_to_first_byte_seconds_sum', series);
      // Five content chunks, each 60 ms after the one before, all after the role chunk left.
      expect(total - ttfb).toBeGreaterThanOrEqual(0.25);
    } finally {
      fake.options.chunkDelayMs = 0;
    }
  });

  it('a JSON answer: never after the end', async () => {
    const series = { endpoint: 'chat.completions', cache: 'MISS' };
    const before = await scrape(gw.url);
    await (
      await fetch(`${gw.baseURL}/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'llama-3.1-8b-instant', messages: [{ role: 'user', content: 'json answer' }] }),
      })
    ).arrayBuffer();
    const after = await scrape(gw.url);
    const ttfb = change(before, after, 'gateway_time_to_first_byte_seconds_sum', series);
    expect(change(before, after, 'gateway_time_to_first_byte_seconds_count', series)).toBe(1);
    expect(ttfb).toBeGreaterThan(0);
    expect(ttfb).toBeLessThanOrEqual(change(before, after, 'gateway_request_duration_seconds_sum', series));
  });
});
