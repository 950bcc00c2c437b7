/**
 * One rule for a request's cache outcome, in its X-Cache header, its metrics' `cache` label and
 * its log line (request-log.ts, cacheOutcomeOf): a MISS is a lookup that found nothing and
 * whose own upstream call was sent, and only MISSes count in gateway_cache_misses_total. A 429
 * refused by the key pool before any upstream call is BYPASS (it used to be a miss: the hit
 * ratio fell while keys were rate limited); a client that leaves (499) keeps the outcome it had
 * reached; a request that never reached the cache decision (unknown model, a body never
 * finished) is BYPASS in the metrics and in its log line alike (the line used to have no cache).
 */
import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import type { RunningGateway } from './helpers/gateway.js';
import { TEST_OPENAI_KEYS } from './helpers/gateway.js';
import { scrape, type Scrape } from './helpers/metrics-scrape.js';
import { eventually, setUpGatewayE2e, uniqueContent } from './helpers/upstream-e2e.js';

const e2e = setUpGatewayE2e();
const ENDPOINT = 'chat.completions';

interface LogLine {
  msg?: string;
  id?: string;
  status?: number;
  cache?: string;
}

/** The request's one log line, once written (when the response ended or the client left). */
async function lineOf(gw: RunningGateway, id: string): Promise<LogLine> {
  let line: LogLine | undefined;
  await eventually(() => {
    line = gw.logs.map((text) => JSON.parse(text) as LogLine).find((l) => l.msg === 'request' && l.id === id);
    return line !== undefined;
  });
  return line as LogLine;
}

async function post(gw: RunningGateway, id: string, body: Record<string, unknown>): Promise<{ status: number; xCache: string | null }> {
  const response = await fetch(`${gw.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-request-id': id },
    body: JSON.stringify(body),
  });
  await response.text();
  return { status: response.status, xCache: response.headers.get('x-cache') };
}

const chatBody = (extra: Record<string, unknown> = {}) => ({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: uniqueContent('rule') }], ...extra });

/** Counter changes between two scrapes. */
function changes(before: Scrape, after: Scrape) {
  return {
    misses: after.sum('gateway_cache_misses_total', { endpoint: ENDPOINT }) - before.sum('gateway_cache_misses_total', { endpoint: ENDPOINT }),
    requests: (labels: Record<string, string>) =>
      after.sum('gateway_requests_total', { endpoint: ENDPOINT, ...labels }) - before.sum('gateway_requests_total', { endpoint: ENDPOINT, ...labels }),
  };
}

/** Every MISS in gateway_requests_total is one in gateway_cache_misses_total, and nothing else is. */
function expectMissesAgree(scraped: Scrape): void {
  expect(scraped.sum('gateway_cache_misses_total', { endpoint: ENDPOINT })).toBe(scraped.sum('gateway_requests_total', { endpoint: ENDPOINT, cache: 'MISS' }));
}

describe('the cache outcome of requests that do not get an answer from the cache or upstream', () => {
  it('every key cooling: the 429 refused before any upstream call is BYPASS, not a miss, in header, metrics and log', async () => {
    const gw = await e2e.startWarmGateway();
    for (const key of TEST_OPENAI_KEYS) e2e.fake.keyResponses.set(key, { status: 429, headers: { 'retry-after': '60' } });
    const start = await scrape(gw.url);

    // The first one asks upstream (each key once): a miss, whatever upstream answered.
    const asked = await post(gw, 'rule-429-asked', chatBody());
    expect(asked).toEqual({ status: 429, xCache: 'MISS' });
    expect((await lineOf(gw, 'rule-429-asked')).cache).toBe('MISS');
    expect(e2e.fake.completionCalls()).toHaveLength(2);

    const afterAsked = await scrape(gw.url);
    const refused = await post(gw, 'rule-429-refused', chatBody());
    expect(refused).toEqual({ status: 429, xCache: 'BYPASS' });
    expect(e2e.fake.completionCalls()).toHaveLength(2);
    expect(await lineOf(gw, 'rule-429-refused')).toMatchObject({ status: 429, cache: 'BYPASS' });
    const end = await scrape(gw.url);
    expect(changes(start, afterAsked).misses).toBe(1);
    expect(changes(afterAsked, end).misses).toBe(0);
    expect(changes(afterAsked, end).requests({ cache: 'BYPASS', status: '429' })).toBe(1);
    expect(changes(afterAsked, end).requests({ cache: 'MISS' })).toBe(0);
    expectMissesAgree(end);
  });

  it('an unknown model’s 404: BYPASS in the metrics and in the log line', async () => {
    const gw = await e2e.startWarmGateway();
    const before = await scrape(gw.url);
    expect((await post(gw, 'rule-404', chatBody({ model: 'no-such-model-anywhere' }))).status).toBe(404);
    expect(await lineOf(gw, 'rule-404')).toMatchObject({ status: 404, cache: 'BYPASS' });
    const after = await scrape(gw.url);
    expect(changes(before, after).requests({ provider: 'none', cache: 'BYPASS', status: '404' })).toBe(1);
    expect(changes(before, after).misses).toBe(0);
  });

  it('a client gone mid-stream after its upstream call (499) is a miss, in the metrics and the log line', async () => {
    const gw = await e2e.startWarmGateway();
    e2e.fake.options.chunkDelayMs = 200;
    const before = await scrape(gw.url);
    const controller = new AbortController();
    const response = await fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': 'rule-499-stream' },
      body: JSON.stringify(chatBody({ stream: true })),
      signal: controller.signal,
    });
    expect(response.headers.get('x-cache')).toBe('MISS');
    const reader = response.body!.getReader();
    await reader.read();
    controller.abort();
    await reader.read().catch(() => undefined);
    expect(await lineOf(gw, 'rule-499-stream')).toMatchObject({ status: 499, cache: 'MISS' });
    const after = await scrape(gw.url);
    expect(changes(before, after).misses).toBe(1);
    expect(changes(before, after).requests({ cache: 'MISS', status: '499' })).toBe(1);
    expectMissesAgree(after);
  });

  it('a client gone before its body arrived (499) never reached the cache: BYPASS in the metrics and the log line', async () => {
    const gw = await e2e.startWarmGateway();
    const before = await scrape(gw.url);
    const { port } = new URL(gw.url);
    const socket = connect(Number(port), '127.0.0.1');
    socket.on('error', () => undefined);
    await new Promise<void>((resolve) => socket.once('connect', resolve));
    socket.write(
      'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200\r\nX-Request-Id: rule-499-body\r\n\r\n{"model":',
    );
    // Let the gateway take the request before the client leaves (generous: nothing to await).
    await new Promise((resolve) => setTimeout(resolve, 300));
    socket.destroy();
    expect(await lineOf(gw, 'rule-499-body')).toMatchObject({ status: 499, cache: 'BYPASS' });
    const after = await scrape(gw.url);
    expect(changes(before, after).requests({ cache: 'BYPASS', status: '499' })).toBe(1);
    expect(changes(before, after).misses).toBe(0);
  });
});
