/**
 * The provisioned Grafana dashboard: valid JSON, on the provisioned data source, showing what the
 * operator needs, and querying only metrics that exist.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { readComposeConfig, REPO_ROOT, yamlToJson } from './deploy-harness.js';
import { knownMetricNames, metricNamesIn } from './ops-promql.js';

const GRAFANA_DIR = join(REPO_ROOT, 'deploy/grafana');
const DASHBOARD = join(GRAFANA_DIR, 'dashboards/cachegate.json');

interface Target {
  expr?: string;
  datasource?: { type?: string; uid?: string };
}
interface Panel {
  type: string;
  title: string;
  datasource?: { type?: string; uid?: string };
  targets?: Target[];
  panels?: Panel[];
}

function allPanels(panels: Panel[]): Panel[] {
  return panels.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);
}

let dashboard: { uid: string; title: string; panels: Panel[] };
let panels: Panel[];
let exprs: string[];

beforeAll(async () => {
  dashboard = JSON.parse(await readFile(DASHBOARD, 'utf8')) as typeof dashboard;
  panels = allPanels(dashboard.panels).filter((p) => p.type !== 'row');
  exprs = panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr ?? ''));
});

async function recordingRuleNames(): Promise<string[]> {
  const names: string[] = [];
  for (const file of ['operator-settings.yml', 'gateway-alerts.yml']) {
    const parsed = (await yamlToJson(await readFile(join(REPO_ROOT, 'deploy/prometheus/rules', file), 'utf8'))) as {
      groups: Array<{ rules: Array<{ record?: string }> }>;
    };
    for (const group of parsed.groups) for (const rule of group.rules) if (rule.record) names.push(rule.record);
  }
  return names;
}

describe('grafana dashboard', () => {
  it('parses, has a stable uid and panels with queries', () => {
    expect(dashboard.uid).toBe('cachegate-gateway');
    expect(panels.length).toBeGreaterThan(10);
    for (const panel of panels) {
      expect(panel.targets?.length, `${panel.title} has no query`).toBeGreaterThan(0);
      for (const target of panel.targets ?? []) expect(target.expr?.trim(), `${panel.title}`).toBeTruthy();
    }
  });

  it('queries only metrics that exist', async () => {
    const known = await knownMetricNames(await recordingRuleNames());
    for (const expr of exprs) {
      const names = metricNamesIn(expr);
      expect(names.length, `no metric in: ${expr}`).toBeGreaterThan(0);
      for (const name of names) expect(known.has(name), `unknown metric ${name} in: ${expr}`).toBe(true);
    }
  });

  it('shows what the operator needs', () => {
    const uses = (metric: string) => exprs.some((e) => metricNamesIn(e).includes(metric));
    expect(uses('gateway_cache_hits_total') && uses('gateway_cache_misses_total')).toBe(true); // hit ratio
    expect(exprs.some((e) => /sum by \(cache\) \(rate\(gateway_requests_total/.test(e))).toBe(true); // by cache state
    expect(exprs.filter((e) => /histogram_quantile\(0\.(5|9|99), .*gateway_request_duration_seconds_bucket/.test(e)).length).toBeGreaterThanOrEqual(3);
    expect(uses('gateway_time_to_first_byte_seconds_bucket')).toBe(true);
    expect(uses('gateway_tokens_total')).toBe(true);
    expect(uses('gateway_cost_usd_total') && uses('gateway_cost_saved_usd_total')).toBe(true);
    expect(uses('gateway_upstream_keys')).toBe(true);
    expect(uses('gateway_cache_up')).toBe(true); // Redis status
    expect(uses('process_resident_memory_bytes') && uses('nodejs_heap_size_used_bytes')).toBe(true);
    expect(uses('nodejs_eventloop_lag_p99_seconds')).toBe(true);
    expect(uses('gateway_budget_spent_usd') && uses('gateway_budget_usd') && uses('gateway_limited_total')).toBe(true); // budgets
  });

  it('uses the provisioned Prometheus data source', async () => {
    const datasources = (await yamlToJson(await readFile(join(GRAFANA_DIR, 'provisioning/datasources/prometheus.yml'), 'utf8'))) as {
      datasources: Array<{ uid: string; type: string; url: string }>;
    };
    const prometheus = datasources.datasources[0];
    expect(prometheus?.type).toBe('prometheus');
    expect(prometheus?.url).toBe('http://prometheus:9090');
    for (const panel of panels) {
      expect(panel.datasource?.uid, panel.title).toBe(prometheus?.uid);
      for (const target of panel.targets ?? []) expect(target.datasource?.uid ?? prometheus?.uid).toBe(prometheus?.uid);
    }
  });

  it('is provisioned from the directory the compose file mounts', async () => {
    const provider = (await yamlToJson(await readFile(join(GRAFANA_DIR, 'provisioning/dashboards/cachegate.yml'), 'utf8'))) as {
      providers: Array<{ options: { path: string } }>;
    };
    const compose = await readComposeConfig({ profiles: ['observability'] });
    const mounts = (compose.services.grafana?.volumes ?? []).map((v) => (typeof v === 'string' ? { source: v.split(':')[0], target: v.split(':')[1] } : v));
    const dashboards = mounts.find((m) => m.target === provider.providers[0]?.options.path);
    expect(dashboards?.source).toBe(join(GRAFANA_DIR, 'dashboards'));
  });
});
