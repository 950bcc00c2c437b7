/**
 * The scale-out rows: gateway replicas on one redis-server behind the deployment's Nginx load
 * balancer (an `upstream` block with keepalive, round robin). Hits and misses through Nginx in
 * front of one replica and in front of two, interleaved in the same rounds; and the coalescing
 * storm split over the two replicas, against the same storm through Nginx in front of one.
 */
import { join } from 'node:path';
import { Pool } from 'undici';
import { summarize } from './load.js';
import { nginxBalancerConfig, startNginxWith, type RunningNginx } from './nginx.js';
import type { BenchOptions } from './options.js';
import { freePort } from './processes.js';
import type { ScenarioResult } from './results.js';
import { runTag, stormOnce, upstreamCalls, type Contender, type SliceCheck, type StormForm } from './scenarios.js';
import { metricSum, type FakeUpstreamProcess, type GatewayProcess } from './services.js';

/** BENCH_ONLY ids: `replicas` selects every row below, a group name its rows, a row id itself. */
export const REPLICA_GROUPS = {
  hits: ['replicas-hit-1', 'replicas-hit-2'],
  misses: ['replicas-miss-1', 'replicas-miss-2'],
  storms: ['replicas-storm-json-1', 'replicas-storm-json-2', 'replicas-storm-stream-1', 'replicas-storm-stream-2'],
} as const;
const GROUP_NAMES: Record<keyof typeof REPLICA_GROUPS, string> = { hits: 'replicas-hit', misses: 'replicas-miss', storms: 'replicas-storm' };

/** The row ids of `group` that `only` (BENCH_ONLY) asks for; every row when unset. */
export function wantedReplicaRows(only: Set<string> | undefined, group: keyof typeof REPLICA_GROUPS): string[] {
  const rows: readonly string[] = REPLICA_GROUPS[group];
  if (!only || only.has('replicas') || only.has(GROUP_NAMES[group])) return [...rows];
  return rows.filter((row) => only.has(row));
}

export function wantsAnyReplicaRow(only: Set<string> | undefined): boolean {
  return (Object.keys(REPLICA_GROUPS) as Array<keyof typeof REPLICA_GROUPS>).some((group) => wantedReplicaRows(only, group).length > 0);
}

export interface ReplicaStack {
  /** Two gateway processes on the same Redis database. */
  replicas: [GatewayProcess, GatewayProcess];
  /** Index n-1: Nginx in front of the first n replicas (the same configuration otherwise). */
  balancers: [RunningNginx, RunningNginx];
}

/**
 * Starts two replicas (`startReplica` gives them the bench's usual gateway flags) and two Nginx
 * instances from the same configuration: one lists the first replica, the other both.
 */
export async function startReplicaStack(nginxBinary: string, dir: string, startReplica: (name: string) => Promise<GatewayProcess>): Promise<ReplicaStack> {
  const replicas = (await Promise.all([startReplica('replica-a'), startReplica('replica-b')])) as [GatewayProcess, GatewayProcess];
  const ports = replicas.map((replica) => Number(new URL(replica.url).port));
  const balancer = async (count: number): Promise<RunningNginx> => {
    const balancerDir = join(dir, `nginx-${count}-replica`);
    const port = await freePort();
    return startNginxWith(nginxBinary, balancerDir, port, nginxBalancerConfig(balancerDir, port, ports.slice(0, count)));
  };
  return { replicas, balancers: [await balancer(1), await balancer(2)] };
}

/**
 * Around each slice: cache outcomes summed over the replicas behind the balancer, upstream calls,
 * and (two replicas) the share of requests the second one answered, which shows the round robin.
 */
function replicasCheck(replicas: readonly GatewayProcess[], fake: FakeUpstreamProcess): SliceCheck {
  let before: string[] = [];
  let callsBefore = 0;
  return {
    async before() {
      before = await Promise.all(replicas.map((replica) => replica.metrics()));
      callsBefore = await upstreamCalls(fake);
    },
    async after() {
      const after = await Promise.all(replicas.map((replica) => replica.metrics()));
      const delta = (name: string, index?: number): number =>
        after.reduce((sum, text, i) => (index === undefined || index === i ? sum + metricSum(text, name) - metricSum(before[i]!, name) : sum), 0);
      return {
        hitShare: delta('gateway_cache_hits_total'),
        missShare: delta('gateway_cache_misses_total'),
        upstreamCallsPerRequest: (await upstreamCalls(fake)) - callsBefore,
        ...(replicas.length > 1 ? { secondReplicaShare: delta('gateway_requests_total', 1) } : {}),
      };
    },
  };
}

/**
 * The throughput contenders of `ids` (replicas-hit-N or replicas-miss-N). The server measured is
 * Nginx and the replicas behind it together; fake upstream and redis-server are the helpers.
 */
export function replicaContenders(
  stack: ReplicaStack,
  ids: readonly string[],
  fake: FakeUpstreamProcess,
  redisPid: number,
  body: Contender['body'],
): Contender[] {
  return ids.map((id) => {
    const count = Number(id.slice(id.lastIndexOf('-') + 1));
    const balancer = stack.balancers[count - 1]!;
    const replicas = stack.replicas.slice(0, count);
    const kind = id.startsWith('replicas-hit') ? 'hit' : 'miss, unique bodies';
    return {
      spec: {
        id,
        title: `10 Nginx + ${count} gateway${count > 1 ? 's' : ''}, one Redis: ${kind}`,
        server: `nginx + ${count} gateway${count > 1 ? 's' : ''}`,
      },
      target: {
        url: balancer.url,
        pids: () => [...balancer.pids(), ...replicas.map((replica) => replica.managed.pid)],
        helperPids: () => [fake.managed.pid, redisPid],
      },
      body,
      check: replicasCheck(replicas, fake),
    };
  });
}

const OUTCOMES = ['MISS', 'COALESCED', 'HIT', 'BYPASS'] as const;

/**
 * The storm's streams last ~1.3 s (100 ms, then 120 tokens at 100/s): longer than a lease
 * renewal (500 ms), when a leader first sees that another replica follows it and starts relaying
 * as it goes, so the rows show that live relay (and the follower's first byte), not only a short
 * answer handed over whole at its end.
 */
const STORM_TOKENS_PER_SECOND = 100;

/** What each replica answered during one storm, by cache outcome (its own request counter). */
async function outcomesPerReplica(replicas: readonly GatewayProcess[], run: () => Promise<void>): Promise<Array<Record<string, number>>> {
  const before = await Promise.all(replicas.map((replica) => replica.metrics()));
  await run();
  // A request is counted as its response ends: give the last hooks a moment.
  await new Promise((resolve) => setTimeout(resolve, 100));
  const after = await Promise.all(replicas.map((replica) => replica.metrics()));
  return replicas.map((_, i) =>
    Object.fromEntries(
      OUTCOMES.map((cache) => [cache, metricSum(after[i]!, 'gateway_requests_total', { cache }) - metricSum(before[i]!, 'gateway_requests_total', { cache })]),
    ),
  );
}

interface StormTally {
  latencies: number[];
  firstBytes: number[];
  seconds: number;
  answered: number;
  errors: number;
  callsPerStorm: number[];
  distinctPerStorm: number[];
  perReplica: Array<Record<string, number>>;
}

/**
 * `options.stormSize` identical requests at once through Nginx, in front of one replica and of
 * two (round robin splits them evenly), `options.rounds` times each in alternating order, JSON
 * then streams (in two waves, as in the single-gateway storm, but longer). Each storm must make one
 * upstream call and give every client the same bytes; the other replica's requests are answered
 * from the leader's relay in Redis.
 */
export async function replicaStorms(stack: ReplicaStack, fake: FakeUpstreamProcess, options: BenchOptions, ids: readonly string[]): Promise<ScenarioResult[]> {
  const size = options.stormSize;
  const pools = stack.balancers.map((balancer) => new Pool(balancer.url, { connections: size }));
  const results: ScenarioResult[] = [];
  try {
    for (const form of ['json', 'stream'] as const satisfies readonly StormForm[]) {
      const counts = [1, 2].filter((count) => ids.includes(`replicas-storm-${form}-${count}`));
      if (counts.length === 0) continue;
      const tallies = new Map<number, StormTally>(
        counts.map((count) => [
          count,
          { latencies: [], firstBytes: [], seconds: 0, answered: 0, errors: 0, callsPerStorm: [], distinctPerStorm: [], perReplica: [] },
        ]),
      );
      for (let round = 0; round < options.rounds; round++) {
        const order = round % 2 === 0 ? counts : [...counts].reverse();
        for (const count of order) {
          const tally = tallies.get(count)!;
          const replicas = stack.replicas.slice(0, count);
          let storm: Awaited<ReturnType<typeof stormOnce>> | undefined;
          const started = performance.now();
          const perReplica = await outcomesPerReplica(replicas, async () => {
            storm = await stormOnce(pools[count - 1]!, fake, form, size, `replicas-storm-${runTag}-${form}-${count}-${round}`, STORM_TOKENS_PER_SECOND);
          });
          tally.seconds += (performance.now() - started) / 1000;
          tally.callsPerStorm.push(storm!.upstreamCallsMade);
          tally.distinctPerStorm.push(new Set(storm!.responses.map((response) => response.body)).size);
          for (const response of storm!.responses) {
            if (response.status === 200) tally.answered++;
            else tally.errors++;
            tally.latencies.push(response.totalMs);
            tally.firstBytes.push(response.firstByteMs);
          }
          perReplica.forEach((outcomes, i) => {
            const sum = (tally.perReplica[i] ??= {});
            for (const [cache, value] of Object.entries(outcomes)) if (value > 0) sum[cache] = (sum[cache] ?? 0) + value;
          });
        }
      }
      for (const count of counts) results.push(stormRow(form, count, size, tallies.get(count)!));
    }
  } finally {
    await Promise.all(pools.map((pool) => pool.close()));
  }
  return results;
}

function stormRow(form: StormForm, count: number, size: number, tally: StormTally): ScenarioResult {
  const latency = summarize(tally.latencies);
  // A stream's first byte: on two replicas, when the other replica's clients got the leader's first event.
  const firstByte = form === 'stream' ? summarize(tally.firstBytes) : undefined;
  const notes: string[] = [];
  const maxCalls = Math.max(...tally.callsPerStorm);
  const maxDistinct = Math.max(...tally.distinctPerStorm);
  if (maxCalls !== 1) notes.push(`upstream calls per storm ${tally.callsPerStorm.join('/')}, expected 1`);
  if (maxDistinct !== 1) notes.push(`${maxDistinct} different answers for identical requests in one storm`);
  return {
    id: `replicas-storm-${form}-${count}`,
    title: `10 storm through Nginx, ${count} gateway${count > 1 ? 's' : ''}: ${size} identical ${form === 'json' ? 'JSON' : 'streams (2 waves)'}`,
    server: `nginx + ${count} gateway${count > 1 ? 's' : ''}`,
    connections: size,
    requests: tally.answered,
    seconds: tally.seconds,
    requestsPerSecond: tally.answered / tally.seconds,
    p50Ms: latency.p50Ms,
    p99Ms: latency.p99Ms,
    ...(firstByte ? { firstByteP50Ms: firstByte.p50Ms, firstByteP99Ms: firstByte.p99Ms } : {}),
    errors: tally.errors,
    details: {
      storms: tally.callsPerStorm.length,
      upstreamCallsPerStorm: tally.callsPerStorm.join('/'),
      maxUpstreamCalls: maxCalls,
      maxDistinctAnswers: maxDistinct,
      ...(firstByte ? { firstByteP99Ms: firstByte.p99Ms } : {}),
      xCache: tally.perReplica
        .map(
          (outcomes, i) =>
            `${count > 1 ? `replica ${'ab'[i]} ` : ''}${Object.entries(outcomes)
              .map(([cache, value]) => `${cache}:${value}`)
              .join(' ')}`,
        )
        .join(', '),
    },
    notes,
  };
}
