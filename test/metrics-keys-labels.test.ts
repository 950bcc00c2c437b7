/**
 * Which keys are cooling (gateway_upstream_keys by provider and state, never a key), and the
 * model label rules of Accounting on their own: exact ids, forced prefixes, Groq's own
 * provider-named ids, snapshots, and the one log line for an unpriced model.
 */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Accounting } from '../src/accounting.js';
import { GatewayMetrics } from '../src/metrics.js';
import { loadPrices } from '../src/pricing/prices.js';
import { startFakeUpstream, type FakeUpstream } from './helpers/fake-upstream.js';
import { startGateway, TEST_OPENAI_KEYS, type RunningGateway } from './helpers/gateway.js';
import { parseMetrics, scrape, waitForModelLists } from './helpers/metrics-scrape.js';

describe('gateway_upstream_keys', () => {
  let fake: FakeUpstream;
  let gw: RunningGateway;
  beforeAll(async () => {
    fake = await startFakeUpstream();
    gw = await startGateway(fake, { UPSTREAM_MAX_RETRIES: '0' });
    await waitForModelLists(gw.url);
  });
  afterAll(async () => {
    await gw.close();
    await fake.close();
  });

  async function ask(content: string): Promise<number> {
    const response = await fetch(`${gw.baseURL}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'cache-control': 'no-store' },
      body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content }] }),
    });
    await response.arrayBuffer();
    return response.status;
  }

  it('shows a rate-limited key as cooling and a rejected one as disabled, by count only', async () => {
    const [first, second] = TEST_OPENAI_KEYS as [string, string];
    fake.keyResponses.set(first, {
      status: 429,
      headers: { 'retry-after': '120' },
      body: { error: { message: 'Rate limit reached', type: 'requests', code: 'rate_limit_exceeded' } },
    });
    // Rotation reaches the limited key within two requests; the other key answers them.
    expect(await ask('one')).toBe(200);
    expect(await ask('two')).toBe(200);
    let now = await scrape(gw.url);
    expect(now.sum('gateway_upstream_keys', { provider: 'openai', state: 'cooling' })).toBe(1);
    expect(now.sum('gateway_upstream_keys', { provider: 'openai', state: 'active' })).toBe(1);
    expect(now.sum('gateway_upstream_errors_total', { provider: 'openai', status: '429' })).toBe(1);

    fake.keyResponses.set(second, {
      status: 401,
      body: { error: { message: 'Incorrect API key provided', type: 'invalid_request_error', code: 'invalid_api_key' } },
    });
    expect(await ask('three')).not.toBe(200);
    now = await scrape(gw.url);
    expect(now.sum('gateway_upstream_keys', { provider: 'openai', state: 'cooling' })).toBe(1);
    expect(now.sum('gateway_upstream_keys', { provider: 'openai', state: 'disabled' })).toBe(1);
    expect(now.sum('gateway_upstream_keys', { provider: 'openai', state: 'active' })).toBe(0);
    expect(now.sum('gateway_upstream_keys', { provider: 'groq', state: 'active' })).toBe(1);
    expect(now.sum('gateway_upstream_errors_total', { provider: 'openai', status: '401' })).toBe(1);
    for (const key of TEST_OPENAI_KEYS) {
      expect(now.text).not.toContain(key);
      expect(now.text).not.toContain(key.slice(3, 22));
    }
  });
});

describe('Accounting model labels', () => {
  const lines: string[] = [];
  const log = pino(
    { level: 'info' },
    new Writable({
      write: (chunk: Buffer, _e, done) => {
        lines.push(chunk.toString());
        done();
      },
    }),
  );
  const listed = new Set(['groq/compound', 'gpt-4o-2024-08-06', 'whisper-large-v3', 'openai/gpt-oss-120b']);
  const metrics = new GatewayMetrics(() => []);
  const accounting = new Accounting(metrics, loadPrices(undefined), (model) => listed.has(model), log);

  it.each([
    ['openai', 'gpt-4o-mini', 'gpt-4o-mini'],
    ['openai', 'gpt-4o-2024-08-06', 'gpt-4o-2024-08-06'], // listed: its own id
    ['openai', 'gpt-4o-2031-12-31', 'gpt-4o'], // not listed: the priced id it bills as
    ['openai', 'gpt-4o-mini-9999', 'gpt-4o-mini'],
    ['openai', 'openai/gpt-4o-mini', 'gpt-4o-mini'], // forced prefix, stripped before forwarding
    ['groq', 'groq/llama-3.1-8b-instant', 'llama-3.1-8b-instant'],
    ['groq', 'groq/compound', 'groq/compound'], // Groq's own id that starts with a provider name
    ['groq', 'openai/gpt-oss-120b', 'openai/gpt-oss-120b'],
    ['groq', 'whisper-large-v3', 'whisper-large-v3'],
    ['openai', 'gpt-random-xyz123', 'other'],
    ['openai', 'openai/', 'other'],
    ['groq', 'gpt-4o-mini', 'other'], // priced, but for another provider, and nobody lists it
    ['openai', '', 'other'],
    ['openai', 'constructor', 'other'],
    ['openai', '__proto__', 'other'],
  ] as const)('%s %j → %j', (provider, model, label) => {
    expect(accounting.modelLabel(provider, model)).toBe(label);
  });

  it('with no provider (the request was refused before routing): "other" unless listed', () => {
    expect(accounting.modelLabel(undefined, 'gpt-4o-mini')).toBe('other');
    expect(accounting.modelLabel(undefined, 'whisper-large-v3')).toBe('whisper-large-v3');
    expect(accounting.modelLabel(undefined, undefined)).toBe('other');
  });

  it('unpriced models: tokens counted, no cost, one log line per label however many requests', async () => {
    for (let i = 0; i < 3; i++) {
      accounting.record('groq', 'whisper-large-v3', { prompt_tokens: 4, completion_tokens: 6, total_tokens: 10 }, 'miss');
      accounting.record('openai', `gpt-unpriced-${i}`, { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 }, 'miss');
    }
    const text = parseMetrics(await metrics.registry.metrics());
    expect(text.sum('gateway_tokens_total', { provider: 'groq', model: 'whisper-large-v3' })).toBe(30);
    expect(text.sum('gateway_tokens_total', { provider: 'openai', model: 'other' })).toBe(6);
    expect(text.select('gateway_cost_usd_total', { model: 'whisper-large-v3' })).toEqual([]);
    const said = lines.filter((line) => line.includes('no price for this model'));
    expect(said).toHaveLength(2);
    expect(said.join('')).not.toContain('gpt-unpriced');
  });

  it('a usage with cached prompt tokens is billed at the cached rate', async () => {
    const before = parseMetrics(await metrics.registry.metrics()).sum('gateway_cost_usd_total', { provider: 'openai', model: 'gpt-4o-mini' });
    accounting.record('openai', 'gpt-4o-mini', { prompt_tokens: 1_000_000, completion_tokens: 0, prompt_tokens_details: { cached_tokens: 1_000_000 } }, 'miss');
    const after = parseMetrics(await metrics.registry.metrics()).sum('gateway_cost_usd_total', { provider: 'openai', model: 'gpt-4o-mini' });
    expect(after - before).toBeCloseTo(0.075, 12);
  });
});
