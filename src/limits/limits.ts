/**
 * Budgets and rate limits, per user and for the whole gateway. Three moments:
 * - admitRequest: every request but health and metrics, counted for its user (and refused past
 *   the user's requests per minute);
 * - admitPaidCall: just before a request would start a paid upstream call (never for a cache hit
 *   or a coalesced answer), refused while a budget is spent or the user's tokens per minute are used;
 * - charge: once per upstream call, with what it cost (the figure gateway_cost_usd_total counts) and
 *   the tokens the provider reported.
 * A check answers now when nothing needs counting or the counters are in memory, else after one
 * Redis round trip. A call admitted is never cut short: a stream that crosses a budget finishes.
 */
import type { GatewayError } from '../errors.js';
import type { TokenUsage } from '../pricing/prices.js';
import type { CounterAdd, FieldRef, Maybe, UsageCounters } from './counters.js';
import { budgetExceeded, type BudgetPeriod, type BudgetScope, rateLimited } from './limit-errors.js';
import type { LimitMetrics, LimitReason } from './limit-metrics.js';
import type { LimitsConfig } from './limits-config.js';
import type { LimitOverrides, UserLimitOverrides } from './limits-file.js';
import { fromNanoUsd, toNanoUsd } from './money.js';
import { type Periods, periodsAt } from './periods.js';

/** The fields of the period hashes (counters.ts). */
export const GATEWAY_SPEND = 'g';
export const spendField = (user: string): string => `s:${user}`;
export const requestsField = (user: string): string => `r:${user}`;
export const refusalsField = (user: string): string => `x:${user}`;
const tokensField = (user: string): string => `t:${user}`;

interface BudgetCheck {
  scope: BudgetScope;
  period: BudgetPeriod;
  limitUsd: number;
  ref: FieldRef;
}

export type Admission = GatewayError | undefined;

/**
 * Users a replica counts apart in one month. A user is whatever X-OpenWebUI-User-Id a client
 * with a valid key sends, so a client inventing a new id per request would otherwise grow the
 * counters (and /admin/usage) without bound until the month ends. Past this many, new ids are
 * counted together as OTHER_USERS: the gateway's own budgets still hold exactly, and users named
 * in LIMITS_FILE are always counted apart.
 */
export const MAX_USERS_PER_MONTH = 10_000;
export const OTHER_USERS = '(other users)';

export class Limits {
  private overrides: LimitOverrides = new Map();
  /** Requests per user not yet handed to the counters, and the periods they fall in. */
  private readonly requests = new Map<string, number>();
  private tallied: Periods | undefined;
  private readonly requestsTimer = setInterval(() => this.flushRequests(), 1_000).unref();
  /** The users counted apart this month (their counters' names), and which month that is. */
  private readonly countedApart = new Set<string>();
  private countedMonth = '';
  /** A budget or a tokens-per-minute limit is set: spend and tokens must reach the counters at once. */
  private refusesOnUsage: boolean;

  constructor(
    private readonly config: LimitsConfig,
    readonly counters: UsageCounters,
    private readonly metrics: LimitMetrics,
    readonly now: () => number,
  ) {
    this.refusesOnUsage = this.anyUsageLimit();
  }

  /** LIMITS_FILE's content, applied to the next check (counts so far are kept). */
  setOverrides(overrides: LimitOverrides): void {
    this.overrides = overrides;
    this.refusesOnUsage = this.anyUsageLimit();
  }

  admitRequest(asked: string): Maybe<Admission> {
    const now = this.now();
    const periods = periodsAt(now);
    const user = this.accountOf(asked, periods);
    const rpm = this.limitOf(user, 'rpm', this.config.userRpm);
    if (rpm === undefined) {
      this.countRequest(user, periods);
      return undefined;
    }
    const minute = periods.minute;
    return andThen(this.counters.takeIfBelow(minute.hash, minute.endsAt, requestsField(user), rpm), ({ taken }) => {
      this.countRequest(user, periods);
      if (taken) return undefined;
      return this.refuse(user, periods, 'rpm', rateLimited('rpm', rpm, minute.endsAt - this.now()));
    });
  }

  admitPaidCall(asked: string): Maybe<Admission> {
    const now = this.now();
    const periods = periodsAt(now);
    const user = this.accountOf(asked, periods);
    const budgets = this.budgetsOf(user, periods);
    const tpm = this.limitOf(user, 'tpm', this.config.userTpm);
    // Nothing configured: nothing to read, and the miss pays nothing for the feature.
    if (budgets.length === 0 && tpm === undefined) return undefined;
    const refs = budgets.map((budget) => budget.ref);
    if (tpm !== undefined) refs.push({ hash: periods.minute.hash, endsAt: periods.minute.endsAt, field: tokensField(user) });
    return andThen(this.counters.read(refs), (values) => {
      for (const [index, budget] of budgets.entries()) {
        const spentNano = values[index] ?? 0;
        if (spentNano >= toNanoUsd(budget.limitUsd)) {
          const endsAt = budget.ref.endsAt;
          const error = budgetExceeded({ ...budget, spentUsd: fromNanoUsd(spentNano), endsAt }, this.now());
          return this.refuse(user, periods, 'budget', error);
        }
      }
      if (tpm !== undefined && (values[budgets.length] ?? 0) >= tpm) {
        return this.refuse(user, periods, 'tpm', rateLimited('tpm', tpm, periods.minute.endsAt - this.now()));
      }
      return undefined;
    });
  }

  /** An upstream call's cost (USD, as gateway_cost_usd_total counted it) and tokens, charged to `user`. */
  charge(asked: string, costUsd: number, usage: TokenUsage | undefined): void {
    const periods = periodsAt(this.now());
    const user = this.accountOf(asked, periods);
    const nanos = toNanoUsd(costUsd);
    const tokens = count(usage?.prompt_tokens) + count(usage?.completion_tokens);
    const adds: CounterAdd[] = [];
    if (nanos > 0) {
      for (const kind of ['day', 'month'] as const) {
        const period = periods[kind];
        adds.push({ hash: period.hash, endsAt: period.endsAt, field: GATEWAY_SPEND, by: nanos });
        adds.push({ hash: period.hash, endsAt: period.endsAt, field: spendField(user), by: nanos });
      }
    }
    if (tokens > 0) adds.push({ hash: periods.minute.hash, endsAt: periods.minute.endsAt, field: tokensField(user), by: tokens });
    if (adds.length === 0) return;
    // Spend and tokens that nothing is refused on (no budget, no tokens per minute: only
    // /admin/usage reads them) go with the next batch, once a second, as requests do: on Redis an
    // immediate write per paid call cost a miss ~100 µs of CPU for a feature nobody set.
    if (this.refusesOnUsage) this.counters.add(adds);
    else this.counters.addLater(adds);
  }

  /** The whole gateway's spend in the current day and month, USD. */
  gatewaySpend(): Maybe<{ daily: number; monthly: number }> {
    const periods = periodsAt(this.now());
    const refs: FieldRef[] = [
      { hash: periods.day.hash, endsAt: periods.day.endsAt, field: GATEWAY_SPEND },
      { hash: periods.month.hash, endsAt: periods.month.endsAt, field: GATEWAY_SPEND },
    ];
    return andThen(this.counters.read(refs), ([day, month]) => ({ daily: fromNanoUsd(day ?? 0), monthly: fromNanoUsd(month ?? 0) }));
  }

  /** The budgets that apply to a paid call of this user: the month's first (its refusal lasts longest). */
  private budgetsOf(user: string, periods: Periods): BudgetCheck[] {
    const checks: BudgetCheck[] = [];
    for (const period of ['monthly', 'daily'] as const) {
      const kind = period === 'monthly' ? 'month' : 'day';
      const range = periods[kind];
      const gateway = period === 'monthly' ? this.config.budgetMonthlyUsd : this.config.budgetDailyUsd;
      const own = this.limitOf(
        user,
        period === 'monthly' ? 'monthlyUsd' : 'dailyUsd',
        period === 'monthly' ? this.config.userBudgetMonthlyUsd : this.config.userBudgetDailyUsd,
      );
      // The gateway's before the user's: past it, raising the user's own would not help.
      if (gateway !== undefined)
        checks.push({ scope: 'gateway', period, limitUsd: gateway, ref: { hash: range.hash, endsAt: range.endsAt, field: GATEWAY_SPEND } });
      if (own !== undefined) checks.push({ scope: 'user', period, limitUsd: own, ref: { hash: range.hash, endsAt: range.endsAt, field: spendField(user) } });
    }
    return checks;
  }

  /** Whether any budget or tokens-per-minute limit is set, by a variable or in LIMITS_FILE. */
  private anyUsageLimit(): boolean {
    const { budgetDailyUsd, budgetMonthlyUsd, userBudgetDailyUsd, userBudgetMonthlyUsd, userTpm } = this.config;
    if (budgetDailyUsd !== undefined || budgetMonthlyUsd !== undefined || userBudgetDailyUsd !== undefined) return true;
    if (userBudgetMonthlyUsd !== undefined || userTpm !== undefined) return true;
    for (const limits of this.overrides.values()) {
      if (limits.dailyUsd != null || limits.monthlyUsd != null || limits.tpm != null) return true;
    }
    return false;
  }

  /** The name `user` is counted under this month: its own, or OTHER_USERS past the bound. */
  private accountOf(user: string, periods: Periods): string {
    if (periods.month.hash !== this.countedMonth) {
      this.countedApart.clear();
      this.countedMonth = periods.month.hash;
    }
    if (this.countedApart.has(user)) return user;
    if (this.countedApart.size < MAX_USERS_PER_MONTH || this.overrides.has(user)) {
      this.countedApart.add(user);
      return user;
    }
    return OTHER_USERS;
  }

  private limitOf(user: string, field: keyof UserLimitOverrides, fallback: number | undefined): number | undefined {
    const override = this.overrides.get(user)?.[field];
    if (override === null) return undefined;
    return override ?? fallback;
  }

  /**
   * Every request is counted for /admin/usage, so this is on the hit path: one Map increment per
   * request (~40 ns), the tally handed to the counters once a second and whenever the minute turns
   * (writing the counters per request cost ~1 µs).
   */
  private countRequest(user: string, periods: Periods): void {
    if (periods !== this.tallied) this.flushRequests(periods);
    this.requests.set(user, (this.requests.get(user) ?? 0) + 1);
  }

  /** Hands the requests counted so far to the counters (before a usage report reads them, and on close). */
  flushRequests(next: Periods | undefined = this.tallied): void {
    const periods = this.tallied;
    this.tallied = next;
    if (periods === undefined || this.requests.size === 0) return;
    const adds: CounterAdd[] = [];
    for (const [user, count] of this.requests) {
      adds.push({ hash: periods.day.hash, endsAt: periods.day.endsAt, field: requestsField(user), by: count });
      adds.push({ hash: periods.month.hash, endsAt: periods.month.endsAt, field: requestsField(user), by: count });
    }
    this.requests.clear();
    this.counters.addLater(adds);
  }

  close(): void {
    clearInterval(this.requestsTimer);
    this.flushRequests();
  }

  private refuse(user: string, periods: Periods, reason: LimitReason, error: GatewayError): GatewayError {
    this.metrics.limited.inc({ reason });
    this.counters.addLater([
      { hash: periods.day.hash, endsAt: periods.day.endsAt, field: refusalsField(user), by: 1 },
      { hash: periods.month.hash, endsAt: periods.month.endsAt, field: refusalsField(user), by: 1 },
    ]);
    return error;
  }
}

/** Applies `next` now to a value at hand, or once a promised one comes. */
export function andThen<T, U>(value: Maybe<T>, next: (value: T) => U): Maybe<U> {
  return value instanceof Promise ? value.then(next) : next(value);
}

function count(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) && value > 0 ? value : 0;
}
