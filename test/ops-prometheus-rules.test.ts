/**
 * Prometheus configuration and alert rules, checked and unit-tested by promtool (Debian's
 * `prometheus` package), and held against the metrics the gateway exposes.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { memoryBytes, readComposeConfig, REPO_ROOT, yamlToJson } from './deploy-harness.js';
import { knownMetricNames, metricNamesIn } from './ops-promql.js';

const run = promisify(execFile);
const PROM_DIR = join(REPO_ROOT, 'deploy/prometheus');
const RULE_FILES = ['operator-settings.yml', 'gateway-alerts.yml'].map((f) => join(PROM_DIR, 'rules', f));
const RULE_TESTS = join(PROM_DIR, 'tests/gateway-alerts.test.yml');

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface RuleFile {
  groups: Array<{ name: string; rules: Rule[] }>;
}
interface RuleTestFile {
  tests: Array<{ name: string; alert_rule_test?: Array<{ alertname: string; exp_alerts: unknown[] }> }>;
}

async function promtool(args: string[]): Promise<{ ok: boolean; output: string }> {
  try {
    const { stdout, stderr } = await run('promtool', args, { cwd: REPO_ROOT });
    return { ok: true, output: stdout + stderr };
  } catch (error) {
    const { stdout = '', stderr = '' } = error as { stdout?: string; stderr?: string };
    return { ok: false, output: stdout + stderr };
  }
}

let rules: Rule[];

beforeAll(async () => {
  const files = await Promise.all(RULE_FILES.map(async (f) => (await yamlToJson(await readFile(f, 'utf8'))) as RuleFile));
  rules = files.flatMap((file) => file.groups.flatMap((g) => g.rules));
});

describe('promtool', () => {
  it('accepts the rule files', async () => {
    const result = await promtool(['check', 'rules', ...RULE_FILES]);
    expect(result.output).not.toMatch(/FAILED/);
    expect(result.ok).toBe(true);
  });

  it('accepts prometheus.yml with its rule files', async () => {
    // The container path of the rules, pointed at the repository for the check.
    const dir = await mkdtemp(join(tmpdir(), 'cachegate-prom-'));
    try {
      const config = (await readFile(join(PROM_DIR, 'prometheus.yml'), 'utf8')).replace('/etc/prometheus/rules/*.yml', join(PROM_DIR, 'rules', '*.yml'));
      await writeFile(join(dir, 'prometheus.yml'), config);
      const result = await promtool(['check', 'config', join(dir, 'prometheus.yml')]);
      expect(result.output).toMatch(/2 rule files found/);
      expect(result.ok).toBe(true);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('passes every alert unit test', async () => {
    const result = await promtool(['test', 'rules', RULE_TESTS]);
    expect(result.output).toMatch(/SUCCESS/);
    expect(result.ok).toBe(true);
  });
});

describe('alert rules', () => {
  it('cover what the operator of a 2 GB box must hear about', () => {
    const alerts = rules.filter((r) => r.alert).map((r) => r.alert);
    expect(alerts).toEqual(
      expect.arrayContaining([
        'GatewayMemoryHigh',
        'GatewayEventLoopLagHigh',
        'GatewayCacheHitRatioLow',
        'GatewayUpstreamErrorRateHigh',
        'GatewayProviderNoActiveKey',
        'GatewayCacheBackendDown',
        'GatewayLatencyP99High',
        'GatewayDailySpendOverBudget',
        'GatewayBudgetHalfSpent',
        'GatewayBudgetMostlySpent',
        'GatewayBudgetSpent',
      ]),
    );
    for (const rule of rules.filter((r) => r.alert)) {
      expect(['warning', 'critical'], `${rule.alert} severity`).toContain(rule.labels?.severity);
      expect(rule.annotations?.summary, `${rule.alert} summary`).toBeTruthy();
      expect(rule.annotations?.description, `${rule.alert} description`).toBeTruthy();
    }
  });

  it('each have a unit test where they fire and one where they stay quiet', async () => {
    const tests = (await yamlToJson(await readFile(RULE_TESTS, 'utf8'))) as RuleTestFile;
    const cases = tests.tests.flatMap((t) => t.alert_rule_test ?? []);
    for (const rule of rules.filter((r) => r.alert)) {
      const mine = cases.filter((c) => c.alertname === rule.alert);
      expect(
        mine.some((c) => c.exp_alerts.length > 0),
        `${rule.alert} never fires in a test`,
      ).toBe(true);
      expect(
        mine.some((c) => c.exp_alerts.length === 0),
        `${rule.alert} has no quiet case`,
      ).toBe(true);
    }
  });

  it('read only metrics that exist', async () => {
    const known = await knownMetricNames(rules.flatMap((r) => (r.record ? [r.record] : [])));
    for (const rule of rules) {
      for (const name of metricNamesIn(rule.expr)) {
        expect(known.has(name), `${rule.alert ?? rule.record} reads unknown metric ${name}`).toBe(true);
      }
    }
  });

  it('compare memory against the gateway container limit of docker-compose.yml', async () => {
    const setting = rules.find((r) => r.record === 'cachegate:gateway_memory_limit_bytes');
    const compose = await readComposeConfig();
    const limit = compose.services.gateway?.mem_limit ?? 0;
    expect(setting?.expr).toBe(`vector(${memoryBytes(limit)})`);
  });

  it('hold the daily budget in the operator settings file', () => {
    const budget = rules.find((r) => r.record === 'cachegate:daily_budget_usd');
    expect(budget?.expr).toMatch(/^vector\(\d+(\.\d+)?\)$/);
  });
});

describe('scrape configuration', () => {
  it('scrapes every replica of the gateway service on its port inside the compose network', async () => {
    const config = (await yamlToJson(await readFile(join(PROM_DIR, 'prometheus.yml'), 'utf8'))) as {
      scrape_configs: Array<{ job_name: string; metrics_path?: string; dns_sd_configs: Array<{ names: string[]; type: string; port: number }> }>;
    };
    const gatewayJob = config.scrape_configs.find((j) => j.job_name === 'gateway');
    const compose = await readComposeConfig();
    const port = compose.services.gateway?.environment?.PORT;
    // DNS service discovery: each address the service name resolves to (one per replica) is a target.
    expect(gatewayJob?.dns_sd_configs[0]).toEqual({ names: ['gateway'], type: 'A', port: Number(port), refresh_interval: '30s' });
    expect(gatewayJob?.metrics_path ?? '/metrics').toBe('/metrics');
  });
});
