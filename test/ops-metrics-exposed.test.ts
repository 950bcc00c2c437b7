/**
 * The dashboard and the alert rules against the real gateway: every metric they read is one the
 * running gateway exposes on /metrics from start-up (the contract says all are present, zero-valued
 * where nothing happened yet), so no panel stays empty and no alert waits for a series that never comes.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, yamlToJson } from './deploy-harness.js';
import { startFakeUpstream, type FakeUpstream } from './helpers/fake-upstream.js';
import { startGateway, TEST_CLIENT_KEY, type RunningGateway } from './helpers/gateway.js';
import { CONTRACT_METRICS, exposedNames, metricNamesIn } from './ops-promql.js';

/** Series Prometheus itself makes, and our recording rules: not on the gateway's /metrics. */
const NOT_FROM_THE_GATEWAY = /^(?:up|ALERTS|ALERTS_FOR_STATE|scrape_\w+)$|^cachegate:/;

let upstream: FakeUpstream;
let gateway: RunningGateway;
let exposed: Set<string>;

beforeAll(async () => {
  upstream = await startFakeUpstream();
  gateway = await startGateway(upstream, { GATEWAY_API_KEYS: TEST_CLIENT_KEY });
  const text = await (await fetch(`${gateway.url}/metrics`)).text();
  exposed = new Set([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].flatMap(([, name = '', type = '']) => exposedNames(name, type)));
});

afterAll(async () => {
  await gateway?.close();
  await upstream?.close();
});

async function dashboardExprs(): Promise<string[]> {
  const dashboard = JSON.parse(await readFile(join(REPO_ROOT, 'deploy/grafana/dashboards/cachegate.json'), 'utf8')) as {
    panels: Array<{ targets?: Array<{ expr?: string }> }>;
  };
  return dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr ?? ''));
}

async function ruleExprs(): Promise<string[]> {
  const rules = (await yamlToJson(await readFile(join(REPO_ROOT, 'deploy/prometheus/rules/gateway-alerts.yml'), 'utf8'))) as {
    groups: Array<{ rules: Array<{ expr: string }> }>;
  };
  return rules.groups.flatMap((g) => g.rules.map((r) => r.expr));
}

describe('metrics the operations files read', () => {
  it('are all exposed by the running gateway, contract metrics included', async () => {
    for (const [name, type] of Object.entries(CONTRACT_METRICS)) {
      for (const series of exposedNames(name, type)) expect(exposed.has(series), `gateway does not expose ${series}`).toBe(true);
    }
    const read = new Set([...(await dashboardExprs()), ...(await ruleExprs())].flatMap(metricNamesIn));
    expect(read.size).toBeGreaterThan(10);
    for (const name of read) {
      if (NOT_FROM_THE_GATEWAY.test(name)) continue;
      expect(exposed.has(name), `dashboard or alert reads ${name}, which the gateway does not expose`).toBe(true);
    }
  });

  it('carry the label values the alert rules select on', async () => {
    // One miss, then the same request again: a hit.
    for (let i = 0; i < 2; i++) {
      const res = await fetch(`${gateway.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TEST_CLIENT_KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'label check' }] }),
      });
      await res.text();
    }
    const text = await (await fetch(`${gateway.url}/metrics`)).text();
    const has = (pattern: RegExp) => pattern.test(text);
    // gateway-alerts.yml: cache="HIT" on request duration, cache=~"MISS|BYPASS" on time to first byte.
    expect(has(/^gateway_request_duration_seconds_bucket\{[^}]*cache="HIT"/m)).toBe(true);
    expect(has(/^gateway_time_to_first_byte_seconds_bucket\{[^}]*cache="MISS"/m)).toBe(true);
    expect(has(/^gateway_requests_total\{[^}]*cache="MISS"/m)).toBe(true);
    // state="active" per provider, and an upstream duration per provider for the error ratio.
    expect(has(/^gateway_upstream_keys\{[^}]*provider="openai"[^}]*state="active"[^}]*\} 2$/m)).toBe(true);
    expect(has(/^gateway_upstream_duration_seconds_count\{[^}]*provider="openai"/m)).toBe(true);
    // Token counts use lower-case cache values, requests upper-case: the dashboard groups by both.
    expect(has(/^gateway_tokens_total\{[^}]*cache="(?:hit|miss)"/m)).toBe(true);
  });
});
