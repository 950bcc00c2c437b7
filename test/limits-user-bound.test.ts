/**
 * A user is whatever X-OpenWebUI-User-Id a client with a valid key sends: a client inventing an
 * id per request must not grow the usage counters without bound. Past the bound, new ids are
 * counted together; the gateway's own budget, the users named in LIMITS_FILE and the users
 * already counted keep being counted exactly; a new month starts afresh.
 */
import { Counter, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { MemoryCounters } from '../src/limits/counters-memory.js';
import { GATEWAY_SPEND, Limits, MAX_USERS_PER_MONTH, OTHER_USERS, requestsField, spendField } from '../src/limits/limits.js';
import { limitsFromEnv } from '../src/limits/limits-config.js';
import { periodsAt } from '../src/limits/periods.js';

function limitsAt(clock: { now: number }, env: Record<string, string> = {}): { limits: Limits; counters: MemoryCounters } {
  const counters = new MemoryCounters(() => clock.now);
  const limited = new Counter({ name: 'test_limited_total', help: 'test', labelNames: ['reason'] as const, registers: [new Registry()] });
  const limits = new Limits(limitsFromEnv(env), counters, { limited }, () => clock.now);
  return { limits, counters };
}

describe('per-user counters are bounded', () => {
  it('ids past the bound are counted together; the gateway spend and earlier users stay exact', () => {
    const clock = { now: Date.UTC(2026, 11, 2, 12) };
    const { limits, counters } = limitsAt(clock);
    const overrides = new Map([['named-late', { dailyUsd: 1 }]]);
    limits.setOverrides(overrides);
    for (let i = 0; i < MAX_USERS_PER_MONTH + 500; i++) {
      limits.admitRequest(`invented-${i}`);
      limits.charge(`invented-${i}`, 0.001, { prompt_tokens: 1, completion_tokens: 1 });
    }
    limits.admitRequest('named-late');
    limits.charge('named-late', 0.002, undefined);
    // An early user goes on being counted as itself.
    limits.admitRequest('invented-0');
    limits.flushRequests();
    const month = counters.readAll(periodsAt(clock.now).month.hash);
    const spenders = [...month.keys()].filter((field) => field.startsWith('s:'));
    expect(spenders.length).toBe(MAX_USERS_PER_MONTH + 2);
    expect(month.get(spendField(OTHER_USERS))).toBe(500 * 1_000_000);
    expect(month.get(spendField('named-late'))).toBe(2_000_000);
    expect(month.get(requestsField('invented-0'))).toBe(2);
    expect(month.get(requestsField(`invented-${MAX_USERS_PER_MONTH + 1}`))).toBeUndefined();
    expect(month.get(GATEWAY_SPEND)).toBe((MAX_USERS_PER_MONTH + 500) * 1_000_000 + 2_000_000);
    limits.close();
  });

  it('a new month counts new ids apart again', () => {
    const clock = { now: Date.UTC(2026, 11, 31, 23) };
    const { limits, counters } = limitsAt(clock);
    for (let i = 0; i <= MAX_USERS_PER_MONTH; i++) limits.charge(`invented-${i}`, 0.001, undefined);
    expect(counters.readAll(periodsAt(clock.now).month.hash).get(spendField(OTHER_USERS))).toBe(1_000_000);
    clock.now = Date.UTC(2027, 0, 1, 0, 1);
    limits.charge('someone-new', 0.001, undefined);
    expect(counters.readAll(periodsAt(clock.now).month.hash).get(spendField('someone-new'))).toBe(1_000_000);
    limits.close();
  });
});
