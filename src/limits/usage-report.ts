/**
 * What GET /admin/usage answers: the current UTC day and month, the gateway's spend in each, and
 * each user's spend, requests and refusals in both, sorted by spend (the month's, then the
 * day's); the first `top` users listed, the others summed. Users are named as they are counted
 * (user-id.ts): an Open WebUI user id, or `key:` and a short hash, never a key.
 */
import type { LimitsConfig } from './limits-config.js';
import { GATEWAY_SPEND, type Limits } from './limits.js';
import { fromNanoUsd } from './money.js';
import { periodsAt } from './periods.js';

export interface PeriodUsage {
  spentUsd: number;
  requests: number;
  refusals: number;
}

export interface UserUsage {
  user: string;
  day: PeriodUsage;
  month: PeriodUsage;
}

export interface UsageReport {
  day: { id: string; resetsAt: string; spentUsd: number; budgetUsd: number | null };
  month: { id: string; resetsAt: string; spentUsd: number; budgetUsd: number | null };
  users: UserUsage[];
  /** The users past the first `top`, summed. */
  others: { users: number; day: PeriodUsage; month: PeriodUsage };
}

export const DEFAULT_TOP_USERS = 50;
export const MAX_TOP_USERS = 1000;

/** The field prefixes of limits.ts (spendField, requestsField, refusalsField). */
const FIELD_PREFIXES = { 's:': 'spentUsd', 'r:': 'requests', 'x:': 'refusals' } as const;

export async function usageReport(limits: Limits, config: LimitsConfig, top: number): Promise<UsageReport> {
  const periods = periodsAt(limits.now());
  limits.flushRequests();
  const [dayFields, monthFields] = await Promise.all([limits.counters.readAll(periods.day.hash), limits.counters.readAll(periods.month.hash)]);
  const users = new Map<string, UserUsage>();
  const collect = (fields: Map<string, number>, which: 'day' | 'month'): void => {
    for (const [field, value] of fields) {
      const prefix = field.slice(0, 2) as keyof typeof FIELD_PREFIXES;
      const measure = FIELD_PREFIXES[prefix];
      if (measure === undefined) continue;
      const id = field.slice(2);
      let user = users.get(id);
      if (user === undefined) {
        user = { user: id, day: emptyUsage(), month: emptyUsage() };
        users.set(id, user);
      }
      user[which][measure] += measure === 'spentUsd' ? fromNanoUsd(value) : value;
    }
  };
  collect(dayFields, 'day');
  collect(monthFields, 'month');
  const sorted = [...users.values()].sort(
    (a, b) => b.month.spentUsd - a.month.spentUsd || b.day.spentUsd - a.day.spentUsd || b.month.requests - a.month.requests || (a.user < b.user ? -1 : 1),
  );
  const others = { users: Math.max(0, sorted.length - top), day: emptyUsage(), month: emptyUsage() };
  for (const rest of sorted.slice(top)) {
    for (const which of ['day', 'month'] as const) {
      others[which].spentUsd += rest[which].spentUsd;
      others[which].requests += rest[which].requests;
      others[which].refusals += rest[which].refusals;
    }
  }
  return {
    day: {
      id: periods.day.id,
      resetsAt: new Date(periods.day.endsAt).toISOString(),
      spentUsd: fromNanoUsd(dayFields.get(GATEWAY_SPEND) ?? 0),
      budgetUsd: config.budgetDailyUsd ?? null,
    },
    month: {
      id: periods.month.id,
      resetsAt: new Date(periods.month.endsAt).toISOString(),
      spentUsd: fromNanoUsd(monthFields.get(GATEWAY_SPEND) ?? 0),
      budgetUsd: config.budgetMonthlyUsd ?? null,
    },
    users: sorted.slice(0, top),
    others,
  };
}

function emptyUsage(): PeriodUsage {
  return { spentUsd: 0, requests: 0, refusals: 0 };
}
