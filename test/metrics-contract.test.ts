/**
 * /metrics as promised to dashboards and alerts: every gateway metric with its exact type and
 * label names in the very first scrape, prom-client's default process and Node.js metrics,
 * METRICS_TOKEN, and label sets no client can grow.
 */
import { describe, expect, it } from 'vitest';
import { BUILTIN_PRICES } from '../src/pricing/builtin-prices.js';
import { startFakeUpstream, type CannedResponse } from './helpers/fake-upstream.js';
import { setUpFakeUpstream } from './helpers/fake-upstream-fixture.js';
import { freePort } from './helpers/free-port.js';
import { startGateway, TEST_CLIENT_KEY, TEST_GROQ_KEYS, TEST_OPENAI_KEYS, type RunningGateway } from './helpers/gateway.js';
import { parseMetrics, scrape, waitForModelLists } from './helpers/metrics-scrape.js';

const CONTRACT: Array<[name: string, type: string, labels: string[]]> = [
  ['gateway_requests_total', 'counter', ['endpoint', 'provider', 'model', 'cache', 'status']],
  ['gateway_cache_hits_total', 'counter', ['endpoint']],
  ['gateway_cache_misses_total', 'counter', ['endpoint']],
  ['gateway_cache_coalesced_total', 'counter', ['endpoint']],
  ['gateway_request_duration_seconds', 'histogram', ['endpoint', 'cache']],
  ['gateway_time_to_first_byte_seconds', 'histogram', ['endpoint', 'cache']],
  ['gateway_upstream_duration_seconds', 'histogram', ['provider']],
  ['gateway_upstream_errors_total', 'counter', ['provider', 'status']],
  ['gateway_tokens_total', 'counter', ['provider', 'model', 'type', 'cache']],
  ['gateway_cost_usd_total', 'counter', ['provider', 'model']],
  ['gateway_cost_saved_usd_total', 'counter', ['provider', 'model']],
  ['gateway_upstream_keys', 'gauge', ['provider', 'state']],
  ['gateway_cache_up', 'gauge', []],
  ['gateway_cache_errors_total', 'counter', ['op']],
  ['gateway_budget_spent_usd', 'gauge', ['budget']],
  ['gateway_limited_total', 'counter', ['reason']],
];

/** The samples a metric family produces: histograms as _bucket (plus le), _sum and _count. */
function sampleNames(name: string, type: string): string[] {
  return type === 'histogram' ? [`${name}_bucket`, `${name}_sum`, `${name}_count`] : [name];
}

const fixture = setUpFakeUpstream();

async function gateway(env: Record<string, string> = {}): Promise<RunningGateway> {
  const gw = fixture.closeAfterTest(await startGateway(fixture.fake, { UPSTREAM_MAX_RETRIES: '0', ...env }));
  if (!env.METRICS_TOKEN) await waitForModelLists(gw.url);
  return gw;
}

async function post(gw: RunningGateway, path: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  const response = await fetch(`${gw.baseURL}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  await response.arrayBuffer();
  return response;
}

function chat(model: string, content: string): Record<string, unknown> {
  return { model, messages: [{ role: 'user', content }] };
}

/** A 200 chat completion for a model the fake does not know (the fake answers 404 for those). */
function cannedCompletion(model: string, usage: Record<string, unknown>): CannedResponse {
  return {
    status: 200,
    body: {
      id: 'chatcmpl-canned',
      object: 'chat.completion',
      created: 1_700_000_000,
      model,
      choices: [{ index: 0, message: { role: 'assistant', content: 'canned' }, finish_reason: 'stop' }],
      usage,
    },
  };
}

describe('the first scrape after start-up', () => {
  it('has every contract metric, with its type, its exact label names and at least one (zero) sample', async () => {
    const gw = fixture.closeAfterTest(await startGateway(fixture.fake, {}));
    const first = await scrape(gw.url);
    for (const [name, type, labels] of CONTRACT) {
      expect(first.types.get(name), name).toBe(type);
      for (const sampleName of sampleNames(name, type)) {
        const samples = first.select(sampleName);
        expect(samples.length, `${sampleName} has samples`).toBeGreaterThan(0);
        const expected = sampleName.endsWith('_bucket') ? [...labels, 'le'] : labels;
        for (const sample of samples) expect(Object.keys(sample.labels).sort(), sampleName).toEqual([...expected].sort());
      }
    }
    // Nothing happened yet: every counter and histogram is at zero.
    for (const [name, type] of CONTRACT) {
      if (type === 'gauge') continue;
      for (const sampleName of sampleNames(name, type)) expect(first.sum(sampleName), sampleName).toBe(0);
    }
    // Once the model lists (fetched at start-up) came back, those are the only upstream calls timed.
    const settled = await waitForModelLists(gw.url);
    for (const provider of ['openai', 'groq']) {
      expect(settled.sum('gateway_upstream_duration_seconds_count', { provider })).toBe(fixture.fake.requests.filter((r) => r.flavour === provider).length);
    }
  });

  it('starts the hit/miss/coalesced counters, durations and per-model money at zero for what will be counted', async () => {
    const gw = await gateway();
    const first = await scrape(gw.url);
    for (const endpoint of ['chat.completions', 'completions', 'embeddings']) {
      for (const name of ['gateway_cache_hits_total', 'gateway_cache_misses_total', 'gateway_cache_coalesced_total']) {
        expect(first.select(name, { endpoint }), `${name}{${endpoint}}`).toHaveLength(1);
      }
      for (const cache of ['HIT', 'MISS', 'BYPASS', 'COALESCED']) {
        expect(first.select('gateway_request_duration_seconds_count', { endpoint, cache })).toHaveLength(1);
        expect(first.select('gateway_time_to_first_byte_seconds_count', { endpoint, cache })).toHaveLength(1);
      }
    }
    for (const [provider, models] of Object.entries(BUILTIN_PRICES)) {
      for (const model of Object.keys(models ?? {})) {
        expect(first.select('gateway_cost_usd_total', { provider, model }), `${provider}/${model}`).toHaveLength(1);
        expect(first.select('gateway_cost_saved_usd_total', { provider, model })).toHaveLength(1);
        expect(first.select('gateway_tokens_total', { provider, model })).toHaveLength(4);
      }
    }
    for (const provider of ['openai', 'groq']) {
      expect(first.labelValues('gateway_upstream_keys', 'state')).toEqual(new Set(['active', 'cooling', 'disabled']));
      expect(first.select('gateway_upstream_errors_total', { provider, status: '0' })).toHaveLength(1);
      expect(first.select('gateway_upstream_errors_total', { provider, status: '429' })).toHaveLength(1);
    }
    expect(first.labelValues('gateway_cache_errors_total', 'op')).toEqual(new Set(['get', 'set', 'delete', 'connect']));
  });

  it('reports the loaded keys by provider and state, and the embedded cache as up', async () => {
    const gw = await gateway();
    const first = await scrape(gw.url);
    expect(first.sum('gateway_upstream_keys', { provider: 'openai', state: 'active' })).toBe(TEST_OPENAI_KEYS.length);
    expect(first.sum('gateway_upstream_keys', { provider: 'groq', state: 'active' })).toBe(TEST_GROQ_KEYS.length);
    expect(first.sum('gateway_upstream_keys', { state: 'cooling' })).toBe(0);
    expect(first.sum('gateway_cache_up')).toBe(1);
  });

  it("includes prom-client's default process and Node.js metrics", async () => {
    const gw = await gateway();
    const first = await scrape(gw.url);
    for (const name of [
      'process_cpu_user_seconds_total',
      'process_resident_memory_bytes',
      'process_start_time_seconds',
      'process_open_fds',
      'nodejs_heap_size_used_bytes',
      'nodejs_heap_size_total_bytes',
      'nodejs_eventloop_lag_seconds',
      'nodejs_version_info',
    ]) {
      expect(first.select(name).length, name).toBeGreaterThan(0);
    }
    expect(first.sum('process_resident_memory_bytes')).toBeGreaterThan(1_000_000);
  });

  it('never shows a provider or client key, not even in part', async () => {
    const gw = await gateway({ GATEWAY_API_KEYS: TEST_CLIENT_KEY });
    await post(gw, '/chat/completions', chat('gpt-4o-mini', 'keys stay out of metrics'), { authorization: `Bearer ${TEST_CLIENT_KEY}` });
    const text = (await scrape(gw.url)).text;
    for (const key of [...TEST_OPENAI_KEYS, ...TEST_GROQ_KEYS, TEST_CLIENT_KEY]) {
      expect(text).not.toContain(key);
      expect(text).not.toContain(key.slice(3, 22));
    }
  });
});

describe('METRICS_TOKEN', () => {
  it('when set: 401 in OpenAI error shape without it, with a wrong one or another scheme; 200 with it', async () => {
    const gw = await gateway({ METRICS_TOKEN: 'metrics-secret-1234', GATEWAY_API_KEYS: TEST_CLIENT_KEY });
    for (const authorization of [undefined, 'Bearer wrong-token', 'Bearer metrics-secret-12345', 'Basic metrics-secret-1234', `Bearer ${TEST_CLIENT_KEY}`]) {
      const response = await fetch(`${gw.url}/metrics`, authorization === undefined ? {} : { headers: { authorization } });
      expect(response.status, String(authorization)).toBe(401);
      expect(response.headers.get('content-type')).toContain('application/json');
      const body = (await response.json()) as { error: { type: string; code: string; message: string } };
      expect(body.error.code).toBe('invalid_api_key');
      expect(body.error.message).not.toContain('metrics-secret-1234');
    }
    const ok = await fetch(`${gw.url}/metrics`, { headers: { authorization: 'Bearer metrics-secret-1234' } });
    expect(ok.status).toBe(200);
    expect(ok.headers.get('content-type')).toContain('text/plain');
    expect(parseMetrics(await ok.text()).types.get('gateway_requests_total')).toBe('counter');
  });

  it('when unset: /metrics is open, even with GATEWAY_API_KEYS', async () => {
    const gw = await gateway({ GATEWAY_API_KEYS: TEST_CLIENT_KEY });
    expect((await fetch(`${gw.url}/metrics`)).status).toBe(200);
  });
});

describe('bounded label sets', () => {
  it('a routable model nobody lists or prices is "other", and adds no label value anywhere', async () => {
    const gw = await gateway();
    const before = await scrape(gw.url);
    // The fake answers 404 model_not_found for ids it does not know …
    const unknown = await post(gw, '/chat/completions', chat('gpt-random-xyz123', 'hello'));
    expect(unknown.status).toBe(404);
    // … and a canned 200 with usage lets the same kind of id reach accounting.
    fixture.fake.queue.push(cannedCompletion('gpt-random-abc987', { prompt_tokens: 5, completion_tokens: 7, total_tokens: 12 }));
    const answered = await post(gw, '/chat/completions', chat('gpt-random-abc987', 'hello'));
    expect(answered.status).toBe(200);
    expect(fixture.fake.completionCalls().map((r) => r.json?.model)).toEqual(['gpt-random-xyz123', 'gpt-random-abc987']);

    const after = await scrape(gw.url);
    expect(after.text).not.toContain('gpt-random');
    for (const name of ['gateway_requests_total', 'gateway_tokens_total', 'gateway_cost_usd_total', 'gateway_cost_saved_usd_total']) {
      const added = [...after.labelValues(name, 'model')].filter((m) => !before.labelValues(name, 'model').has(m));
      expect(
        added.filter((m) => m !== 'other'),
        name,
      ).toEqual([]);
    }
    expect(after.sum('gateway_requests_total', { model: 'other', provider: 'openai', status: '404' })).toBe(1);
    expect(after.sum('gateway_requests_total', { model: 'other', provider: 'openai', status: '200' })).toBe(1);
    expect(after.sum('gateway_tokens_total', { model: 'other', type: 'prompt' })).toBe(5);
    expect(after.sum('gateway_tokens_total', { model: 'other', type: 'completion' })).toBe(7);
    // Tokens counted, no cost: said once in the log, not once per request.
    fixture.fake.queue.push(cannedCompletion('gpt-random-abc987', { prompt_tokens: 5, completion_tokens: 7, total_tokens: 12 }));
    await post(gw, '/chat/completions', chat('gpt-random-abc987', 'hello'), { 'cache-control': 'no-cache' });
    expect(after.sum('gateway_cost_usd_total', { model: 'other' })).toBe(0);
    const unpriced = gw.logs.filter((line) => line.includes('no price for this model'));
    expect(unpriced).toHaveLength(1);
    expect(unpriced[0]).toContain('"model":"other"');
    expect(unpriced[0]).not.toContain('gpt-random');
    expect((await scrape(gw.url)).sum('gateway_tokens_total', { model: 'other', type: 'prompt' })).toBe(10);
  });

  it('made-up "snapshot" ids of a priced model (gpt-4o-mini-0001, -0002, …) are counted and priced as gpt-4o-mini, not one series each', async () => {
    const gw = await gateway();
    const usage = { prompt_tokens: 1000, completion_tokens: 2000, total_tokens: 3000 };
    for (const suffix of ['0001', '0002', '2031-01-01']) {
      fixture.fake.queue.push(cannedCompletion(`gpt-4o-mini-${suffix}`, usage));
      expect((await post(gw, '/chat/completions', chat(`gpt-4o-mini-${suffix}`, 'snapshot'))).status).toBe(200);
    }
    const after = await scrape(gw.url);
    expect(after.text).not.toMatch(/gpt-4o-mini-(0001|0002|2031)/);
    expect(after.sum('gateway_requests_total', { model: 'gpt-4o-mini', status: '200' })).toBe(3);
    expect(after.sum('gateway_tokens_total', { model: 'gpt-4o-mini', type: 'completion', cache: 'miss' })).toBe(6000);
    const price = BUILTIN_PRICES.openai!['gpt-4o-mini']!;
    expect(after.sum('gateway_cost_usd_total', { provider: 'openai', model: 'gpt-4o-mini' })).toBeCloseTo(
      (3 * (1000 * price.input + 2000 * price.output)) / 1e6,
      12,
    );
  });

  it('a forced provider prefix (openai/gpt-4o-mini) is labelled and priced as the model it is forwarded as', async () => {
    const gw = await gateway();
    const response = await post(gw, '/chat/completions', chat('openai/gpt-4o-mini', 'forced'));
    expect(response.status).toBe(200);
    expect(fixture.fake.completionCalls()[0]?.json?.model).toBe('gpt-4o-mini');
    const after = await scrape(gw.url);
    expect(after.sum('gateway_requests_total', { model: 'gpt-4o-mini', provider: 'openai', cache: 'MISS', status: '200' })).toBe(1);
    expect(after.sum('gateway_tokens_total', { model: 'gpt-4o-mini', type: 'prompt', cache: 'miss' })).toBe(11);
    expect(after.sum('gateway_cost_usd_total', { model: 'gpt-4o-mini' })).toBeGreaterThan(0);
  });

  it('an id a provider lists but the table does not price keeps its own label, and has tokens without cost', async () => {
    const own = await startFakeUpstream({ openaiModels: ['gpt-4o-mini', 'gpt-listed-unpriced'] });
    try {
      const gw = fixture.closeAfterTest(await startGateway(own, { UPSTREAM_MAX_RETRIES: '0' }));
      await waitForModelLists(gw.url);
      await post(gw, '/chat/completions', chat('gpt-listed-unpriced', 'listed'));
      const after = await scrape(gw.url);
      expect(after.sum('gateway_requests_total', { model: 'gpt-listed-unpriced', status: '200' })).toBe(1);
      expect(after.sum('gateway_tokens_total', { model: 'gpt-listed-unpriced', type: 'prompt' })).toBe(11);
      expect(after.select('gateway_cost_usd_total', { model: 'gpt-listed-unpriced' })).toEqual([]);
    } finally {
      await own.close();
    }
  });

  it('passthrough routes use the same bounded labels, and count the upstream errors they got', async () => {
    const gw = await gateway();
    const response = await post(gw, '/moderations', { model: 'gpt-made-up-moderation', input: 'x' });
    expect(response.status).toBe(404);
    const after = await scrape(gw.url);
    expect(after.text).not.toContain('gpt-made-up-moderation');
    expect(after.sum('gateway_requests_total', { endpoint: 'passthrough', provider: 'openai', model: 'other', status: '404' })).toBe(1);
    expect(after.sum('gateway_upstream_errors_total', { provider: 'openai', status: '404' })).toBe(1);
  });

  it('a passthrough request whose provider cannot be reached counts as upstream error status 0', async () => {
    const closed = await freePort();
    const gw = fixture.closeAfterTest(await startGateway(fixture.fake, { UPSTREAM_MAX_RETRIES: '0', OPENAI_BASE_URL: `http://127.0.0.1:${closed}/v1` }));
    await waitForModelLists(gw.url);
    const before = await scrape(gw.url);
    const response = await post(gw, '/moderations', { input: 'no model named: OpenAI is chosen' });
    expect(response.status).toBe(502);
    const after = await scrape(gw.url);
    expect(
      after.sum('gateway_upstream_errors_total', { provider: 'openai', status: '0' }) -
        before.sum('gateway_upstream_errors_total', { provider: 'openai', status: '0' }),
    ).toBe(1);
    expect(after.sum('gateway_requests_total', { endpoint: 'passthrough', provider: 'openai', status: '502' })).toBe(1);
  });

  it('label values stay within the fixed sets (endpoint, provider, cache, type, state)', async () => {
    const gw = await gateway();
    await post(gw, '/chat/completions', chat('gpt-4o-mini', 'fixed sets'));
    await post(gw, '/chat/completions', chat('gpt-4o-mini', 'fixed sets'));
    await post(gw, '/chat/completions', chat('not-a-routable-model', 'x'));
    await fetch(`${gw.baseURL}/models`);
    const after = await scrape(gw.url);
    const subset = (values: Set<string>, allowed: string[]) => [...values].filter((v) => !allowed.includes(v));
    expect(
      subset(after.labelValues('gateway_requests_total', 'endpoint'), ['chat.completions', 'completions', 'embeddings', 'responses', 'models', 'passthrough']),
    ).toEqual([]);
    expect(subset(after.labelValues('gateway_requests_total', 'provider'), ['openai', 'groq', 'none'])).toEqual([]);
    expect(subset(after.labelValues('gateway_requests_total', 'cache'), ['HIT', 'MISS', 'BYPASS', 'COALESCED', 'PARTIAL'])).toEqual([]);
    expect(subset(after.labelValues('gateway_tokens_total', 'cache'), ['hit', 'miss'])).toEqual([]);
    expect(subset(after.labelValues('gateway_tokens_total', 'type'), ['prompt', 'completion'])).toEqual([]);
    expect(after.text).not.toContain('not-a-routable-model');
    expect(after.sum('gateway_requests_total', { endpoint: 'models', provider: 'none', cache: 'BYPASS', status: '200' })).toBe(1);
  });
});
