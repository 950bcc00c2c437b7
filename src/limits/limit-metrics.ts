/**
 * gateway_budget_spent_usd{budget} (the whole gateway's spend in the current day and month, read
 * from the shared counters at each scrape, so every replica reports the same figure and it drops
 * to 0 when the period turns), gateway_budget_usd{budget} (the configured budgets, for the alert
 * ratios; absent when unset) and gateway_limited_total{reason}.
 */
import { Counter, Gauge, type Registry } from 'prom-client';

export const BUDGETS = ['daily', 'monthly'] as const;
export const LIMIT_REASONS = ['budget', 'rpm', 'tpm'] as const;
export type LimitReason = (typeof LIMIT_REASONS)[number];

export interface LimitMetrics {
  limited: Counter<'reason'>;
}

export function registerLimitMetrics(
  registry: Registry,
  spent: () => Promise<{ daily: number; monthly: number }> | { daily: number; monthly: number },
  budgets: { daily: number | undefined; monthly: number | undefined },
): LimitMetrics {
  new Gauge({
    name: 'gateway_budget_spent_usd',
    help: "The whole gateway's upstream spend in the current UTC day and month (shared by replicas on Redis).",
    labelNames: ['budget'] as const,
    registers: [registry],
    async collect() {
      const now = await spent();
      this.set({ budget: 'daily' }, now.daily);
      this.set({ budget: 'monthly' }, now.monthly);
    },
  });
  const limit = new Gauge({
    name: 'gateway_budget_usd',
    help: "The gateway's configured budgets (BUDGET_DAILY_USD, BUDGET_MONTHLY_USD); absent when unset.",
    labelNames: ['budget'] as const,
    registers: [registry],
  });
  if (budgets.daily !== undefined) limit.set({ budget: 'daily' }, budgets.daily);
  if (budgets.monthly !== undefined) limit.set({ budget: 'monthly' }, budgets.monthly);
  const limited = new Counter({
    name: 'gateway_limited_total',
    help: 'Requests refused by a budget or a rate limit, by reason.',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  for (const reason of LIMIT_REASONS) limited.inc({ reason }, 0);
  return { limited };
}
