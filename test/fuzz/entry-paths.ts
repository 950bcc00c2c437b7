/**
 * The fuzz corpus sent two ways into the gateway. Every cached-route POST is served by the
 * cached routes' pipeline at the HTTP server, whatever its spelling or query; the query string
 * must change nothing (the route is the path, the cache key never holds the URL), and no such
 * request may reach Fastify. So each request of a case that names a cached route (POST to chat,
 * completions or embeddings, odd spellings of the path included) is sent again, each time alone
 * on a new connection:
 *
 *   1. "before": the input with `?x=1` added to its target, before its answer is stored;
 *   2. "prime": the input's canonical form (its body, unframed and uncompressed, with plain
 *      headers, to the route's exact URL), so the entry its cache key names is stored, as it
 *      would be for any client that asked the same plainly (skipped when the input is that);
 *   3. "as sent": the input's own bytes, answered from the stored entry when it can be;
 *   4. "?x=1": the twin of 3, from the same stored entry.
 *
 * Why `?x=1` makes a sound twin: the cache key is made of the scope, provider, route and body,
 * never the URL, and the route of a request is its path; the twin differs from the input in
 * nothing but its query. (It once also told the two ways in apart, when the hit fast path took
 * exact targets only and everything else went through Fastify.)
 *
 * Each worker has a gateway of its own: nothing else may reach it between the four requests
 * (another case with the same key, from a repeated prompt or a constant mutation value, could
 * refresh or regenerate the entry between 3 and 4, and two hits would then differ rightly).
 *
 * Compared (agreement.ts): 3 with 4 (one input, one stored state, two spellings of the target)
 * and 1 with 3 (the answer without the entry and with it). Every answer is also judged by the
 * oracle. The statistics count the pairs of 3 and 4 that were both hits, so a comparison that
 * stopped reaching the cache would show, and the requests of 3 and 4 that Fastify's hooks saw,
 * which must be none.
 */
import { createHash } from 'node:crypto';
import { disagreement } from './agreement.js';
import type { Exchange, FuzzCase, FuzzContext } from './cases.js';
import { WireConnection, header, requestHead } from './http-wire.js';
import { judge, routeOf, type JudgedOutcome } from './oracle.js';
import { jsonFacts, standardHeaders } from './requests.js';
import { Lock, formatViolations, generateCase, largeSlots, printable, type CaseViolation } from './run.js';

export interface EntryPathOptions {
  /** One gateway per worker (see above): the number of ports is the concurrency. */
  ports: readonly number[];
  clientKey: string;
  seed: number;
  cases: number;
  largeCases: number;
  bodyLimit: number;
  answerTimeoutMs: number;
  /** Only these case indices (a replay). */
  only?: readonly number[];
  maxDurationMs?: number;
  /** How many requests a gateway's Fastify has seen (its onRequest hook): a cached-route request must not be one. */
  fastifyRequests?: (port: number) => number;
}

export interface EntryPathReport {
  seed: number;
  /** Cases generated, and those with at least one cached-route request. */
  cases: number;
  casesCompared: number;
  inputs: number;
  pairs: number;
  /** X-Cache of "as sent" and of its `?x=1` twin. */
  twinCache: Map<string, number>;
  /** Pairs of two hits of one stored JSON entry, compared byte for byte. */
  byteCompared: number;
  /** Pairs of "as sent" and `?x=1` that were both hits. */
  hitPairs: number;
  /** Requests of those pairs that Fastify's hooks saw: none may (the pipeline owns the cached routes). */
  seenByFastify: number;
  violations: CaseViolation[];
  elapsedMs: number;
  stoppedEarly: boolean;
}

const CACHED_KINDS: ReadonlySet<string> = new Set(['chat', 'completions', 'embeddings', 'responses']);

interface Input {
  ex: Exchange;
  /** The route's exact URL. */
  path: string;
}

/** The distinct requests of a case that name a cached route (a client's hang-up is no input). */
export function cachedRouteInputs(c: FuzzCase): Input[] {
  const seen = new Set<string>();
  const inputs: Input[] = [];
  for (const ex of c.exchanges) {
    if (ex.abortAfterMs !== undefined || ex.method !== 'POST') continue;
    const route = routeOf(ex.target, 'POST');
    if (!CACHED_KINDS.has(route.kind)) continue;
    const hash = createHash('sha256')
      .update(ex.head)
      .update(ex.body ?? Buffer.alloc(0))
      .digest('hex');
    if (seen.has(hash)) continue;
    seen.add(hash);
    inputs.push({ ex, path: route.path });
  }
  return inputs;
}

/** `target` with `x=1` as its first query parameter, before any query or fragment it has. */
export function withQuery(target: string): string {
  const end = target.search(/[?#]/);
  if (end < 0) return `${target}?x=1`;
  const rest = target.slice(end);
  return `${target.slice(0, end)}?x=1${rest.startsWith('?') ? `&${rest.slice(1)}` : rest}`;
}

/** The exchange with another request target, every other byte as it was. */
export function retarget(ex: Exchange, target: string): Exchange {
  const space = ex.head.indexOf(0x20);
  const sent = Buffer.from(ex.target, 'latin1');
  if (space < 0 || !ex.head.subarray(space + 1, space + 1 + sent.length).equals(sent)) {
    throw new Error(`the request line does not hold the target ${JSON.stringify(ex.target.slice(0, 60))}`);
  }
  const head = Buffer.concat([ex.head.subarray(0, space + 1), Buffer.from(target, 'latin1'), ex.head.subarray(space + 1 + sent.length)]);
  return { ...ex, head, target };
}

/** The input as a plain client would send it; undefined when it is already that, or has no body. */
function canonicalOf(input: Input, ctx: FuzzContext): Exchange | undefined {
  const body = input.ex.plainBody ?? input.ex.body;
  if (!body || body.length === 0) return undefined;
  const head = requestHead('POST', input.path, standardHeaders(ctx, 'application/json', body));
  if (head.equals(input.ex.head) && input.ex.body !== undefined && body.equals(input.ex.body)) return undefined;
  return { head, body, method: 'POST', target: input.path, ...jsonFacts(body, true) };
}

/** One request alone on a new connection; the connection is closed after its answer. */
async function sendAlone(port: number, ex: Exchange, timeoutMs: number): Promise<JudgedOutcome> {
  let conn: WireConnection;
  try {
    conn = await WireConnection.open(port);
  } catch (error) {
    return { kind: 'malformed', error: `connect failed: ${(error as Error).message}` };
  }
  const halfClose = ex.halfCloseAfterMs === undefined ? undefined : setTimeout(() => conn.halfClose(), ex.halfCloseAfterMs);
  try {
    conn.send(ex.head, ...(ex.body ? [ex.body] : []));
    return await conn.read(false, Date.now() + timeoutMs);
  } catch (error) {
    return { kind: 'malformed', error: (error as Error).message };
  } finally {
    clearTimeout(halfClose);
    conn.destroy();
  }
}

export async function compareEntryPaths(options: EntryPathOptions): Promise<EntryPathReport> {
  const slots = largeSlots(options.cases, options.largeCases);
  const indices = options.only ? [...options.only] : Array.from({ length: options.cases }, (_, i) => i);
  const report: EntryPathReport = {
    seed: options.seed,
    cases: 0,
    casesCompared: 0,
    inputs: 0,
    pairs: 0,
    twinCache: new Map(),
    byteCompared: 0,
    hitPairs: 0,
    seenByFastify: 0,
    violations: [],
    elapsedMs: 0,
    stoppedEarly: false,
  };
  const started = Date.now();
  const largeLock = new Lock();
  let next = 0;

  async function compareInput(c: FuzzCase, input: Input, ctx: FuzzContext): Promise<void> {
    const twin = retarget(input.ex, withQuery(input.ex.target));
    const canonical = canonicalOf(input, ctx);
    const sent = await sendInOrder(ctx.port, input.ex, twin, canonical);
    report.inputs++;
    const violation = (kind: CaseViolation['kind'], detail: string, ex: Exchange, outcome: JudgedOutcome, step: string): void => {
      const status = outcome.kind === 'response' ? String(outcome.response.status) : outcome.kind;
      report.violations.push({ kind, detail, index: c.index, family: c.family, label: `${c.label} [${step}]`, status, request: printable(ex.head) });
    };
    const judged: Array<[string, Exchange, JudgedOutcome]> = [
      ['before', twin, sent.before],
      ['as sent', input.ex, sent.asSent],
      ['?x=1', twin, sent.twin],
    ];
    if (canonical && sent.primed) judged.push(['prime', canonical, sent.primed]);
    for (const [step, ex, outcome] of judged) {
      for (const v of judge(ex, outcome)) violation(v.kind, v.detail, ex, outcome, step);
    }
    const cachePair = `${cacheOf(sent.asSent)}/${cacheOf(sent.twin)}`;
    report.twinCache.set(cachePair, (report.twinCache.get(cachePair) ?? 0) + 1);
    if (isHit(sent.asSent) && isHit(sent.twin)) report.hitPairs++;
    if (sent.fastifySaw?.asSent) report.seenByFastify++;
    if (sent.fastifySaw?.twin) report.seenByFastify++;
    if (bothJsonHits(sent.asSent, sent.twin)) report.byteCompared++;
    report.pairs += 2;
    const twoWays = disagreement(sent.asSent, sent.twin, ['as sent', '?x=1']);
    if (twoWays) violation('disagreement', `with and without a query: ${twoWays}`, input.ex, sent.asSent, 'as sent vs ?x=1');
    const storedOrNot = disagreement(sent.before, sent.asSent, ['before stored', 'once stored']);
    if (storedOrNot) violation('disagreement', `with and without the entry: ${storedOrNot}`, input.ex, sent.asSent, 'before vs as sent');
  }

  /** The four requests of an input, in order, each alone on a new connection. */
  async function sendInOrder(port: number, asSent: Exchange, twin: Exchange, canonical: Exchange | undefined): Promise<Sent> {
    const send = (ex: Exchange) => sendAlone(port, ex, options.answerTimeoutMs);
    const before = await send(twin);
    const primed = canonical ? await send(canonical) : undefined;
    if (asSent.halfCloseAfterMs !== undefined) {
      // A request the client half-closes to end it (a body that may never arrive whole) waits
      // out the half-close: the last two are sent at once, to wait once, in one stored state.
      const [first, second] = await Promise.all([send(asSent), send(twin)]);
      return { before, primed, asSent: first, twin: second };
    }
    // Nothing else reaches this gateway meanwhile: a request Fastify saw during a send is that one.
    const counted = options.fastifyRequests;
    const seen = () => counted?.(port) ?? 0;
    const start = seen();
    const first = await send(asSent);
    const afterFirst = seen();
    const second = await send(twin);
    const fastifySaw = counted ? { asSent: afterFirst > start, twin: seen() > afterFirst } : undefined;
    return { before, primed, asSent: first, twin: second, ...(fastifySaw ? { fastifySaw } : {}) };
  }

  async function worker(port: number): Promise<void> {
    const ctx: FuzzContext = { port, clientKey: options.clientKey, seed: options.seed };
    for (;;) {
      if (options.maxDurationMs !== undefined && Date.now() - started > options.maxDurationMs) {
        report.stoppedEarly = next < indices.length;
        break;
      }
      const position = next++;
      if (position >= indices.length) break;
      const index = indices[position] as number;
      // The same case as the main run's, its Host (and absolute targets) naming this gateway.
      const c = generateCase(ctx, index, slots, options.bodyLimit);
      report.cases++;
      const inputs = cachedRouteInputs(c);
      if (inputs.length === 0) continue;
      report.casesCompared++;
      try {
        const run = async () => {
          for (const input of inputs) await compareInput(c, input, ctx);
        };
        if (c.family === 'large') await largeLock.run(run);
        else await run();
      } catch (error) {
        report.violations.push({
          kind: 'closed-without-answer',
          detail: `the comparison could not run: ${(error as Error).message}`,
          index,
          family: c.family,
          label: c.label,
          status: '-',
          request: '',
        });
      }
    }
  }

  await Promise.all(options.ports.map((port) => worker(port)));
  report.elapsedMs = Date.now() - started;
  return report;
}

interface Sent {
  before: JudgedOutcome;
  primed: JudgedOutcome | undefined;
  asSent: JudgedOutcome;
  twin: JudgedOutcome;
  /** Whether Fastify's hooks saw each of the last two (when the gateways count them). */
  fastifySaw?: { asSent: boolean; twin: boolean };
}

function cacheOf(o: JudgedOutcome): string {
  return o.kind === 'response' ? (header(o.response, 'x-cache') ?? String(o.response.status)) : o.kind;
}

function isHit(o: JudgedOutcome): boolean {
  return o.kind === 'response' && header(o.response, 'x-cache') === 'HIT';
}

function bothJsonHits(a: JudgedOutcome, b: JudgedOutcome): boolean {
  const hit = (o: JudgedOutcome) =>
    o.kind === 'response' &&
    o.response.status === 200 &&
    header(o.response, 'x-cache') === 'HIT' &&
    (header(o.response, 'content-type') ?? '').startsWith('application/json');
  return hit(a) && hit(b);
}

/** The statistics block of the comparison, and its violations with what it takes to replay them. */
export function formatEntryPathReport(report: EntryPathReport, replay: (indices: number[]) => string): string {
  const disagreements = report.violations.filter((v) => v.kind === 'disagreement').length;
  const seconds = report.elapsedMs / 1000;
  const cache = [...report.twinCache.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}:${v}`)
    .join(' ');
  return [
    `fuzz ways in: seed=${report.seed} cases=${report.cases}, ${report.casesCompared} with a cached-route request; inputs=${report.inputs} compared pairs=${report.pairs} (as sent vs ?x=1, before vs once stored) elapsed=${seconds.toFixed(1)} s${report.stoppedEarly ? ' STOPPED EARLY (time bound)' : ''}`,
    `fuzz ways in: X-Cache as sent/?x=1 ${cache}; two hits of one JSON entry compared byte for byte: ${report.byteCompared}`,
    `fuzz ways in: pairs of two hits: ${report.hitPairs}; cached-route requests that reached Fastify's hooks: ${report.seenByFastify} (must be 0)`,
    `fuzz ways in: disagreements=${disagreements} other violations=${report.violations.length - disagreements}`,
    ...formatViolations('fuzz ways in', report.violations, replay),
  ].join('\n');
}
