/**
 * Which metric names a PromQL expression reads, and which names exist: the gateway's own,
 * prom-client's default process/Node.js metrics, Prometheus' own synthetic series, and our
 * recording rules. Used to check that dashboards and alert rules query real series: a typo in a
 * metric name is not an error in PromQL, just a panel or an alert that silently never shows.
 */
import { collectDefaultMetrics, Registry } from 'prom-client';

type MetricType = 'counter' | 'gauge' | 'histogram';

/** Every metric the gateway promises, with its type. */
export const CONTRACT_METRICS: Readonly<Record<string, MetricType>> = {
  gateway_requests_total: 'counter',
  gateway_cache_hits_total: 'counter',
  gateway_cache_misses_total: 'counter',
  gateway_cache_coalesced_total: 'counter',
  gateway_request_duration_seconds: 'histogram',
  gateway_time_to_first_byte_seconds: 'histogram',
  gateway_upstream_duration_seconds: 'histogram',
  gateway_upstream_errors_total: 'counter',
  gateway_tokens_total: 'counter',
  gateway_cost_usd_total: 'counter',
  gateway_cost_saved_usd_total: 'counter',
  gateway_upstream_keys: 'gauge',
  gateway_cache_up: 'gauge',
  gateway_cache_errors_total: 'counter',
  gateway_budget_spent_usd: 'gauge',
  gateway_limited_total: 'counter',
  gateway_fallbacks_total: 'counter',
  gateway_provider_up: 'gauge',
  // Not in the contract: the configured budgets, for the alerts' ratios.
  gateway_budget_usd: 'gauge',
};

/** Series Prometheus makes itself: scrape health and alert state. */
const PROMETHEUS_SERIES = ['up', 'ALERTS', 'ALERTS_FOR_STATE', 'scrape_duration_seconds', 'scrape_samples_scraped'];

/** The names a metric appears under in Prometheus: histograms only as _bucket, _sum, _count. */
export function exposedNames(name: string, type: string): string[] {
  return type === 'histogram' ? [`${name}_bucket`, `${name}_sum`, `${name}_count`] : [name];
}

export async function promClientDefaultMetricNames(): Promise<string[]> {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const metrics = await registry.getMetricsAsJSON();
  return metrics.flatMap((m) => exposedNames(m.name, String(m.type)));
}

export async function knownMetricNames(recordingRules: string[] = []): Promise<Set<string>> {
  return new Set([
    ...Object.entries(CONTRACT_METRICS).flatMap(([name, type]) => exposedNames(name, type)),
    ...(await promClientDefaultMetricNames()),
    ...PROMETHEUS_SERIES,
    ...recordingRules,
  ]);
}

const FUNCTIONS = new Set([
  // aggregation operators
  'sum',
  'min',
  'max',
  'avg',
  'group',
  'stddev',
  'stdvar',
  'count',
  'count_values',
  'bottomk',
  'topk',
  'quantile',
  // functions
  'abs',
  'absent',
  'absent_over_time',
  'ceil',
  'changes',
  'clamp',
  'clamp_max',
  'clamp_min',
  'day_of_month',
  'day_of_week',
  'day_of_year',
  'days_in_month',
  'delta',
  'deriv',
  'exp',
  'floor',
  'histogram_quantile',
  'histogram_count',
  'histogram_sum',
  'histogram_fraction',
  'holt_winters',
  'hour',
  'idelta',
  'increase',
  'irate',
  'label_join',
  'label_replace',
  'ln',
  'log2',
  'log10',
  'minute',
  'month',
  'predict_linear',
  'rate',
  'resets',
  'round',
  'scalar',
  'sgn',
  'sort',
  'sort_desc',
  'sqrt',
  'time',
  'timestamp',
  'vector',
  'year',
  'avg_over_time',
  'min_over_time',
  'max_over_time',
  'sum_over_time',
  'count_over_time',
  'quantile_over_time',
  'stddev_over_time',
  'stdvar_over_time',
  'last_over_time',
  'present_over_time',
]);
const KEYWORDS = new Set(['and', 'or', 'unless', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'offset', 'inf', 'nan']);

/** Metric names an expression selects (functions, keywords and label names excluded). */
export function metricNamesIn(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, ' ') // string literals
    .replace(/\{[^}]*\}/g, ' ') // label matchers
    .replace(/\[[^\]]*\]/g, ' ') // ranges and subqueries
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ') // label lists
    .replace(/\$\{?\w+\}?/g, ' '); // Grafana variables
  const names = new Set<string>();
  for (const match of stripped.matchAll(/(?<![\w.])([A-Za-z_:][\w:]*)(\s*\()?/g)) {
    const word = match[1] ?? '';
    const isCall = match[2] !== undefined;
    // Binary operators and modifiers may be followed by a parenthesis too: `a and on () (b)`.
    if (KEYWORDS.has(word.toLowerCase())) continue;
    if (isCall) {
      if (!FUNCTIONS.has(word)) throw new Error(`unknown PromQL function ${word} in: ${expr}`);
      continue;
    }
    names.add(word);
  }
  return [...names];
}
