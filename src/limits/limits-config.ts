/**
 * The budget and rate-limit variables, validated like every other variable: a bad value stops
 * start-up with one line naming it. Unset means no such limit.
 */
import { ConfigError } from '../config.js';
import { type Env, envValue } from '../env-value.js';

export interface LimitsConfig {
  /** The whole gateway's upstream spend per UTC day, in USD. */
  readonly budgetDailyUsd: number | undefined;
  /** The whole gateway's upstream spend per UTC calendar month, in USD. */
  readonly budgetMonthlyUsd: number | undefined;
  readonly userBudgetDailyUsd: number | undefined;
  readonly userBudgetMonthlyUsd: number | undefined;
  /** Requests per minute per user. */
  readonly userRpm: number | undefined;
  /** Upstream tokens (prompt + completion) per minute per user. */
  readonly userTpm: number | undefined;
  /** JSON overrides per user, re-read on SIGHUP and when it changes. */
  readonly limitsFile: string | undefined;
}

/** Large enough for any real budget, small enough to stay exact in nano-dollars (limits/money.ts). */
export const MAX_USD = 1_000_000;

function usd(env: Env, name: string): number | undefined {
  const raw = envValue(env, name);
  if (raw === undefined) return undefined;
  // Plain decimals only: "2", "0.50", "$5" or "1e3" are refused rather than guessed at.
  if (!/^\d+(\.\d+)?$/.test(raw)) throw new ConfigError(`${name} must be an amount in USD such as 2 or 0.50, got "${raw}"`);
  const amount = Number(raw);
  if (amount > MAX_USD) throw new ConfigError(`${name} must be at most ${MAX_USD} USD, got ${raw}`);
  return amount;
}

function perMinute(env: Env, name: string): number | undefined {
  const raw = envValue(env, name);
  if (raw === undefined) return undefined;
  if (!/^\d+$/.test(raw) || Number(raw) < 1 || !Number.isSafeInteger(Number(raw))) {
    throw new ConfigError(`${name} must be a whole number of at least 1, got "${raw}"`);
  }
  return Number(raw);
}

export function limitsFromEnv(env: Env): LimitsConfig {
  return {
    budgetDailyUsd: usd(env, 'BUDGET_DAILY_USD'),
    budgetMonthlyUsd: usd(env, 'BUDGET_MONTHLY_USD'),
    userBudgetDailyUsd: usd(env, 'USER_BUDGET_DAILY_USD'),
    userBudgetMonthlyUsd: usd(env, 'USER_BUDGET_MONTHLY_USD'),
    userRpm: perMinute(env, 'USER_RPM'),
    userTpm: perMinute(env, 'USER_TPM'),
    limitsFile: envValue(env, 'LIMITS_FILE'),
  };
}
