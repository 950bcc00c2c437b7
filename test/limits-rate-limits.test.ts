/**
 * Requests and upstream tokens per minute per user, on both counter stores, with a clock the test
 * controls: USER_RPM counts every request but health and metrics (hits included) and refuses the
 * one past the limit with 429 `rate_limit_exceeded` and retry-after to the minute's end; USER_TPM
 * counts the tokens the provider reported and refuses the next paid call once they reach the
 * limit, while hits still pass. And the openai SDK, with its default retries, gets a budget's 429
 * once, with the message: no retry reaches the gateway or the upstream.
 */
import OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import { BACKENDS, chat, chatBody, unique } from './helpers/cache-e2e.js';
import { TEST_CLIENT_KEY } from './helpers/gateway.js';
import { AUTH, as, paidAnswer, spend, useLimitedGateways } from './helpers/limits.js';
import { scrape } from './helpers/metrics-scrape.js';

for (const backend of BACKENDS) {
  describe(`rate limits (${backend} counters)`, () => {
    const setup = useLimitedGateways(backend);
    const { clock } = setup;

    it('USER_RPM: every route but health and metrics counts; the request past the limit gets retry-after to the minute', async () => {
      const running = await setup.start({ USER_RPM: '3' });
      clock.set('2099-06-15T12:00:45Z');
      for (const path of ['/healthz', '/readyz', '/metrics', '/healthz']) expect((await fetch(running.url + path)).status).toBe(200);
      const body = chatBody(unique('rpm'));
      expect((await chat(running, body, as('ann'))).status).toBe(200);
      expect((await chat(running, body, as('ann'))).xCache).toBe('HIT');
      expect((await fetch(`${running.url}/v1/models`, { headers: as('ann') })).status).toBe(200);
      const refused = await chat(running, body, as('ann'));
      expect(refused.status).toBe(429);
      expect(JSON.parse(refused.text).error).toEqual({
        message: 'Rate limit reached: at most 3 requests per minute per user; retry in 15 s.',
        type: 'rate_limit_error',
        code: 'rate_limit_exceeded',
      });
      expect(refused.headers.get('retry-after')).toBe('15');
      expect(refused.headers.get('retry-after-ms')).toBe('15000');
      // The model list route (Fastify's side) is refused the same way.
      const models = await fetch(`${running.url}/v1/models`, { headers: as('ann') });
      expect(models.status).toBe(429);
      expect((await models.json()).error.code).toBe('rate_limit_exceeded');
      // Another user has a minute of their own.
      expect((await chat(running, body, as('bob'))).status).toBe(200);
      // The next minute, Ann is let through again.
      clock.set('2099-06-15T12:01:00Z');
      expect((await chat(running, body, as('ann'))).status).toBe(200);
      expect((await scrape(running.url)).sum('gateway_limited_total', { reason: 'rpm' })).toBe(2);
      expect(setup.fake.completionCalls()).toHaveLength(1);
    });

    it("USER_TPM: the provider's tokens count; the paid call after they reach the limit is refused, a hit is not", async () => {
      const running = await setup.start({ USER_TPM: '10' });
      clock.set('2099-06-15T12:00:20Z');
      const cached = chatBody(unique('tpm cached'));
      setup.fake.queue.push(paidAnswer(0, 9));
      expect((await chat(running, cached, as('ann'))).status).toBe(200);
      // 9 of 10: one more call may start.
      expect((await spend(setup, running, 'ann', 0, 1)).status).toBe(200);
      // 10 of 10: the next paid call is refused, before anything is sent.
      const refused = await chat(running, chatBody(unique('tpm over')), as('ann'));
      expect(refused.status).toBe(429);
      expect(JSON.parse(refused.text).error.message).toBe('Rate limit reached: at most 10 upstream tokens per minute per user; retry in 40 s.');
      expect(refused.headers.get('retry-after')).toBe('40');
      expect(setup.fake.completionCalls()).toHaveLength(2);
      const hit = await chat(running, cached, as('ann'));
      expect(hit.status).toBe(200);
      expect(hit.xCache).toBe('HIT');
      expect((await spend(setup, running, 'bob', 0, 3)).status).toBe(200);
      clock.set('2099-06-15T12:01:00Z');
      expect((await spend(setup, running, 'ann', 0, 1)).status).toBe(200);
      expect((await scrape(running.url)).sum('gateway_limited_total', { reason: 'tpm' })).toBe(1);
    });

    it('the openai SDK (default retries) gets the budget refusal once, as a 429 with its message, and does not retry', async () => {
      const running = await setup.start({ USER_BUDGET_DAILY_USD: '0.01' });
      expect((await spend(setup, running, 'ann', 1)).status).toBe(200);
      const client = new OpenAI({ apiKey: TEST_CLIENT_KEY, baseURL: running.baseURL, defaultHeaders: { 'x-openwebui-user-id': 'ann' }, timeout: 15_000 });
      expect(client.maxRetries).toBe(2);
      const upstreamBefore = setup.fake.completionCalls().length;
      const requestsBefore = (await scrape(running.url)).sum('gateway_requests_total', { endpoint: 'chat.completions' });
      const failure = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: unique('sdk') }] }).then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(failure).toBeInstanceOf(OpenAI.RateLimitError);
      const error = failure as InstanceType<typeof OpenAI.RateLimitError>;
      expect(error.status).toBe(429);
      expect(error.code).toBe('budget_exceeded');
      expect(error.message).toMatch(/^429 Your daily budget of \$0\.01 is spent \(\$0\.01 used today\); it resets at 2099-06-16 00:00 UTC/);
      const after = await scrape(running.url);
      expect(after.sum('gateway_requests_total', { endpoint: 'chat.completions' }) - requestsBefore).toBe(1);
      expect(after.sum('gateway_limited_total', { reason: 'budget' })).toBe(1);
      expect(setup.fake.completionCalls()).toHaveLength(upstreamBefore);
    });

    it('a forwarded request with a body (paid by the provider) is refused while a budget is spent', async () => {
      const running = await setup.start({ BUDGET_DAILY_USD: '0.01' });
      expect((await spend(setup, running, 'ann', 1)).status).toBe(200);
      const form = new FormData();
      form.append('model', 'whisper-1');
      form.append('file', new Blob([Buffer.alloc(64)], { type: 'audio/wav' }), 'a.wav');
      const refused = await fetch(`${running.url}/v1/audio/transcriptions`, { method: 'POST', headers: AUTH, body: form });
      expect(refused.status).toBe(429);
      expect(refused.headers.get('x-should-retry')).toBe('false');
      expect((await refused.json()).error.code).toBe('budget_exceeded');
      expect(setup.fake.requests.filter((request) => request.path.includes('audio'))).toHaveLength(0);
      // Reading the model list costs nothing and passes.
      expect((await fetch(`${running.url}/v1/models`, { headers: AUTH })).status).toBe(200);
    });
  });
}
