/**
 * The three upstream timeouts, end to end: connect (TCP + TLS handshake), response headers,
 * and idle time between SSE chunks. Each is set small through its environment variable; each
 * ends in an OpenAI-shaped 504 (or, mid-stream, an SSE error event the openai SDK raises),
 * never a hang or a silent truncation, and a timed-out answer is never cached.
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { answerFor } from './helpers/fake-upstream.js';
import { startGateway, TEST_CLIENT_KEY, type RunningGateway } from './helpers/gateway.js';
import { readChatStream } from './helpers/sdk-clients.js';
import { chat, eventually, metricValue, setUpGatewayE2e, uniqueContent } from './helpers/upstream-e2e.js';

// The gateways start warm (model lists fetched), so slowness set on the fake only meets completions.
const e2e = setUpGatewayE2e();

function sdk(gw: RunningGateway): OpenAI {
  return new OpenAI({ apiKey: TEST_CLIENT_KEY, baseURL: gw.baseURL, maxRetries: 0 });
}

describe('connect timeout (UPSTREAM_CONNECT_TIMEOUT_MS)', () => {
  let silent: Server;
  const sockets = new Set<Socket>();

  beforeAll(async () => {
    // Accepts TCP but never answers the TLS ClientHello: the handshake, which undici's connect
    // timeout covers, never completes.
    silent = createServer((socket) => {
      // Read (and drop) what arrives, or this side would never notice the gateway hanging up.
      socket.resume();
      sockets.add(socket);
      socket.on('error', () => undefined);
      socket.on('close', () => sockets.delete(socket));
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  });

  afterAll(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => silent.close(() => resolve()));
  });

  it('answers 504 upstream_timeout when the connection cannot be set up in time, after its bounded retries', async () => {
    const { port } = silent.address() as AddressInfo;
    let connections = 0;
    silent.on('connection', () => connections++);
    e2e.gateway = await startGateway(e2e.fake, {
      OPENAI_BASE_URL: `https://127.0.0.1:${port}/v1`,
      UPSTREAM_CONNECT_TIMEOUT_MS: '250',
      UPSTREAM_MAX_RETRIES: '1',
    });
    const startedAt = performance.now();
    const answer = await chat(e2e.gateway.url, { model: 'gpt-4o-mini' });
    const took = performance.now() - startedAt;
    expect(answer.status).toBe(504);
    expect(answer.json).toEqual({ error: { message: expect.stringContaining('openai'), type: 'server_error', code: 'upstream_timeout' } });
    // The model list fetch and the completion each tried twice (1 + 1 retry).
    expect(connections).toBe(4);
    // Nowhere near the headers timeout (600 s by default): it was the connect timeout (which
    // undici checks on a coarse timer, so ~1 s per attempt at the least).
    expect(took).toBeLessThan(10_000);
    expect(await metricValue(e2e.gateway.url, 'gateway_upstream_errors_total', { provider: 'openai', status: '0' })).toBe(4);
    // Every half-open connection was given up by the gateway.
    await eventually(() => expect(sockets.size).toBe(0), 5_000);
  });
});

describe('response headers timeout (UPSTREAM_HEADERS_TIMEOUT_MS)', () => {
  it('answers 504 upstream_timeout, without a retry, and closes the upstream request', async () => {
    const gw = await e2e.startWarmGateway({ UPSTREAM_HEADERS_TIMEOUT_MS: '300' });
    e2e.fake.options.latencyMs = 3_000;
    const startedAt = performance.now();
    const answer = await chat(gw.url);
    expect(performance.now() - startedAt).toBeLessThan(3_000);
    expect(answer.status).toBe(504);
    expect(answer.headers.get('content-type')).toContain('application/json');
    expect(answer.json).toEqual({ error: { message: expect.stringContaining('did not answer in time'), type: 'server_error', code: 'upstream_timeout' } });
    expect(e2e.fake.completionCalls()).toHaveLength(1);
    await eventually(() => expect(e2e.fake.completionCalls()[0]?.aborted).toBe(true), 5_000);
  });

  it('applies to stream requests too (no head, so a JSON 504)', async () => {
    const gw = await e2e.startWarmGateway({ UPSTREAM_HEADERS_TIMEOUT_MS: '300' });
    e2e.fake.options.latencyMs = 3_000;
    const answer = await chat(gw.url, { stream: true });
    expect(answer.status).toBe(504);
    expect(answer.json).toEqual({ error: expect.objectContaining({ code: 'upstream_timeout' }) });
  });
});

describe('idle timeout between SSE chunks (UPSTREAM_IDLE_TIMEOUT_MS)', () => {
  it('ends a stalled stream with an error event the openai SDK raises; the partial answer is not cached', async () => {
    const gw = await e2e.startWarmGateway({ UPSTREAM_IDLE_TIMEOUT_MS: '300' });
    e2e.fake.stallStreamAfterChunks = 2;
    const content = uniqueContent('stall');
    const full = answerFor({ messages: [{ content }] });
    const stream = await sdk(gw).chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content }], stream: true });
    const { text, failure } = await readChatStream(stream);
    expect(failure).toBeInstanceOf(OpenAI.APIError);
    expect((failure as Error).message).toMatch(/did not answer in time/);
    expect(text.length).toBeGreaterThan(0);
    expect(full.startsWith(text) && text !== full).toBe(true);
    // The stalled upstream request was closed, not left hanging.
    await eventually(() => expect(e2e.fake.completionCalls()[0]?.aborted).toBe(true), 5_000);
    expect(e2e.fake.completionCalls()).toHaveLength(1);

    // The raw stream ends with the error event, no [DONE].
    const raw = await chat(gw.url, { stream: true });
    const last = raw.text.split('\n\n').filter(Boolean).at(-1) ?? '';
    expect(JSON.parse(last.replace(/^data: /, ''))).toEqual({ error: expect.objectContaining({ type: 'server_error', code: 'upstream_timeout' }) });
    expect(raw.text).not.toContain('[DONE]');

    // Not cached: the same question goes upstream again.
    e2e.fake.stallStreamAfterChunks = undefined;
    e2e.fake.requests.length = 0;
    const again = await chat(gw.url, { content });
    expect(again.status).toBe(200);
    expect(again.headers.get('x-cache')).toBe('MISS');
    expect(e2e.fake.completionCalls()).toHaveLength(1);
  });

  it('is an idle timeout, not a total one: a slow stream that keeps flowing completes', async () => {
    const gw = await e2e.startWarmGateway({ UPSTREAM_IDLE_TIMEOUT_MS: '400' });
    e2e.fake.options.chunkDelayMs = 150;
    const content = uniqueContent('slow');
    const startedAt = performance.now();
    const stream = await sdk(gw).chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content }], stream: true });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
    expect(text).toBe(answerFor({ messages: [{ content }] }));
    // At least four content chunks, 150 ms apart: longer in total than the idle timeout.
    expect(performance.now() - startedAt).toBeGreaterThan(400);
  });
});
