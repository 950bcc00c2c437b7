/**
 * The periods budgets and rate limits count in, all in UTC and fixed (not sliding): a calendar
 * day, a calendar month, a clock minute. Every replica derives the same period from its clock,
 * so counters shared in Redis line up without coordination.
 */

export interface Period {
  /** Stable name of the period, part of the counter's key: `2026-12-02`, `2026-12`, `m29434567`. */
  readonly id: string;
  /** When it ends (ms since the epoch): counters expire then, refusals say "resets at". */
  readonly endsAt: number;
  /** The name of its counters' hash: `day:2026-12-02`, `month:2026-12`, `minute:m29434567`. */
  readonly hash: string;
}

export interface Periods {
  readonly day: Period;
  readonly month: Period;
  readonly minute: Period;
}

const MINUTE_MS = 60_000;

/**
 * The periods `now` falls in. Asked on every request: the answer is kept for the rest of its
 * minute (a few ns instead of ~0.8 µs of date arithmetic and strings), for whatever clock asks.
 */
export function periodsAt(now: number): Periods {
  if (last !== undefined && now >= lastMinuteStart && now < last.minute.endsAt) return last;
  const date = new Date(now);
  const year = date.getUTCFullYear();
  const month = date.getUTCMonth();
  const day = date.getUTCDate();
  const monthId = `${year}-${pad(month + 1)}`;
  const dayId = `${monthId}-${pad(day)}`;
  const minute = Math.floor(now / MINUTE_MS);
  last = {
    day: { id: dayId, endsAt: Date.UTC(year, month, day + 1), hash: `day:${dayId}` },
    month: { id: monthId, endsAt: Date.UTC(year, month + 1, 1), hash: `month:${monthId}` },
    minute: { id: `m${minute}`, endsAt: (minute + 1) * MINUTE_MS, hash: `minute:m${minute}` },
  };
  lastMinuteStart = minute * MINUTE_MS;
  return last;
}

let last: Periods | undefined;
let lastMinuteStart = 0;

/** `2026-12-03 00:00 UTC (in 4 h 12 min)`: what a user reads in a refusal. */
export function describeReset(endsAt: number, now: number): string {
  const at = new Date(endsAt).toISOString().slice(0, 16).replace('T', ' ');
  return `${at} UTC (in ${describeDuration(endsAt - now)})`;
}

function describeDuration(ms: number): string {
  const minutes = Math.max(1, Math.ceil(ms / MINUTE_MS));
  if (minutes < 60) return `${minutes} min`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours} h ${minutes % 60} min`;
  return `${Math.floor(hours / 24)} days ${hours % 24} h`;
}

function pad(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}
