/**
 * What test/cache-hit-parity.test.ts compares between two answers: the header names in the order
 * they came over the wire, the body bytes, what the request moved in /metrics and its log line.
 */
import type { Scrape } from './metrics-scrape.js';
import type { WireResponse } from './wire-request.js';

/** Header names as sent, lower-cased, in wire order (rawHeaders keeps the order and repeats). */
export function headerNames(response: WireResponse): string[] {
  return response.rawHeaders.filter((_, index) => index % 2 === 0).map((name) => name.toLowerCase());
}

/** Series that are state, not movement: a request does not move them. */
const GAUGES = new Set(['gateway_cache_up', 'gateway_upstream_keys']);

/**
 * Every gateway_* series that moved between two scrapes, with its delta. Of the histograms only
 * the counts: the observed durations differ from request to request by nature.
 */
export function movements(before: Scrape, after: Scrape): Map<string, number> {
  const old = new Map(before.samples.map((sample) => [seriesId(sample.name, sample.labels), sample.value]));
  const moved = new Map<string, number>();
  for (const sample of after.samples) {
    const { name } = sample;
    if (!name.startsWith('gateway_') || GAUGES.has(name) || name.endsWith('_bucket') || name.endsWith('_sum')) continue;
    const id = seriesId(name, sample.labels);
    const delta = sample.value - (old.get(id) ?? 0);
    // Rounded: a dollar delta read off two running float sums differs in its last bits.
    if (delta !== 0) moved.set(id, Number(delta.toPrecision(10)));
  }
  return moved;
}

export function seriesId(name: string, labels: Record<string, string>): string {
  const sorted = Object.keys(labels)
    .sort()
    .map((label) => `${label}=${labels[label]}`);
  return `${name}{${sorted.join(',')}}`;
}

/**
 * What a request that started an upstream call moved (its MISS, the money spent and the budgets
 * it counts against, the upstream's own series): taken out of a coalesced episode's movements,
 * what is left is its follower's.
 */
export function withoutLeader(moved: Map<string, number>): Map<string, number> {
  const left = new Map<string, number>();
  for (const [id, delta] of moved) {
    if (/cache=(MISS|miss)\b/.test(id) || /^gateway_(cache_misses_total|cost_usd_total|budget_spent_usd|upstream_)/.test(id)) continue;
    left.set(id, delta);
  }
  return left;
}

/** A follower's movements named as a hit's: the only difference a hit may show. */
export function asHit(moved: Map<string, number>): Map<string, number> {
  const renamed = new Map<string, number>();
  for (const [id, delta] of moved) {
    renamed.set(id.replace('gateway_cache_coalesced_total', 'gateway_cache_hits_total').replace('cache=COALESCED', 'cache=HIT'), delta);
  }
  return renamed;
}

export type LogLine = Record<string, unknown>;

/** The request log line with this id, parsed; undefined until it is written. */
export function requestLine(logs: readonly string[], id: string): LogLine | undefined {
  for (let index = logs.length - 1; index >= 0; index--) {
    const text = logs[index]!;
    if (!text.includes(id)) continue;
    const line = JSON.parse(text) as LogLine;
    if (line['msg'] === 'request' && line['id'] === id) return line;
  }
  return undefined;
}

/** A log line without what differs from request to request by nature. */
export function comparable(line: LogLine, ...also: string[]): LogLine {
  const rest: LogLine = {};
  for (const [key, value] of Object.entries(line)) {
    if (key === 'id' || key === 'durationMs' || key === 'time' || also.includes(key)) continue;
    rest[key] = value;
  }
  return rest;
}
