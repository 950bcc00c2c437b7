/**
 * Usage counted in Redis, shared by every replica: atomic scripts (HINCRBY, and a compare-then-
 * increment for rate limits), each hash expiring at its period's end (PEXPIREAT).
 *
 * Redis never decides whether a request is served: a command that fails (Redis down, slow, failing
 * over) is answered from what this replica knows, the last values Redis gave plus what it counted
 * since, and those additions are sent when Redis answers again. During an outage each replica thus
 * enforces the limits on its own view (the shared spend as last seen plus its own), so a budget can
 * be overshot by what the other replicas spend meanwhile, and no request is refused for the outage.
 */
import { type CounterAdd, ExpiringHashes, type FieldRef, type Maybe, type UsageCounters } from './counters.js';

/** What the counters need of a Redis client (a plain one, a Cluster or a Sentinel-managed one). */
export interface CounterRedis {
  evalScript(script: string, keys: readonly string[], args: ReadonlyArray<string | number>): Promise<unknown>;
  hgetall(key: string): Promise<Record<string, string>>;
  close(): Promise<void>;
}

/**
 * One hash tag for every key: a Redis Cluster keeps them in one slot, so a script may touch the
 * day's, the month's and the minute's hashes at once.
 */
const KEY_PREFIX = 'cachegate:limits:{usage}:';
const FLUSH_INTERVAL_MS = 1_000;

const ADD_SCRIPT = `
local out = {}
local a = 1
for i = 1, #KEYS do
  local endsAt = ARGV[a]
  local n = tonumber(ARGV[a + 1])
  a = a + 2
  for j = 1, n do
    out[#out + 1] = redis.call('HINCRBY', KEYS[i], ARGV[a], ARGV[a + 1])
    a = a + 2
  end
  redis.call('PEXPIREAT', KEYS[i], endsAt)
end
return out`;

const READ_SCRIPT = `
local out = {}
for i = 1, #KEYS do
  out[i] = tonumber(redis.call('HGET', KEYS[i], ARGV[i]) or '0')
end
return out`;

const TAKE_SCRIPT = `
local count = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if count >= tonumber(ARGV[2]) then return {0, count} end
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
return {1, count}`;

export interface RedisCountersOptions {
  now: () => number;
  /** Called when Redis stops or starts answering the counters (for one log line each way). */
  onStatus?: (up: boolean) => void;
}

export class RedisCounters implements UsageCounters {
  /** The values Redis last gave (or made) for each field. */
  private readonly known: ExpiringHashes;
  /** Additions not in Redis yet: batched, or made while it did not answer. */
  private readonly pending: ExpiringHashes;
  private readonly flushTimer: NodeJS.Timeout;
  private flushing: Promise<void> | undefined;
  private up = true;

  constructor(
    private readonly redis: CounterRedis,
    private readonly options: RedisCountersOptions,
  ) {
    this.known = new ExpiringHashes(options.now);
    this.pending = new ExpiringHashes(options.now);
    this.flushTimer = setInterval(() => void this.flush(), FLUSH_INTERVAL_MS).unref();
  }

  add(adds: readonly CounterAdd[]): void {
    void this.send(adds);
  }

  addLater(adds: readonly CounterAdd[]): void {
    for (const { hash, endsAt, field, by } of adds) this.pending.add(hash, endsAt, field, by);
  }

  read(fields: readonly FieldRef[]): Promise<number[]> {
    const keys = fields.map(({ hash }) => KEY_PREFIX + hash);
    return this.redis
      .evalScript(
        READ_SCRIPT,
        keys,
        fields.map(({ field }) => field),
      )
      .then(
        (values) => {
          this.answered();
          return fields.map(({ hash, field, endsAt }, index) => {
            const value = Number((values as unknown[])[index] ?? 0);
            this.remember(hash, field, value, endsAt);
            return value + this.pending.get(hash, field);
          });
        },
        () => {
          this.failed();
          return fields.map(({ hash, field }) => this.localValue(hash, field));
        },
      );
  }

  takeIfBelow(hash: string, endsAt: number, field: string, limit: number): Maybe<{ taken: boolean; count: number }> {
    return this.redis.evalScript(TAKE_SCRIPT, [KEY_PREFIX + hash], [field, limit, endsAt]).then(
      (reply) => {
        this.answered();
        const [taken, count] = (reply as [number, number]).map(Number) as [number, number];
        this.remember(hash, field, taken === 1 ? count + 1 : count, endsAt);
        return { taken: taken === 1, count };
      },
      () => {
        this.failed();
        const count = this.localValue(hash, field);
        if (count >= limit) return { taken: false, count };
        this.pending.add(hash, endsAt, field, 1);
        return { taken: true, count };
      },
    );
  }

  readAll(hash: string): Promise<Map<string, number>> {
    return this.redis.hgetall(KEY_PREFIX + hash).then(
      (fields) => {
        this.answered();
        const values = new Map<string, number>();
        for (const [field, value] of Object.entries(fields)) values.set(field, Number(value));
        for (const [field, by] of this.pending.all(hash)) values.set(field, (values.get(field) ?? 0) + by);
        return values;
      },
      () => {
        this.failed();
        const values = this.known.all(hash);
        for (const [field, by] of this.pending.all(hash)) values.set(field, (values.get(field) ?? 0) + by);
        return values;
      },
    );
  }

  async close(): Promise<void> {
    clearInterval(this.flushTimer);
    await this.flush();
  }

  /** Sends the batched additions; kept for the next try when Redis does not take them. */
  flush(): Promise<void> {
    if (this.flushing) return this.flushing;
    if (this.pending.size === 0) return Promise.resolve();
    const adds = this.pending.drain();
    this.flushing = this.send(adds).finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }

  private async send(adds: readonly CounterAdd[]): Promise<void> {
    if (adds.length === 0) return;
    const byHash = new Map<string, CounterAdd[]>();
    for (const add of adds) {
      const group = byHash.get(add.hash);
      if (group) group.push(add);
      else byHash.set(add.hash, [add]);
    }
    const keys: string[] = [];
    const args: Array<string | number> = [];
    const order: CounterAdd[] = [];
    for (const [hash, group] of byHash) {
      keys.push(KEY_PREFIX + hash);
      args.push(group[0]!.endsAt, group.length);
      for (const add of group) {
        args.push(add.field, add.by);
        order.push(add);
      }
    }
    try {
      const values = (await this.redis.evalScript(ADD_SCRIPT, keys, args)) as unknown[];
      this.answered();
      for (const [index, add] of order.entries()) this.remember(add.hash, add.field, Number(values[index] ?? 0), add.endsAt);
    } catch {
      this.failed();
      for (const { hash, endsAt, field, by } of adds) this.pending.add(hash, endsAt, field, by);
    }
  }

  /** What this replica knows of a field while Redis does not answer. */
  private localValue(hash: string, field: string): number {
    return this.known.get(hash, field) + this.pending.get(hash, field);
  }

  private remember(hash: string, field: string, value: number, endsAt: number): void {
    this.known.set(hash, endsAt, field, value);
  }

  private answered(): void {
    if (this.up) return;
    this.up = true;
    this.options.onStatus?.(true);
    void this.flush();
  }

  private failed(): void {
    if (!this.up) return;
    this.up = false;
    this.options.onStatus?.(false);
  }
}
