/**
 * The refusals of budgets and rate limits, in OpenAI's shape. A budget refusal is final until
 * the period resets, so it tells the SDKs not to retry (x-should-retry: false) and its message,
 * which Open WebUI shows as it is, says which budget, how much, and when it resets. A rate limit
 * passes in seconds: retry-after says how many.
 */
import { GatewayError } from '../errors.js';
import { retryAfterHeaders } from '../keys/retry-after.js';
import { formatUsd } from './money.js';
import { describeReset } from './periods.js';

export type BudgetScope = 'gateway' | 'user';
export type BudgetPeriod = 'daily' | 'monthly';

export interface SpentBudget {
  scope: BudgetScope;
  period: BudgetPeriod;
  limitUsd: number;
  spentUsd: number;
  endsAt: number;
}

export function budgetExceeded(budget: SpentBudget, now: number): GatewayError {
  const whose = budget.scope === 'gateway' ? `This gateway's ${budget.period} budget` : `Your ${budget.period} budget`;
  const used = budget.period === 'daily' ? 'used today' : 'used this month';
  const message =
    `${whose} of ${formatUsd(budget.limitUsd)} is spent (${formatUsd(budget.spentUsd)} ${used}); ` +
    `it resets at ${describeReset(budget.endsAt, now)}. Answers already in the cache are still served.`;
  return new GatewayError(429, 'insufficient_quota', 'budget_exceeded', message, { 'x-should-retry': 'false' });
}

export function rateLimited(kind: 'rpm' | 'tpm', limit: number, retryAfterMs: number): GatewayError {
  const what = kind === 'rpm' ? `${limit} requests` : `${limit} upstream tokens`;
  const seconds = Math.max(1, Math.ceil(retryAfterMs / 1000));
  return new GatewayError(
    429,
    'rate_limit_error',
    'rate_limit_exceeded',
    `Rate limit reached: at most ${what} per minute per user; retry in ${seconds} s.`,
    retryAfterHeaders(retryAfterMs),
  );
}
