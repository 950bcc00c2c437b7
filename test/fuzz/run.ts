/**
 * Runs a seeded fuzz campaign against a listening gateway: generates case i from (seed, i),
 * sends it with a few concurrent workers (keep-alive connections for well-framed cases, a new
 * connection per framing case), judges every answer, probes /healthz throughout, and returns
 * the statistics and every violation with what it takes to replay it.
 */
import type { FuzzCase, FuzzContext, Family } from './cases.js';
import { FAMILIES } from './cases.js';
import { bytesCase } from './mutate-bytes.js';
import { framingCase } from './framing.js';
import { WireConnection, header, requestHead } from './http-wire.js';
import { largeCase, LARGE_KINDS } from './large.js';
import { jsonCase } from './mutate-json.js';
import { agreementProblem, judge, routeOf, type JudgedOutcome, type Violation, type ViolationKind } from './oracle.js';
import { Rng, caseSeed } from './prng.js';

export interface FuzzOptions {
  port: number;
  clientKey: string;
  seed: number;
  /** Number of cases (large ones included). */
  cases: number;
  /** Cases of the "large" family, spread evenly over the run (run one at a time). */
  largeCases: number;
  /** The gateway's BODY_LIMIT_BYTES. */
  bodyLimit: number;
  concurrency: number;
  /** Per exchange: longer without a complete answer is a hang. */
  answerTimeoutMs: number;
  /** Probe /healthz after every this many cases. */
  healthEvery: number;
  /** Only these case indices (a replay). */
  only?: readonly number[];
  /** Stop starting cases after this long (the report says so). */
  maxDurationMs?: number;
}

export interface CaseViolation extends Violation {
  index: number;
  family: Family | 'healthz';
  label: string;
  status: string;
  /** The first bytes of the request that got it, for the report. */
  request: string;
}

export interface FuzzReport {
  seed: number;
  cases: number;
  byFamily: Record<Family, number>;
  exchanges: number;
  statuses: Map<string, number>;
  xCache: Map<string, number>;
  /** 2xx answers judged against their route's shape, by route (and stream or JSON). */
  checked2xx: Map<string, number>;
  violations: CaseViolation[];
  healthProbes: number;
  slowestHealthMs: number;
  slowestAnswerMs: number;
  elapsedMs: number;
  stoppedEarly: boolean;
}

const FAMILY_WEIGHTS: ReadonlyArray<readonly [number, Family]> = [
  [42, 'json'],
  [23, 'bytes'],
  [35, 'framing'],
];

export function largeSlots(cases: number, large: number): Map<number, number> {
  const slots = new Map<number, number>();
  for (let i = 0; i < Math.min(large, cases); i++) slots.set(Math.floor(((i + 0.5) * cases) / large), i);
  return slots;
}

/** Case `index` of the run, the same every time for the same seed and options. */
export function generateCase(ctx: FuzzContext, index: number, slots: Map<number, number>, bodyLimit: number): FuzzCase {
  const slot = slots.get(index);
  if (slot !== undefined) return largeCase(slot, ctx, index, bodyLimit);
  const rng = new Rng(caseSeed(ctx.seed, index));
  const family = rng.weighted(FAMILY_WEIGHTS);
  if (family === 'json') return jsonCase(rng, ctx, index);
  if (family === 'bytes') return bytesCase(rng, ctx, index);
  return framingCase(rng, ctx, index);
}

export function printable(bytes: Buffer, length = 240): string {
  return JSON.stringify(bytes.subarray(0, length).toString('latin1')) + (bytes.length > length ? `…(+${bytes.length - length} bytes)` : '');
}

/** Runs one piece of work at a time (the large cases: a few 26 MiB bodies at once would be memory, not a test). */
export class Lock {
  private tail = Promise.resolve();

  async run<T>(work: () => Promise<T>): Promise<T> {
    const before = this.tail;
    let release!: () => void;
    this.tail = new Promise((resolve) => (release = resolve));
    await before;
    try {
      return await work();
    } finally {
      release();
    }
  }
}

export async function runFuzz(options: FuzzOptions): Promise<FuzzReport> {
  const ctx: FuzzContext = { port: options.port, clientKey: options.clientKey, seed: options.seed };
  const slots = largeSlots(options.cases, options.largeCases);
  const indices = options.only ? [...options.only] : Array.from({ length: options.cases }, (_, i) => i);
  const report: FuzzReport = {
    seed: options.seed,
    cases: 0,
    byFamily: Object.fromEntries(FAMILIES.map((f) => [f, 0])) as Record<Family, number>,
    exchanges: 0,
    statuses: new Map(),
    xCache: new Map(),
    checked2xx: new Map(),
    violations: [],
    healthProbes: 0,
    slowestHealthMs: 0,
    slowestAnswerMs: 0,
    elapsedMs: 0,
    stoppedEarly: false,
  };
  const count = (map: Map<string, number>, key: string) => map.set(key, (map.get(key) ?? 0) + 1);
  const started = Date.now();
  const largeLock = new Lock();
  const probes: Array<Promise<void>> = [];
  let next = 0;
  let done = 0;

  async function probeHealth(): Promise<void> {
    const begin = Date.now();
    let problem: string | undefined;
    try {
      const conn = await WireConnection.open(options.port);
      conn.send(requestHead('GET', '/healthz', [['Host', `127.0.0.1:${options.port}`]]));
      const outcome = await conn.read(false, Date.now() + 2_000);
      conn.destroy();
      if (outcome.kind !== 'response') problem = `no answer (${outcome.kind})`;
      else if (outcome.response.status !== 200 || !outcome.response.body.toString().includes('"ok"'))
        problem = `${outcome.response.status} ${outcome.response.body.toString().slice(0, 100)}`;
    } catch (error) {
      problem = `connect failed: ${(error as Error).message}`;
    }
    const took = Date.now() - begin;
    report.healthProbes++;
    report.slowestHealthMs = Math.max(report.slowestHealthMs, took);
    if (problem)
      report.violations.push({
        kind: 'healthz',
        detail: problem,
        index: done,
        family: 'healthz',
        label: `/healthz after ${done} cases`,
        status: '-',
        request: 'GET /healthz',
      });
  }

  function record(c: FuzzCase, exchangeIndex: number, outcome: JudgedOutcome, violations: Violation[]): void {
    const status = outcome.kind === 'response' ? String(outcome.response.status) : outcome.kind;
    count(report.statuses, status);
    if (outcome.kind === 'response') {
      const cache = header(outcome.response, 'x-cache');
      if (cache) count(report.xCache, cache);
      const ex = c.exchanges[exchangeIndex];
      if (ex && outcome.response.status < 300 && outcome.response.status >= 200 && ex.method !== 'HEAD') {
        const route = routeOf(ex.target, ex.method).kind;
        const streamed = (route === 'chat' || route === 'completions') && (ex.json as { stream?: unknown } | undefined)?.stream === true;
        count(report.checked2xx, `${route}${streamed ? '(stream)' : ''}`);
      }
    }
    const ex = c.exchanges[exchangeIndex];
    for (const v of violations) {
      report.violations.push({ ...v, index: c.index, family: c.family, label: c.label, status, request: ex ? printable(ex.head) : '' });
    }
  }

  /** Writes every request of the case at once on a new connection, then reads the answers in order. */
  async function runPipelined(c: FuzzCase): Promise<void> {
    const conn = await WireConnection.open(options.port);
    try {
      for (const ex of c.exchanges) conn.send(ex.head, ...(ex.body ? [ex.body] : []));
      for (const [i, ex] of c.exchanges.entries()) {
        let outcome: JudgedOutcome;
        try {
          outcome = await conn.read(ex.method === 'HEAD', Date.now() + options.answerTimeoutMs);
        } catch (error) {
          outcome = { kind: 'malformed', error: (error as Error).message };
        }
        report.exchanges++;
        record(c, i, outcome, judge(ex, outcome));
        if (outcome.kind !== 'response') break;
      }
    } finally {
      conn.destroy();
    }
  }

  async function runCase(c: FuzzCase, worker: { conn: WireConnection | undefined }): Promise<void> {
    if (c.pipelined) return runPipelined(c);
    const outcomes: JudgedOutcome[] = [];
    let conn = c.freshConnection ? undefined : worker.conn;
    for (const [i, ex] of c.exchanges.entries()) {
      let outcome: JudgedOutcome | 'aborted' | undefined;
      for (let attempt = 0; attempt < 2 && outcome === undefined; attempt++) {
        const reused = conn?.open;
        if (!reused) {
          conn?.destroy();
          conn = await WireConnection.open(options.port);
        }
        const live = conn as WireConnection;
        if (live.pending > 0) {
          outcome = { kind: 'malformed', error: `${live.pending} bytes arrived that no request asked for` };
          break;
        }
        const begin = Date.now();
        live.send(ex.head, ...(ex.body ? [ex.body] : []));
        if (ex.abortAfterMs !== undefined) {
          await new Promise((resolve) => setTimeout(resolve, ex.abortAfterMs));
          live.destroy();
          conn = undefined;
          outcome = 'aborted';
          break;
        }
        const halfClose = ex.halfCloseAfterMs === undefined ? undefined : setTimeout(() => live.halfClose(), ex.halfCloseAfterMs);
        let read: JudgedOutcome;
        try {
          read = await live.read(ex.method === 'HEAD', Date.now() + options.answerTimeoutMs);
        } catch (error) {
          read = { kind: 'malformed', error: (error as Error).message };
        }
        clearTimeout(halfClose);
        report.slowestAnswerMs = Math.max(report.slowestAnswerMs, Date.now() - begin);
        // A kept-alive connection the server had already closed: send again on a new one, as
        // every HTTP client does (once: a request that closes connections fails on a new one too).
        if (reused && read.kind === 'closed' && read.partial === 0 && attempt === 0) {
          live.destroy();
          conn = undefined;
          continue;
        }
        outcome = read;
      }
      if (outcome === 'aborted') {
        count(report.statuses, 'aborted by the client');
        outcomes.push({ kind: 'closed', partial: 0 });
        continue;
      }
      const final = outcome as JudgedOutcome;
      report.exchanges++;
      outcomes.push(final);
      record(c, i, final, judge(ex, final));
      if (final.kind !== 'response') {
        conn?.destroy();
        conn = undefined;
        break;
      }
      if ((header(final.response, 'connection') ?? '').toLowerCase().includes('close')) {
        conn?.destroy();
        conn = undefined;
      }
    }
    if (c.agree) {
      const [a, b] = c.agree;
      const first = outcomes[a];
      const second = outcomes[b];
      const problem = first && second ? agreementProblem(first, second) : undefined;
      const ex = c.exchanges[b];
      if (problem) report.violations.push({ ...problem, index: c.index, family: c.family, label: c.label, status: '-', request: ex ? printable(ex.head) : '' });
    }
    if (c.freshConnection) conn?.destroy();
    else worker.conn = conn;
  }

  async function worker(): Promise<void> {
    const state: { conn: WireConnection | undefined } = { conn: undefined };
    for (;;) {
      if (options.maxDurationMs !== undefined && Date.now() - started > options.maxDurationMs) {
        report.stoppedEarly = next < indices.length;
        break;
      }
      const position = next++;
      if (position >= indices.length) break;
      const index = indices[position] as number;
      const c = generateCase(ctx, index, slots, options.bodyLimit);
      report.cases++;
      report.byFamily[c.family]++;
      try {
        if (c.family === 'large') await largeLock.run(() => runCase(c, state));
        else await runCase(c, state);
      } catch (error) {
        report.violations.push({
          kind: 'closed-without-answer',
          detail: `the fuzzer could not run the case: ${(error as Error).message}`,
          index,
          family: c.family,
          label: c.label,
          status: '-',
          request: '',
        });
      }
      done++;
      if (done % options.healthEvery === 0) probes.push(probeHealth());
    }
    state.conn?.destroy();
  }

  await probeHealth();
  await Promise.all(Array.from({ length: options.concurrency }, () => worker()));
  await Promise.all(probes);
  await probeHealth();
  report.elapsedMs = Date.now() - started;
  return report;
}

export const VIOLATION_KINDS: readonly ViolationKind[] = [
  '5xx',
  'hang',
  'closed-without-answer',
  'malformed-response',
  'error-shape',
  'bad-2xx',
  'unexpected-status',
  'no-request-id',
  'header-injection',
  'disagreement',
  'healthz',
];

/** The statistics block, and the violations grouped by what they have in common. */
export function formatReport(report: FuzzReport, replay: (indices: number[]) => string, maxGroups = 40): string {
  const lines: string[] = [];
  const sorted = (map: Map<string, number>) =>
    [...map.entries()]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([k, v]) => `${k}:${v}`)
      .join(' ');
  const byKind = new Map<ViolationKind, number>();
  for (const v of report.violations) byKind.set(v.kind, (byKind.get(v.kind) ?? 0) + 1);
  const families = FAMILIES.map((f) => `${f} ${report.byFamily[f]}`).join(', ');
  const seconds = report.elapsedMs / 1000;
  lines.push(
    `fuzz: seed=${report.seed} cases=${report.cases} (${families}) exchanges=${report.exchanges} elapsed=${seconds.toFixed(1)} s (${Math.round(report.cases / Math.max(seconds, 0.001))} cases/s)${report.stoppedEarly ? ' STOPPED EARLY (time bound)' : ''}`,
  );
  lines.push(`fuzz: status ${sorted(report.statuses)}`);
  lines.push(`fuzz: x-cache ${sorted(report.xCache)}`);
  lines.push(`fuzz: 2xx checked by route ${sorted(report.checked2xx)}`);
  lines.push(
    `fuzz: 5xx=${byKind.get('5xx') ?? 0} hangs=${byKind.get('hang') ?? 0} shape-violations=${(byKind.get('error-shape') ?? 0) + (byKind.get('bad-2xx') ?? 0)} closed-without-answer=${byKind.get('closed-without-answer') ?? 0} disagreements=${byKind.get('disagreement') ?? 0} other=${VIOLATION_KINDS.filter((k) => !['5xx', 'hang', 'error-shape', 'bad-2xx', 'closed-without-answer', 'disagreement'].includes(k)).reduce((sum, k) => sum + (byKind.get(k) ?? 0), 0)}`,
  );
  lines.push(
    `fuzz: healthz ${report.healthProbes} probes, ${byKind.get('healthz') ?? 0} failed, slowest ${report.slowestHealthMs} ms; slowest answer ${report.slowestAnswerMs} ms`,
  );
  lines.push(...formatViolations('fuzz', report.violations, replay, maxGroups));
  return lines.join('\n');
}

/** Violations grouped by what went wrong, each group with where it showed and how to replay it. */
export function formatViolations(prefix: string, violations: readonly CaseViolation[], replay: (indices: number[]) => string, maxGroups = 40): string[] {
  const lines: string[] = [];
  if (violations.length === 0) return [`${prefix}: no violations`];
  // One root cause shows under many labels: group by what went wrong, list where it showed.
  const groups = new Map<string, CaseViolation[]>();
  for (const v of violations) {
    const key = `[${v.kind}] ${v.status} ${signature(v.detail)}`;
    const list = groups.get(key) ?? [];
    list.push(v);
    groups.set(key, list);
  }
  const ordered = [...groups.entries()].sort((a, b) => b[1].length - a[1].length);
  lines.push(`${prefix}: ${violations.length} violations in ${groups.size} groups${groups.size > maxGroups ? ` (first ${maxGroups} shown)` : ''}:`);
  for (const [key, list] of ordered.slice(0, maxGroups)) {
    const first = list[0] as CaseViolation;
    const labels = [...new Set(list.map((v) => `${v.family}: ${v.label}`))];
    const indices = [...new Set(list.map((v) => v.index))].slice(0, 5);
    lines.push(`  ${key} ×${list.length}`);
    lines.push(`      e.g. case ${first.index}: ${first.detail.slice(0, 300)}`);
    lines.push(`      in: ${labels.slice(0, 6).join(' | ')}${labels.length > 6 ? ` | …${labels.length - 6} more` : ''}`);
    if (first.request) lines.push(`      request: ${first.request.slice(0, 300)}`);
    lines.push(`      replay: ${replay(indices)}`);
  }
  return lines;
}

/** A violation's detail without what varies from case to case (numbers, quoted excerpts). */
function signature(detail: string): string {
  return detail
    .replace(/"(?:[^"\\]|\\.)*"/g, '"…"')
    .replace(/\d+/g, 'N')
    .slice(0, 90);
}

export { LARGE_KINDS };
