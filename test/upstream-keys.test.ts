/**
 * The provider key pool, end to end through the real gateway: a per-key rate limiter in front
 * of the fake upstream answers 429 with each kind of reset hint, and the gateway must cool
 * exactly that key for exactly that long, answer the client from another key, report the
 * state in gateway_upstream_keys, and answer 429 / 503 itself when no key is left.
 */
import OpenAI from 'openai';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, TEST_CLIENT_KEY, type RunningGateway } from './helpers/gateway.js';
import { startKeyLimiter, type KeyLimiter, type LimiterRecord, type ResetHint } from './helpers/key-limiter.js';
import { chat, keyGauge, pause, setUpGatewayE2e } from './helpers/upstream-e2e.js';

const OPENAI_KEYS = ['sk-e2e-openai-alpha-aaaaaaaaaaaaaaaa', 'sk-e2e-openai-bravo-bbbbbbbbbbbbbbbb', 'sk-e2e-openai-charlie-cccccccccccccc'];
const GROQ_KEYS = ['gsk_e2e_groq_alpha_dddddddddddddddd', 'gsk_e2e_groq_bravo_eeeeeeeeeeeeeeee'];
const ALL_KEYS = [...OPENAI_KEYS, ...GROQ_KEYS];

// Whatever happened, no log line may carry a key: checked after each test.
const e2e = setUpGatewayE2e(ALL_KEYS);
let limiter: KeyLimiter;

beforeAll(async () => {
  limiter = await startKeyLimiter(e2e.fake);
});

afterAll(async () => {
  await limiter.close();
});

afterEach(() => {
  limiter.reset();
});

async function start(openaiKeys: readonly string[], env: Record<string, string> = {}): Promise<RunningGateway> {
  e2e.gateway = await startGateway(e2e.fake, {
    OPENAI_BASE_URL: limiter.openaiBaseUrl,
    GROQ_BASE_URL: limiter.groqBaseUrl,
    OPENAI_API_KEYS: openaiKeys.join(','),
    GROQ_API_KEYS: GROQ_KEYS.join(','),
    // A default far longer than any test: a key that comes back soon came back by the hint.
    KEY_COOLDOWN_MS: '60000',
    ...env,
  });
  return e2e.gateway;
}

function forwarded(records: readonly LimiterRecord[]): LimiterRecord[] {
  return records.filter((record) => record.status === undefined);
}

describe('rotation', () => {
  it('spreads sequential requests evenly over the active keys, round robin', async () => {
    const gw = await start(OPENAI_KEYS);
    for (let i = 0; i < 30; i++) expect((await chat(gw.url)).status).toBe(200);
    const keys = forwarded(limiter.records).map((record) => record.key);
    expect(keys).toHaveLength(30);
    for (const key of OPENAI_KEYS) expect(keys.filter((used) => used === key)).toHaveLength(10);
    // Strict rotation: no key twice in a row.
    for (let i = 1; i < keys.length; i++) expect(keys[i]).not.toBe(keys[i - 1]);
  });

  it('spreads concurrent requests too, and each provider rotates its own keys', async () => {
    const gw = await start(OPENAI_KEYS);
    const answers = await Promise.all([
      ...Array.from({ length: 24 }, () => chat(gw.url)),
      ...Array.from({ length: 8 }, () => chat(gw.url, { prefix: '/openai/v1', model: 'llama-3.1-8b-instant' })),
    ]);
    expect(answers.map((answer) => answer.status)).toEqual(answers.map(() => 200));
    const count = (key: string) => limiter.records.filter((record) => record.key === key).length;
    for (const key of OPENAI_KEYS) expect(count(key)).toBe(8);
    for (const key of GROQ_KEYS) expect(count(key)).toBe(4);
  });
});

/**
 * Key A may make one request per window; it is used once, then the next request that lands on
 * it gets a 429 with the hint. The gateway must retry that request on another key, keep A out
 * of rotation until the hint's time has passed (and no longer: the default is 60 s), then use
 * A again, and its next request must be accepted (the hint was exact).
 */
const HINT_CASES: Array<{ hint: ResetHint; provider: 'openai' | 'groq'; windowMs: number }> = [
  { hint: 'retry-after-ms', provider: 'openai', windowMs: 900 },
  { hint: 'retry-after', provider: 'openai', windowMs: 1000 },
  { hint: 'http-date', provider: 'openai', windowMs: 900 },
  { hint: 'reset-requests', provider: 'openai', windowMs: 900 },
  { hint: 'reset-tokens', provider: 'openai', windowMs: 900 },
  { hint: 'groq-message', provider: 'groq', windowMs: 900 },
];

describe('a 429 cools exactly that key for as long as the provider says', () => {
  for (const { hint, provider, windowMs } of HINT_CASES) {
    it(`hint: ${hint} (${provider})`, async () => {
      const keys = provider === 'openai' ? OPENAI_KEYS.slice(0, 2) : GROQ_KEYS;
      const [limited, spare] = keys as [string, string];
      const gw = await start(OPENAI_KEYS.slice(0, 2));
      const options = provider === 'openai' ? {} : { prefix: '/openai/v1', model: 'llama-3.1-8b-instant' };
      limiter.limits.set(limited, { limit: 1, windowMs, hint });

      // Back to back until the limited key has been refused once: its window is fresh, so the
      // cooldown that follows is close to the full window.
      const refusal = () => limiter.records.find((record) => record.status === 429);
      for (let i = 0; i < 4 && !refusal(); i++) expect((await chat(gw.url, options)).status).toBe(200);
      const refused = refusal();
      expect(refused?.key).toBe(limited);
      const resetMs = refused?.resetMs ?? 0;
      expect(resetMs).toBeGreaterThan(windowMs / 2);

      // The refused request itself was answered, from the other key.
      const sameRequest = limiter.records.filter((record) => record.content === refused?.content);
      expect(sameRequest.map((record) => [record.key, record.status])).toEqual([
        [limited, 429],
        [spare, undefined],
      ]);

      // While it cools, the gauge shows exactly one cooling key of that provider.
      expect(await keyGauge(gw.url, provider)).toEqual({ active: 1, cooling: 1, disabled: 0 });
      expect((await keyGauge(gw.url, provider === 'openai' ? 'groq' : 'openai')).cooling).toBe(0);

      // Keep asking until the limited key is used again (the default cooldown is 60 s).
      const deadline = Date.now() + windowMs + 4_000;
      let back: LimiterRecord | undefined;
      while (!back && Date.now() < deadline) {
        expect((await chat(gw.url, options)).status).toBe(200);
        back = limiter.records.find((record) => record.key === limited && refused !== undefined && record.at > refused.at);
        await pause(40);
      }
      expect(back, 'the cooled key came back after the hinted time').toBeDefined();
      // Not a request on it before its reset (timers only fire late, so this cannot flake)...
      expect(back!.at - refused!.at).toBeGreaterThanOrEqual(resetMs - 1);
      // ...and the hint was right: the provider accepted it.
      expect(back!.status).toBeUndefined();
      const during = limiter.records.filter((record) => record.at > refused!.at && record.at < back!.at);
      expect(during.length).toBeGreaterThan(0);
      expect(new Set(during.map((record) => record.key))).toEqual(new Set([spare]));
      expect(await keyGauge(gw.url, provider)).toEqual({ active: 2, cooling: 0, disabled: 0 });
      // The log names the key by its short id only (the key itself is checked absent after each test).
      const cooled = gw.logs
        .map((line) => JSON.parse(line) as { msg: string; key?: string; cooldownMs?: number })
        .find((line) => line.msg === 'provider key rate limited; cooling');
      expect(cooled?.key).toMatch(/^k_[0-9a-f]{10}$/);
      // The hint's time, not the 60 s default; every hint but a date (which the clock ages on the
      // way) carries at least the exact wait.
      expect(cooled?.cooldownMs).toBeLessThan(60_000);
      if (hint !== 'http-date') expect(cooled?.cooldownMs).toBeGreaterThanOrEqual(resetMs);
    });
  }

  it('no hint at all: the key cools for KEY_COOLDOWN_MS', async () => {
    const [limited] = OPENAI_KEYS as [string];
    const gw = await start(OPENAI_KEYS.slice(0, 2), { KEY_COOLDOWN_MS: '600' });
    // A window longer than the cooldown: only the default can bring the key back this soon.
    limiter.limits.set(limited, { limit: 1, windowMs: 1_000, hint: 'none' });
    for (let i = 0; i < 4 && !limiter.records.some((record) => record.status === 429); i++) {
      expect((await chat(gw.url)).status).toBe(200);
    }
    const refused = limiter.records.find((record) => record.status === 429);
    expect(refused?.key).toBe(limited);
    expect((await keyGauge(gw.url, 'openai')).cooling).toBe(1);
    let back: LimiterRecord | undefined;
    const deadline = Date.now() + 5_000;
    while (!back && Date.now() < deadline) {
      expect((await chat(gw.url)).status).toBe(200);
      back = limiter.records.find((record) => record.key === limited && record.at > refused!.at);
      await pause(40);
    }
    expect(back).toBeDefined();
    expect(back!.at - refused!.at).toBeGreaterThanOrEqual(600 - 1);
  });
});

describe('every key cooling', () => {
  it('answers 429 itself, OpenAI-shaped, with retry-after(-ms) of the shortest remaining cooldown', async () => {
    const [first, second] = OPENAI_KEYS as [string, string];
    const gw = await start([first, second]);
    limiter.limits.set(first, { limit: 1, windowMs: 900, hint: 'retry-after-ms' });
    limiter.limits.set(second, { limit: 1, windowMs: 1_500, hint: 'retry-after-ms' });
    expect((await chat(gw.url)).status).toBe(200);
    expect((await chat(gw.url)).status).toBe(200);

    const sentAt = performance.now();
    const answer = await chat(gw.url);
    const elapsed = performance.now() - sentAt;
    expect(answer.status).toBe(429);
    expect(answer.headers.get('content-type')).toContain('application/json');
    expect(answer.json).toEqual({ error: { message: expect.stringContaining('rate limited'), type: 'rate_limit_error', code: 'rate_limit_exceeded' } });
    // Both keys were tried for this one request, each refused once.
    const refusals = limiter.records.filter((record) => record.status === 429);
    expect(refusals.map((record) => record.content)).toEqual([answer.content, answer.content]);
    expect(new Set(refusals.map((record) => record.key))).toEqual(new Set([first, second]));

    // The shortest cooldown is the first key's; by the time the gateway answered, no more than
    // the request's own duration can have passed of it.
    const shortest = Math.min(...refusals.map((record) => record.resetMs ?? Infinity));
    const retryAfterMs = Number(answer.headers.get('retry-after-ms'));
    expect(retryAfterMs).toBeLessThanOrEqual(shortest + 1);
    expect(retryAfterMs).toBeGreaterThanOrEqual(shortest - elapsed - 1);
    expect(answer.headers.get('retry-after')).toBe(String(Math.ceil(retryAfterMs / 1000)));
    // A client may retry this one: no x-should-retry: false.
    expect(answer.headers.get('x-should-retry')).toBeNull();
    expect(await keyGauge(gw.url, 'openai')).toEqual({ active: 0, cooling: 2, disabled: 0 });

    // While cooling, the gateway answers without bothering the provider.
    const seen = limiter.records.length;
    expect((await chat(gw.url)).status).toBe(429);
    expect(limiter.records.length).toBe(seen);

    // The openai SDK honours retry-after-ms and gets its answer once a key is free.
    const client = new OpenAI({ apiKey: TEST_CLIENT_KEY, baseURL: gw.baseURL, maxRetries: 3 });
    const completion = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'after the cooldown' }] });
    expect(completion.choices[0]?.message.content).toContain('after the cooldown');
    expect(limiter.records.at(-1)?.key).toBe(first);
  });
});

describe('401 / 403', () => {
  it('disables the rejected key until reload, answers from another, and 503 once every key is rejected', async () => {
    const [rejectedFirst, rejectedLater] = OPENAI_KEYS as [string, string];
    const gw = await start([rejectedFirst, rejectedLater]);
    // Let the gateway fetch the model lists first: a 401 there would disable the key just the same.
    expect((await chat(gw.url)).status).toBe(200);
    limiter.records.length = 0;
    e2e.fake.keyResponses.set(rejectedFirst, {
      status: 401,
      body: { error: { message: 'Incorrect API key provided: sk-e2e-o***aaaa.', type: 'invalid_request_error', code: 'invalid_api_key' } },
    });
    for (let i = 0; i < 6; i++) expect((await chat(gw.url)).status).toBe(200);
    expect(limiter.records.filter((record) => record.key === rejectedFirst)).toHaveLength(1);
    expect(limiter.records.filter((record) => record.key === rejectedLater)).toHaveLength(6);
    expect(await keyGauge(gw.url, 'openai')).toEqual({ active: 1, cooling: 0, disabled: 1 });
    const rejected = gw.logs.map((line) => JSON.parse(line) as { msg: string; key?: string }).filter((line) => line.msg.startsWith('provider key rejected'));
    expect(rejected.map((line) => line.key)).toEqual([expect.stringMatching(/^k_[0-9a-f]{10}$/)]);

    e2e.fake.keyResponses.set(rejectedLater, {
      status: 403,
      body: { error: { message: 'Forbidden', type: 'invalid_request_error', code: 'unsupported_country_region_territory' } },
    });
    const answer = await chat(gw.url);
    expect(answer.status).toBe(503);
    expect(answer.headers.get('content-type')).toContain('application/json');
    expect(answer.headers.get('x-should-retry')).toBe('false');
    expect(answer.json).toEqual({
      error: { message: expect.stringMatching(/every api key of provider openai was rejected/i), type: 'server_error', code: 'provider_keys_rejected' },
    });
    expect(await keyGauge(gw.url, 'openai')).toEqual({ active: 0, cooling: 0, disabled: 2 });

    // Disabled means disabled: later requests do not reach the provider at all.
    const seen = limiter.records.length;
    expect((await chat(gw.url)).status).toBe(503);
    expect(limiter.records.length).toBe(seen);
    // Groq's keys are unaffected.
    expect((await chat(gw.url, { prefix: '/openai/v1', model: 'llama-3.1-8b-instant' })).status).toBe(200);
  });
});
