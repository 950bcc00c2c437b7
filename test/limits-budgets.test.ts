/**
 * Budgets, on both counter stores (memory and a real redis-server), with the real gateway, a fake
 * upstream, and a clock the test controls: each budget refuses exactly when what was paid reaches
 * it (at the cent), before anything is sent upstream, with a 429 `budget_exceeded` that says which
 * budget, how much and when it resets; cache hits and coalesced answers pass a spent budget; a
 * stream is never cut; spending resumes when the day and the month turn.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKENDS, chat, chatBody, post, unique } from './helpers/cache-e2e.js';
import { startGatedUpstream, type GatedUpstream } from './helpers/gated-upstream.js';
import { AUTH, as, paidAnswer, spend as spendFor, useLimitedGateways } from './helpers/limits.js';
import { scrape } from './helpers/metrics-scrape.js';

for (const backend of BACKENDS) {
  describe(`budgets (${backend} counters)`, () => {
    const setup = useLimitedGateways(backend);
    const { clock } = setup;
    const start = (env: Record<string, string>) => setup.start(env);
    const spend = (running: Awaited<ReturnType<typeof start>>, user: string, cents: number) => spendFor(setup, running, user, cents);

    it("the gateway's daily budget refuses the call after the one that reached it, at the cent", async () => {
      const running = await start({ BUDGET_DAILY_USD: '0.03' });
      for (const user of ['ann', 'bob', 'ann']) expect((await spend(running, user, 1)).status).toBe(200);
      expect(setup.fake.completionCalls()).toHaveLength(3);
      const refused = await chat(running, chatBody(unique('over')), as('cid'));
      expect(refused.status).toBe(429);
      expect(refused.headers.get('x-should-retry')).toBe('false');
      const error = JSON.parse(refused.text).error;
      expect(error.code).toBe('budget_exceeded');
      expect(error.message).toBe(
        "This gateway's daily budget of $0.03 is spent ($0.03 used today); it resets at 2099-06-16 00:00 UTC (in 12 h 0 min). Answers already in the cache are still served.",
      );
      // Refused before anything went upstream.
      expect(setup.fake.completionCalls()).toHaveLength(3);
      const metrics = await scrape(running.url);
      expect(metrics.sum('gateway_limited_total', { reason: 'budget' })).toBe(1);
      expect(metrics.sum('gateway_budget_spent_usd', { budget: 'daily' })).toBeCloseTo(0.03, 9);
      expect(metrics.sum('gateway_budget_usd', { budget: 'daily' })).toBe(0.03);
    });

    it('a budget a cent above what was spent still lets the next call through', async () => {
      const running = await start({ BUDGET_MONTHLY_USD: '0.04' });
      for (let i = 0; i < 3; i++) expect((await spend(running, 'ann', 1)).status).toBe(200);
      // $0.03 of $0.04: one more call may start (and may cost more than the cent left).
      expect((await spend(running, 'ann', 5)).status).toBe(200);
      const refused = await chat(running, chatBody(unique('over')), as('ann'));
      expect(refused.status).toBe(429);
      expect(JSON.parse(refused.text).error.message).toMatch(
        /^This gateway's monthly budget of \$0\.04 is spent \(\$0\.08 used this month\); it resets at 2099-07-01 00:00 UTC/,
      );
      expect(setup.fake.completionCalls()).toHaveLength(4);
    });

    it("a user's daily and monthly budgets refuse that user only, each at its cent", async () => {
      const running = await start({ USER_BUDGET_DAILY_USD: '0.02', USER_BUDGET_MONTHLY_USD: '0.03' });
      expect((await spend(running, 'ann', 1)).status).toBe(200);
      expect((await spend(running, 'ann', 1)).status).toBe(200);
      const daily = await chat(running, chatBody(unique('d')), as('ann'));
      expect(daily.status).toBe(429);
      expect(JSON.parse(daily.text).error.message).toMatch(/^Your daily budget of \$0\.02 is spent \(\$0\.02 used today\); it resets at 2099-06-16 00:00 UTC/);
      // Another user is not affected.
      expect((await spend(running, 'bob', 1)).status).toBe(200);
      // Next day: ann's daily budget is back, her monthly one has a cent left.
      clock.set('2099-06-16T00:00:00Z');
      expect((await spend(running, 'ann', 1)).status).toBe(200);
      const monthly = await chat(running, chatBody(unique('m')), as('ann'));
      expect(monthly.status).toBe(429);
      expect(JSON.parse(monthly.text).error.message).toMatch(
        /^Your monthly budget of \$0\.03 is spent \(\$0\.03 used this month\); it resets at 2099-07-01 00:00 UTC \(in 15 days 0 h\)/,
      );
      expect(setup.fake.completionCalls()).toHaveLength(4);
    });

    it('a user without X-OpenWebUI-User-Id is counted by its client key', async () => {
      const running = await start({ USER_BUDGET_DAILY_USD: '0.01' });
      setup.fake.queue.push(paidAnswer(1));
      expect((await chat(running, chatBody(unique('k')), AUTH)).status).toBe(200);
      expect((await chat(running, chatBody(unique('k')), AUTH)).status).toBe(429);
      // An Open WebUI user behind the same key has a budget of its own.
      expect((await spend(running, 'ann', 1)).status).toBe(200);
    });

    it('cache hits pass a spent budget, and cost nothing', async () => {
      const running = await start({ BUDGET_DAILY_USD: '0.01', USER_BUDGET_DAILY_USD: '0.01' });
      const body = chatBody(unique('cached'));
      setup.fake.queue.push(paidAnswer(1));
      expect((await chat(running, body, as('ann'))).status).toBe(200);
      expect((await chat(running, chatBody(unique('new')), as('ann'))).status).toBe(429);
      for (let i = 0; i < 3; i++) {
        const hit = await chat(running, body, as('ann'));
        expect(hit.status).toBe(200);
        expect(hit.xCache).toBe('HIT');
      }
      // As a stream too (rendered from the entry).
      const streamed = await chat(running, { ...body, stream: true }, as('bob'));
      expect(streamed.status).toBe(200);
      expect(streamed.xCache).toBe('HIT');
      expect(setup.fake.completionCalls()).toHaveLength(1);
      expect((await scrape(running.url)).sum('gateway_budget_spent_usd', { budget: 'daily' })).toBeCloseTo(0.01, 9);
    });

    it('an embeddings batch answered wholly from the cache passes a spent budget; one with a new input is refused', async () => {
      const running = await start({ BUDGET_DAILY_USD: '0.01' });
      const inputs = [unique('first'), unique('second')];
      const embed = (input: string[]) => post(running, '/v1/embeddings', { model: 'text-embedding-3-small', input }, as('ann'));
      expect((await embed(inputs)).status).toBe(200);
      expect((await spend(running, 'ann', 1)).status).toBe(200);
      const cached = await embed([inputs[1]!, inputs[0]!]);
      expect(cached.status).toBe(200);
      expect(cached.xCache).toBe('HIT');
      const refused = await embed([inputs[0]!, unique('new')]);
      expect(refused.status).toBe(429);
      expect(refused.headers.get('x-should-retry')).toBe('false');
      expect(JSON.parse(refused.text).error.code).toBe('budget_exceeded');
      expect(setup.fake.requests.filter((request) => request.path.endsWith('/embeddings'))).toHaveLength(1);
    });

    it('a stream that crosses the budget is never cut; the call after it is refused', async () => {
      const running = await start({ BUDGET_DAILY_USD: '0.05' });
      // The fake's chat answers report 11 prompt tokens: this stream costs $0.11, over the budget.
      const stream = await chat(running, chatBody(unique('long stream'), { stream: true }), as('ann'));
      expect(stream.status).toBe(200);
      expect(stream.text.trimEnd().endsWith('data: [DONE]')).toBe(true);
      expect(stream.text).not.toContain('budget');
      const after = await chat(running, chatBody(unique('after')), as('ann'));
      expect(after.status).toBe(429);
      expect(JSON.parse(after.text).error.message).toContain('($0.11 used today)');
    });

    it('spending resumes when the day and the month turn (UTC)', async () => {
      clock.set('2099-12-31T23:59:30Z');
      const running = await start({ BUDGET_DAILY_USD: '0.01', BUDGET_MONTHLY_USD: '0.02' });
      expect((await spend(running, 'ann', 1)).status).toBe(200);
      const refused = await chat(running, chatBody(unique('late')), as('ann'));
      expect(refused.status).toBe(429);
      // The month's budget is not spent: the day's is named, with the minute left.
      expect(JSON.parse(refused.text).error.message).toMatch(/daily budget of \$0\.01 is spent .* resets at 2100-01-01 00:00 UTC \(in 1 min\)/);
      clock.set('2100-01-01T00:00:00Z');
      expect((await spend(running, 'ann', 1)).status).toBe(200);
      const metrics = await scrape(running.url);
      expect(metrics.sum('gateway_budget_spent_usd', { budget: 'daily' })).toBeCloseTo(0.01, 9);
      expect(metrics.sum('gateway_budget_spent_usd', { budget: 'monthly' })).toBeCloseTo(0.01, 9);
    });

    describe('coalesced answers', () => {
      let gate: GatedUpstream;
      beforeAll(async () => {
        gate = await startGatedUpstream(setup.fake.url);
      });
      afterAll(async () => {
        await gate.close();
      });

      it('a user whose budget is spent still receives the answer of a flight under way', async () => {
        const running = await setup.start({ USER_BUDGET_DAILY_USD: '0.01' }, { openaiBaseUrl: `${gate.url}/v1`, groqBaseUrl: `${gate.url}/openai/v1` });
        gate.calls.splice(0);
        expect((await spend(running, 'bob', 1)).status).toBe(200);
        expect((await chat(running, chatBody(unique('bob again')), as('bob'))).status).toBe(429);
        // Ann (with budget left) starts a call the upstream holds; Bob asks the same meanwhile.
        const same = chatBody(unique('shared question'));
        gate.hold();
        setup.fake.queue.push(paidAnswer(1));
        const annAnswer = chat(running, same, as('ann'));
        await expect.poll(() => gate.calls.length).toBe(2);
        const bobAnswer = chat(running, same, as('bob'));
        await expect.poll(async () => (await scrape(running.url)).sum('gateway_cache_coalesced_total')).toBe(1);
        gate.release();
        const [ann, bob] = await Promise.all([annAnswer, bobAnswer]);
        expect(ann.status).toBe(200);
        expect(ann.xCache).toBe('MISS');
        expect(bob.status).toBe(200);
        expect(bob.xCache).toBe('COALESCED');
        expect(bob.text).toBe(ann.text);
        expect(gate.calls).toHaveLength(2);
        // The flight is charged to Ann alone: her cent is spent now, Bob's spend did not grow.
        expect((await chat(running, chatBody(unique('ann again')), as('ann'))).status).toBe(429);
        const usage = await (await fetch(`${running.url}/admin/usage`)).json();
        const spentBy = Object.fromEntries(usage.users.map((u: { user: string; day: { spentUsd: number } }) => [u.user, u.day.spentUsd]));
        expect(spentBy).toEqual({ ann: 0.01, bob: 0.01 });
      });
    });
  });
}
