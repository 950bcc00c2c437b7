/**
 * GET /admin/usage on both counter stores: behind METRICS_TOKEN, the day and the month with the
 * gateway's spend, each user's spend, requests and refusals sorted by spend, the first N and the
 * rest summed; its sums equal what /metrics counted (gateway_cost_usd_total's increase,
 * gateway_budget_spent_usd); users known by their client key are named by a hash, never the key.
 */
import { describe, expect, it } from 'vitest';
import { BACKENDS, chat, chatBody, unique } from './helpers/cache-e2e.js';
import { TEST_CLIENT_KEY } from './helpers/gateway.js';
import { AUTH, as, paidAnswer, spend, useLimitedGateways } from './helpers/limits.js';
import { scrape } from './helpers/metrics-scrape.js';

const TOKEN = 'metrics-token-for-usage-test';

interface PeriodUsage {
  spentUsd: number;
  requests: number;
  refusals: number;
}
interface Usage {
  day: { id: string; resetsAt: string; spentUsd: number; budgetUsd: number | null };
  month: { id: string; resetsAt: string; spentUsd: number; budgetUsd: number | null };
  users: Array<{ user: string; day: PeriodUsage; month: PeriodUsage }>;
  others: { users: number; day: PeriodUsage; month: PeriodUsage };
}

for (const backend of BACKENDS) {
  describe(`/admin/usage (${backend} counters)`, () => {
    const setup = useLimitedGateways(backend);

    it("answers the day's and the month's spend, requests and refusals per user, summing to the metrics, with no key in it", async () => {
      const running = await setup.start({ METRICS_TOKEN: TOKEN, USER_BUDGET_DAILY_USD: '0.03', BUDGET_MONTHLY_USD: '100' });
      const costBefore = (await scrape(running.url, TOKEN)).sum('gateway_cost_usd_total');
      for (let i = 0; i < 3; i++) expect((await spend(setup, running, 'ann', 1)).status).toBe(200);
      expect((await chat(running, chatBody(unique('refused')), as('ann'))).status).toBe(429);
      expect((await spend(setup, running, 'bob', 1)).status).toBe(200);
      // A user known by the client key only (no Open WebUI header), and a stream priced from its own usage.
      setup.fake.queue.push(paidAnswer(2));
      expect((await chat(running, chatBody(unique('by key')), AUTH)).status).toBe(200);
      expect((await chat(running, chatBody(unique('carl streams'), { stream: true }), as('carl'))).status).toBe(200);
      // A hit: a request, no spend.
      const cached = chatBody(unique('hit'));
      setup.fake.queue.push(paidAnswer(0));
      await chat(running, cached, as('dora'));
      expect((await chat(running, cached, as('dora'))).xCache).toBe('HIT');

      expect((await fetch(`${running.url}/admin/usage`)).status).toBe(401);
      const response = await fetch(`${running.url}/admin/usage`, { headers: { authorization: `Bearer ${TOKEN}` } });
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toMatch(/^application\/json/);
      const text = await response.text();
      expect(text).not.toContain(TEST_CLIENT_KEY);
      const usage = JSON.parse(text) as Usage;
      expect(usage.day).toEqual({ id: '2099-06-15', resetsAt: '2099-06-16T00:00:00.000Z', spentUsd: usage.day.spentUsd, budgetUsd: null });
      expect(usage.month).toMatchObject({ id: '2099-06', resetsAt: '2099-07-01T00:00:00.000Z', budgetUsd: 100 });
      const keyUser = usage.users.find((user) => user.user.startsWith('key:'));
      expect(keyUser?.user).toMatch(/^key:[A-Za-z0-9_-]{12}$/);
      expect(usage.users.map((user) => [user.user, user.month.spentUsd, user.month.requests, user.month.refusals])).toEqual([
        ['carl', 0.11, 1, 0],
        ['ann', 0.03, 4, 1],
        [keyUser?.user, 0.02, 1, 0],
        ['bob', 0.01, 1, 0],
        ['dora', 0, 2, 0],
      ]);
      expect(usage.others).toEqual({ users: 0, day: { spentUsd: 0, requests: 0, refusals: 0 }, month: { spentUsd: 0, requests: 0, refusals: 0 } });

      const metrics = await scrape(running.url, TOKEN);
      const paid = metrics.sum('gateway_cost_usd_total') - costBefore;
      const perUser = usage.users.reduce((sum, user) => sum + user.month.spentUsd, 0);
      expect(perUser).toBeCloseTo(paid, 9);
      expect(usage.month.spentUsd).toBeCloseTo(paid, 9);
      expect(usage.day.spentUsd).toBeCloseTo(paid, 9);
      expect(metrics.sum('gateway_budget_spent_usd', { budget: 'monthly' })).toBeCloseTo(paid, 9);
      expect(metrics.sum('gateway_limited_total', { reason: 'budget' })).toBe(usage.users.reduce((sum, user) => sum + user.month.refusals, 0));

      // Bounded: the first N, the rest summed.
      const top = (await (await fetch(`${running.url}/admin/usage?top=2`, { headers: { authorization: `Bearer ${TOKEN}` } })).json()) as Usage;
      expect(top.users.map((user) => user.user)).toEqual(['carl', 'ann']);
      expect(top.others.users).toBe(3);
      expect(top.others.month.spentUsd).toBeCloseTo(0.03, 9);
      expect(top.others.month.requests).toBe(4);
      const bad = await fetch(`${running.url}/admin/usage?top=many`, { headers: { authorization: `Bearer ${TOKEN}` } });
      expect(bad.status).toBe(400);
      expect((await bad.json()).error.type).toBe('invalid_request_error');
    });

    it('the month keeps what earlier days spent; the day starts from zero', async () => {
      const running = await setup.start({});
      expect((await spend(setup, running, 'ann', 2)).status).toBe(200);
      setup.clock.set('2099-06-16T08:00:00Z');
      expect((await spend(setup, running, 'ann', 1)).status).toBe(200);
      const usage = (await (await fetch(`${running.url}/admin/usage`)).json()) as Usage;
      expect(usage.day.id).toBe('2099-06-16');
      expect(usage.day.spentUsd).toBeCloseTo(0.01, 9);
      expect(usage.month.spentUsd).toBeCloseTo(0.03, 9);
      expect(usage.users[0]).toMatchObject({ user: 'ann', day: { requests: 1 }, month: { requests: 2 } });
    });
  });
}
