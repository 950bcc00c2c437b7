/** What one benchmark run produces: a row per scenario and the performance targets checked against them. */

export interface ScenarioResult {
  id: string;
  title: string;
  /** The process(es) whose CPU and memory are reported. */
  server: string;
  connections: number;
  requests: number;
  seconds: number;
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  /** Streams: time to the first body byte (the first SSE event). */
  firstByteP50Ms?: number;
  firstByteP99Ms?: number;
  errors: number;
  /** CPU time (user + system) of the server under test, per answered request. */
  cpuMicrosPerRequest?: number;
  /** The same for the processes behind it (fake upstream, redis-server). */
  helperCpuMicrosPerRequest?: number;
  peakRssMb?: number;
  /** Scenario-specific numbers (hit share, upstream calls, cost, …). */
  details?: Record<string, number | string | boolean>;
  notes?: string[];
}

export interface TargetCheck {
  name: string;
  measured: string;
  required: string;
  met: boolean | undefined;
}

export interface Machine {
  cpuModel: string;
  cores: number;
  memoryGb: number;
  node: string;
  os: string;
  nginx: string | undefined;
  redis: string | undefined;
  /** 1-minute load average when the run started and ended: how busy the box was besides the bench. */
  loadAverage: { start: number; end: number };
}

export interface BenchRun {
  startedAt: string;
  durationSeconds: number;
  machine: Machine;
  options: Record<string, unknown>;
  scenarios: ScenarioResult[];
  targets: TargetCheck[];
}

const byId = (results: ScenarioResult[], id: string): ScenarioResult | undefined => results.find((r) => r.id === id);

function ratio(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined || b === undefined || b === 0 ? undefined : a / b;
}

const fixed = (value: number | undefined, digits: number): string => (value === undefined ? 'n/a' : value.toFixed(digits));

/** The performance targets, as ratios within this run. */
export function checkTargets(results: ScenarioResult[]): TargetCheck[] {
  const rps = (id: string): number | undefined => byId(results, id)?.requestsPerSecond;
  const checks: TargetCheck[] = [];
  const atLeast = (name: string, value: number | undefined, floor: number, unit = '×'): void => {
    checks.push({ name, measured: `${fixed(value, 2)}${unit}`, required: `≥ ${floor}${unit}`, met: value === undefined ? undefined : value >= floor });
  };
  const atMost = (name: string, value: number | undefined, ceiling: number, unit: string, digits = 2): void => {
    checks.push({
      name,
      measured: `${fixed(value, digits)} ${unit}`,
      required: `≤ ${ceiling} ${unit}`,
      met: value === undefined ? undefined : value <= ceiling,
    });
  };
  atLeast('hit (Redis) vs constant-JSON ceiling', ratio(rps('hit-redis'), rps('constant')), 0.9);
  atLeast('hit (embedded) vs constant-JSON ceiling', ratio(rps('hit-memory'), rps('constant')), 0.95);
  atLeast('hit (Redis) vs Nginx proxy_cache hit', ratio(rps('hit-redis'), rps('nginx')), 0.5);
  atLeast('hit (embedded) vs Nginx proxy_cache hit', ratio(rps('hit-memory'), rps('nginx')), 0.5);
  const missAdded = subtract(byId(results, 'miss-redis-c1')?.p50Ms, byId(results, 'direct-c1')?.p50Ms);
  atMost('miss (Redis): latency added at concurrency 1 (p50)', missAdded, 0.2, 'ms', 3);
  const memoryMissAdded = subtract(byId(results, 'miss-memory-c1')?.p50Ms, byId(results, 'direct-c1')?.p50Ms);
  if (memoryMissAdded !== undefined) atMost('miss (embedded): latency added at concurrency 1 (p50)', memoryMissAdded, 0.2, 'ms', 3);
  atLeast(`miss (Redis) vs direct upstream at ${byId(results, 'direct')?.connections ?? 50} connections`, ratio(rps('miss-redis'), rps('direct')), 0.5);
  atLeast(`miss (embedded) vs direct upstream`, ratio(rps('miss-memory'), rps('direct')), 0.5);
  const naiveAdded = subtract(byId(results, 'naive-proxy-c1')?.p50Ms, byId(results, 'direct-c1')?.p50Ms);
  if (naiveAdded !== undefined)
    checks.push({
      name: '(calibration) naive undici proxy: latency added at concurrency 1',
      measured: `${naiveAdded.toFixed(3)} ms`,
      required: 'reference: 0.34 ms',
      met: undefined,
    });
  const naiveRatio = ratio(rps('naive-proxy'), rps('direct'));
  if (naiveRatio !== undefined)
    checks.push({
      name: '(calibration) naive undici proxy vs direct upstream',
      measured: `${naiveRatio.toFixed(2)}×`,
      required: 'reference: 0.37×',
      met: undefined,
    });
  const naiveHit = ratio(rps('naive-redis-hit'), rps('constant'));
  if (naiveHit !== undefined)
    checks.push({
      name: '(calibration) naive Fastify+Redis hit vs constant JSON',
      measured: `${naiveHit.toFixed(2)}×`,
      required: 'reference: 0.75×',
      met: undefined,
    });
  const naiveNginx = ratio(rps('naive-redis-hit'), rps('nginx'));
  if (naiveNginx !== undefined)
    checks.push({
      name: '(calibration) naive Fastify+Redis hit vs Nginx',
      measured: `${naiveNginx.toFixed(2)}×`,
      required: 'reference: 0.34×',
      met: undefined,
    });
  const naiveTtfb = subtract(byId(results, 'stream-naive')?.firstByteP50Ms, byId(results, 'stream-direct')?.firstByteP50Ms);
  if (naiveTtfb !== undefined)
    checks.push({ name: '(calibration) naive proxy: stream time to first byte added', measured: `${naiveTtfb.toFixed(3)} ms`, required: '', met: undefined });
  const ttfbAdded = subtract(byId(results, 'stream-miss')?.firstByteP50Ms, byId(results, 'stream-direct')?.firstByteP50Ms);
  atMost('stream (Redis): time to first byte added at concurrency 1 (p50)', ttfbAdded, 1, 'ms', 3);
  const memoryTtfbAdded = subtract(byId(results, 'stream-miss-memory')?.firstByteP50Ms, byId(results, 'stream-direct')?.firstByteP50Ms);
  if (memoryTtfbAdded !== undefined) atMost('stream (embedded): time to first byte added at concurrency 1 (p50)', memoryTtfbAdded, 1, 'ms', 3);
  const storm = byId(results, 'storm');
  for (const form of ['json', 'stream']) {
    const calls = storm?.details?.[`${form}UpstreamCalls`];
    checks.push({
      name: `coalescing storm (${form}): upstream calls for ${storm?.details?.size ?? 'N'} identical requests`,
      measured: calls === undefined ? 'n/a' : String(calls),
      required: '= 1',
      met: calls === undefined ? undefined : calls === 1,
    });
  }
  for (const form of ['json', 'stream']) {
    const row = byId(results, `replicas-storm-${form}-2`);
    if (!row) continue;
    const calls = row.details?.upstreamCallsPerStorm;
    checks.push({
      name: `storm over 2 replicas (${form}): upstream calls per storm of ${row.connections} identical requests`,
      measured: String(calls),
      required: '= 1 each',
      met: row.details?.maxUpstreamCalls === 1,
    });
    checks.push({
      name: `storm over 2 replicas (${form}): distinct answers per storm`,
      measured: String(row.details?.maxDistinctAnswers),
      required: '= 1',
      met: row.details?.maxDistinctAnswers === 1 && row.errors === 0,
    });
  }
  const redisPeak = maxOf([byId(results, 'miss-redis')?.peakRssMb, byId(results, 'hit-redis')?.peakRssMb]);
  atMost('gateway peak RSS under load, Redis cache', redisPeak, 120, 'MB', 1);
  const memory = byId(results, 'miss-memory');
  const held = memory?.details?.cacheHeldMbEstimate;
  if (typeof held === 'number') {
    const peak = maxOf([memory?.peakRssMb, byId(results, 'hit-memory')?.peakRssMb]);
    checks.push({
      name: 'gateway peak RSS under load, embedded cache',
      measured: `${fixed(peak, 1)} MB (holding ≈ ${held.toFixed(1)} MB)`,
      required: `≤ 120 MB + held = ${(120 + held).toFixed(1)} MB`,
      met: peak === undefined ? undefined : peak <= 120 + held,
    });
  }
  return checks;
}

function subtract(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined || b === undefined ? undefined : a - b;
}

function maxOf(values: Array<number | undefined>): number | undefined {
  const present = values.filter((value): value is number => value !== undefined);
  return present.length === 0 ? undefined : Math.max(...present);
}

/** The reference each row is compared with in the table's ratio column. */
const REFERENCE: Record<string, string> = {
  'hit-redis': 'constant',
  'hit-memory': 'constant',
  'hit-memory-info': 'hit-memory',
  'miss-redis': 'direct',
  'miss-memory': 'direct',
  nginx: 'constant',
  'naive-redis-hit': 'constant',
  'naive-proxy': 'direct',
  'hit-redis-baseline': 'constant',
  'hit-memory-baseline': 'constant',
  'miss-redis-baseline': 'direct',
  'miss-memory-baseline': 'direct',
  'replicas-hit-2': 'replicas-hit-1',
  'replicas-miss-2': 'replicas-miss-1',
};

/** With BENCH_BASELINE: each gateway row against the baseline's, measured in the same rounds. */
function beforeAfter(results: ScenarioResult[]): string {
  const rows = [['row', 'req/s baseline → now', 'CPU µs/req baseline → now', 'p50 ms baseline → now', 'peak RSS MB baseline → now']];
  for (const baseline of results.filter((r) => r.id.endsWith('-baseline'))) {
    const now = byId(results, baseline.id.slice(0, -'-baseline'.length));
    if (!now) continue;
    const arrow = (a: number | undefined, b: number | undefined, digits: number): string => `${fixed(a, digits)} → ${fixed(b, digits)}`;
    const speed = ratio(now.requestsPerSecond, baseline.requestsPerSecond);
    rows.push([
      now.id,
      `${arrow(baseline.requestsPerSecond, now.requestsPerSecond, 0)} (${fixed(speed, 2)}×)`,
      arrow(baseline.cpuMicrosPerRequest, now.cpuMicrosPerRequest, 0),
      arrow(baseline.p50Ms, now.p50Ms, 2),
      arrow(baseline.peakRssMb, now.peakRssMb, 1),
    ]);
  }
  return rows.length > 1 ? `\n${markdown(rows, new Set())}\n` : '';
}

function pad(text: string, width: number, right = false): string {
  return right ? text.padStart(width) : text.padEnd(width);
}

/** A Markdown table (readable in a terminal, pasted as is into bench/README.md). */
export function formatTables(run: BenchRun): string {
  const rows: string[][] = [['#', 'scenario', 'conns', 'req/s', 'p50 ms', 'p99 ms', 'TTFB p50 ms', 'CPU µs/req', 'helpers µs/req', 'peak RSS MB', 'ratio']];
  for (const r of run.scenarios) {
    const reference = REFERENCE[r.id];
    const referenceRps = reference ? byId(run.scenarios, reference)?.requestsPerSecond : undefined;
    const rowRatio = ratio(r.requestsPerSecond, referenceRps);
    rows.push([
      r.id,
      r.title,
      String(r.connections),
      r.requestsPerSecond.toFixed(0),
      r.p50Ms.toFixed(2),
      r.p99Ms.toFixed(2),
      r.firstByteP50Ms === undefined ? '' : r.firstByteP50Ms.toFixed(2),
      r.cpuMicrosPerRequest === undefined ? '' : r.cpuMicrosPerRequest.toFixed(0),
      r.helperCpuMicrosPerRequest === undefined ? '' : r.helperCpuMicrosPerRequest.toFixed(0),
      r.peakRssMb === undefined ? '' : r.peakRssMb.toFixed(1),
      rowRatio === undefined || !reference ? '' : `${rowRatio.toFixed(2)}× ${reference}`,
    ]);
  }
  const scenarioTable = markdown(rows, new Set([2, 3, 4, 5, 6, 7, 8, 9]));
  const targetRows = [
    ['target', 'measured', 'required', 'met'],
    ...run.targets.map((t) => [
      t.name,
      t.measured,
      t.required,
      t.name.startsWith('(calibration)') ? '' : t.met === undefined ? 'not run' : t.met ? 'yes' : 'NO',
    ]),
  ];
  const details = run.scenarios
    .filter((r) => r.details || r.notes?.length)
    .map(
      (r) =>
        `- ${r.id}: ${Object.entries(r.details ?? {})
          .map(([k, v]) => `${k}=${typeof v === 'number' ? round(v) : String(v)}`)
          .join(', ')}${r.notes?.length ? ` (${r.notes.join('; ')})` : ''}`,
    );
  return `${scenarioTable}\n${beforeAfter(run.scenarios)}\n${markdown(targetRows, new Set())}\n\n${details.join('\n')}\n`;
}

function round(value: number): string {
  return Number.isInteger(value) ? String(value) : value.toPrecision(4);
}

function markdown(rows: string[][], rightAligned: Set<number>): string {
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => (row[column] ?? '').length), 3));
  const line = (row: string[]): string => `| ${row.map((cell, column) => pad(cell, widths[column]!, rightAligned.has(column))).join(' | ')} |`;
  const rule = `|${widths.map((width, column) => (rightAligned.has(column) ? `${'-'.repeat(width + 1)}:` : `${'-'.repeat(width + 2)}`)).join('|')}|`;
  return [line(rows[0]!), rule, ...rows.slice(1).map(line)].join('\n');
}
