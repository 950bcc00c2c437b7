/** The benchmark's knobs, from the environment (all optional; the defaults are the published run). */

export interface BenchOptions {
  /** Seconds of load per throughput row (BENCH_DURATION), split into `rounds` slices. Concurrency-1 rows take half of it. */
  durationSeconds: number;
  /** Each comparison runs its contenders in this many interleaved slices (BENCH_ROUNDS). */
  rounds: number;
  /** Seconds of load before each measured run, not counted (BENCH_WARMUP). */
  warmupSeconds: number;
  /** Connections of the throughput scenarios (BENCH_CONNECTIONS). */
  connections: number;
  /** Tokens in every answer (BENCH_ANSWER_TOKENS); sets the size of a cached answer. */
  answerTokens: number;
  /** Upstream delay before an answer in the throughput scenarios, ms (BENCH_UPSTREAM_DELAY_MS). */
  upstreamDelayMs: number;
  /** Upstream delay before the first token of a stream, ms (BENCH_STREAM_DELAY_MS). */
  streamDelayMs: number;
  /** Upstream token rate of streams, tokens/s (BENCH_TOKEN_RATE). */
  tokensPerSecond: number;
  /** Identical concurrent requests of the coalescing storm (BENCH_STORM_SIZE). */
  stormSize: number;
  /** Requests of the replayed mixed workload (BENCH_MIXED_REQUESTS) and their repeat share (BENCH_REPEAT_SHARE). */
  mixedRequests: number;
  repeatShare: number;
  /** Comma-separated scenario ids to run (BENCH_ONLY); all when unset. */
  only: Set<string> | undefined;
  /** Start gateways with --cpu-prof, profiles under bench/results/ (BENCH_CPU_PROF=1). */
  cpuProfile: boolean;
  /** Node flags of the gateway processes (BENCH_GATEWAY_NODE_OPTIONS); the default is docker-compose.yml's NODE_OPTIONS. */
  gatewayNodeFlags: string[];
  /**
   * A baseline gateway measured in the same interleaved rounds (BENCH_BASELINE): a directory with
   * src/ and the tsconfig files, or a git revision to take them from. Adds `-baseline` rows.
   */
  baseline: string | undefined;
  /** Run the gateway from src/ through tsx (BENCH_GATEWAY=tsx) instead of compiling it first. */
  gatewayThroughTsx: boolean;
  /**
   * The soak (only with BENCH_ONLY=soak: minutes, not part of the full run): seconds of measured
   * mixed load (SOAK_SECONDS), after a warm-up of SOAK_WARMUP_SECONDS.
   */
  soakSeconds: number;
  soakWarmupSeconds: number;
}

function number(name: string, fallback: number, min: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < min) throw new Error(`${name} must be a number >= ${min}, got "${raw}"`);
  return value;
}

export function loadOptions(): BenchOptions {
  const durationSeconds = number('BENCH_DURATION', 10, 1);
  const only = process.env.BENCH_ONLY?.trim();
  return {
    durationSeconds,
    rounds: Math.round(number('BENCH_ROUNDS', 3, 1)),
    warmupSeconds: number('BENCH_WARMUP', Math.min(2, Math.max(1, durationSeconds / 5)), 0),
    connections: number('BENCH_CONNECTIONS', 50, 1),
    answerTokens: number('BENCH_ANSWER_TOKENS', 120, 1),
    upstreamDelayMs: number('BENCH_UPSTREAM_DELAY_MS', 0, 0),
    streamDelayMs: number('BENCH_STREAM_DELAY_MS', 20, 0),
    tokensPerSecond: number('BENCH_TOKEN_RATE', 2000, 0),
    stormSize: number('BENCH_STORM_SIZE', 200, 2),
    mixedRequests: number('BENCH_MIXED_REQUESTS', 3000, 10),
    repeatShare: number('BENCH_REPEAT_SHARE', 0.5, 0),
    only: only ? new Set(only.split(',').map((id) => id.trim())) : undefined,
    cpuProfile: process.env.BENCH_CPU_PROF === '1',
    gatewayThroughTsx: process.env.BENCH_GATEWAY === 'tsx',
    soakSeconds: number('SOAK_SECONDS', 180, 10),
    soakWarmupSeconds: number('SOAK_WARMUP_SECONDS', 60, 5),
    baseline: process.env.BENCH_BASELINE?.trim() || undefined,
    gatewayNodeFlags: (process.env.BENCH_GATEWAY_NODE_OPTIONS ?? '--max-old-space-size=160 --max-semi-space-size=8').split(/\s+/).filter(Boolean),
  };
}
