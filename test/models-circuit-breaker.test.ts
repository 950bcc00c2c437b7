/**
 * The circuit breaker per provider: after repeated failures a provider is skipped, so a request
 * with a fallback goes to it at once instead of waiting for the provider's timeout first; after
 * a short time one request probes the provider (half-open), and its answer restores it. The state
 * is the gauge gateway_provider_up and the providers of /readyz's body.
 */
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CircuitBreaker } from '../src/upstream/circuit-breaker.js';
import { setUpFakeUpstream } from './helpers/fake-upstream-fixture.js';
import { startGateway } from './helpers/gateway.js';
import { scrape, waitForModelLists } from './helpers/metrics-scrape.js';
import { writeModelsFile } from './helpers/models-file.js';
import { chat, pause } from './helpers/upstream-e2e.js';

describe('the breaker alone', () => {
  const options = { failureThreshold: 3, openMs: 1_000, maxOpenMs: 3_000 };

  it('opens after the threshold of failures in a row, lets one probe through once its time passed, and doubles its time when the probe fails', () => {
    let now = 0;
    const changes: boolean[] = [];
    const breaker = new CircuitBreaker(
      options,
      (up) => changes.push(up),
      () => now,
    );
    breaker.failure();
    breaker.failure();
    breaker.success();
    breaker.failure();
    breaker.failure();
    expect(breaker.current).toBe('closed');
    expect(breaker.tryPass()).toBe(true);
    breaker.failure();
    expect([breaker.current, breaker.tryPass(), breaker.retryInMs]).toEqual(['open', false, 1_000]);
    expect(changes).toEqual([false]);
    now = 999;
    expect(breaker.tryPass()).toBe(false);
    now = 1_000;
    expect(breaker.current).toBe('half-open');
    expect(breaker.tryPass()).toBe(true);
    // One probe at a time.
    expect(breaker.tryPass()).toBe(false);
    breaker.failure();
    expect([breaker.current, breaker.retryInMs]).toEqual(['open', 2_000]);
    now = 3_000;
    expect(breaker.tryPass()).toBe(true);
    breaker.failure();
    now = 6_000;
    expect(breaker.tryPass()).toBe(true);
    breaker.failure();
    // Capped at maxOpenMs.
    expect(breaker.retryInMs).toBe(3_000);
    now = 9_000;
    expect(breaker.tryPass()).toBe(true);
    breaker.success();
    expect([breaker.current, breaker.tryPass()]).toEqual(['closed', true]);
    expect(changes).toEqual([false, true]);
    // Closed again, its time back to the start.
    for (let i = 0; i < 3; i++) breaker.failure();
    expect(breaker.retryInMs).toBe(1_000);
  });

  it('frees the probe slot when the probe never reports (its clients left)', () => {
    let now = 0;
    const breaker = new CircuitBreaker(
      options,
      () => {},
      () => now,
    );
    for (let i = 0; i < 3; i++) breaker.failure();
    now = 1_000;
    expect(breaker.tryPass()).toBe(true);
    now = 1_999;
    expect(breaker.tryPass()).toBe(false);
    now = 2_000;
    expect(breaker.tryPass()).toBe(true);
  });
});

const fixture = setUpFakeUpstream();

/** OpenAI's address: either never answers (`hanging`) or passes every request on to the fake. */
let openai: Server;
let hanging = true;
let openaiRequests = 0;

beforeAll(async () => {
  openai = createServer((req, res) => {
    // Completions only: the model list is fetched again now and then, whatever the breaker says.
    if (req.url?.endsWith('/chat/completions')) openaiRequests++;
    if (hanging) return;
    const target = new URL(fixture.fake.url);
    const upstream = httpRequest({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => openai.listen(0, '127.0.0.1', resolve));
});
afterAll(async () => {
  openai.closeAllConnections();
  await new Promise<void>((resolve) => openai.close(() => resolve()));
});

async function readyProviders(url: string): Promise<Record<string, { state: string; retryInMs?: number }>> {
  const response = await fetch(`${url}/readyz`);
  return ((await response.json()) as { providers: Record<string, { state: string; retryInMs?: number }> }).providers;
}

describe('the breaker in the gateway', () => {
  it('skips a provider that keeps timing out (no timeout wait), then a probe restores it', async () => {
    const HEADERS_TIMEOUT_MS = 1_000;
    const OPEN_MS = 1_500;
    const models = await writeModelsFile({ fallbacks: { 'gpt-4o-mini': ['groq/llama-3.3-70b-versatile'] } });
    const gw = fixture.closeAfterTest(
      await startGateway(
        fixture.fake,
        {
          MODELS_FILE: models.path,
          OPENAI_BASE_URL: `http://127.0.0.1:${(openai.address() as AddressInfo).port}/v1`,
          UPSTREAM_HEADERS_TIMEOUT_MS: String(HEADERS_TIMEOUT_MS),
          UPSTREAM_MAX_RETRIES: '0',
        },
        { breaker: { failureThreshold: 2, openMs: OPEN_MS, maxOpenMs: 10_000 } },
      ),
    );
    await waitForModelLists(gw.url, ['groq']);
    expect((await scrape(gw.url)).sum('gateway_provider_up', { provider: 'openai' })).toBe(1);
    expect((await readyProviders(gw.url)).openai).toEqual({ state: 'closed' });

    // Two requests meet the timeout, then fall back.
    for (let i = 0; i < 2; i++) {
      const startedAt = performance.now();
      const answer = await chat(gw.url, { model: 'gpt-4o-mini' });
      expect(answer.status).toBe(200);
      expect(answer.headers.get('x-gateway-fallback')).toBe('gpt-4o-mini');
      expect(performance.now() - startedAt).toBeGreaterThanOrEqual(HEADERS_TIMEOUT_MS - 20);
    }
    expect((await scrape(gw.url)).sum('gateway_provider_up', { provider: 'openai' })).toBe(0);
    const open = (await readyProviders(gw.url)).openai;
    expect(open?.state).toBe('open');
    expect(open?.retryInMs).toBeGreaterThan(0);

    // Open: straight to the fallback, OpenAI not even asked.
    const before = openaiRequests;
    for (const stream of [false, true]) {
      const startedAt = performance.now();
      const answer = await chat(gw.url, { model: 'gpt-4o-mini', stream });
      const took = performance.now() - startedAt;
      expect(answer.status).toBe(200);
      expect(answer.headers.get('x-gateway-fallback')).toBe('gpt-4o-mini');
      expect(answer.headers.get('x-gateway-provider')).toBe('groq');
      expect(took).toBeLessThan(HEADERS_TIMEOUT_MS / 2);
    }
    expect(openaiRequests).toBe(before);
    // A request with nowhere else to go still tries the provider (and its wait is its own).
    const lonely = await chat(gw.url, { model: 'gpt-4o' });
    expect(lonely.status).toBe(504);
    expect(openaiRequests).toBe(before + 1);

    // OpenAI recovers; once the open time has passed, one request probes it and closes the breaker.
    hanging = false;
    await pause(OPEN_MS + 50);
    expect((await readyProviders(gw.url)).openai).toEqual({ state: 'half-open' });
    const probe = await chat(gw.url, { model: 'gpt-4o-mini' });
    expect(probe.status).toBe(200);
    expect(probe.headers.get('x-gateway-fallback')).toBeNull();
    expect(probe.headers.get('x-gateway-provider')).toBe('openai');
    expect(probe.headers.get('x-gateway-model')).toBe('gpt-4o-mini');
    expect((await scrape(gw.url)).sum('gateway_provider_up', { provider: 'openai' })).toBe(1);
    expect((await readyProviders(gw.url)).openai).toEqual({ state: 'closed' });
    const metrics = await scrape(gw.url);
    expect(metrics.sum('gateway_fallbacks_total', { provider: 'openai', to_provider: 'groq' })).toBe(4);
  });
});
