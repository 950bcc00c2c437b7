/**
 * Usage counted in Redis, shared by every replica: atomic scripts (HINCRBY, and a compare-then-
 * increment for rate limits), each hash expiring at its period's end (PEXPIREAT).
 *
 * Redis never decides whether a request is served: a command that fails (Redis down, slow, failing
 * over) is answered from what this replica knows, the last values Redis gave plus what it counted
 * since, and those additions are sent again until Redis has them. During an outage each replica
 * thus enforces the limits on its own view (the shared spend as last seen plus its own), so a budget
 * can be overshot by what the other replicas spend meanwhile, and no request is refused for the
 * outage.
 *
 * A command that timed out may still have run (a Redis that was only slow, or paused, runs what
 * its socket holds when it resumes): every batch of additions carries an id, which the script
 * records, so sending it again never counts it twice.
 */
import { randomUUID } from 'node:crypto';
import { type CounterAdd, ExpiringHashes, type FieldRef, type Maybe, type UsageCounters } from './counters.js';

/** What the counters need of a Redis client (a plain one, a Cluster or a Sentinel-managed one). */
export interface CounterRedis {
  evalScript(script: string, keys: readonly string[], args: ReadonlyArray<string | number>): Promise<unknown>;
  hgetall(key: string): Promise<Record<string, string>>;
  close(): Promise<void>;
}

/**
 * One hash tag for every key: a Redis Cluster keeps them in one slot, so a script may touch the
 * day's, the month's and the minute's hashes (and a batch's id) at once.
 */
const KEY_PREFIX = 'cachegate:limits:{usage}:';
const BATCH_PREFIX = `${KEY_PREFIX}batch:`;
/** How long a batch's id is remembered: far longer than a command can wait in a socket. */
const BATCH_ID_TTL_MS = 600_000;
const FLUSH_INTERVAL_MS = 1_000;

/** KEYS[1]: the batch's id; KEYS[2..]: hashes. ARGV: the id's lifetime, then per hash its end, n, and n field/amount pairs. */
const ADD_SCRIPT = `
local fresh = redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1])
local out = {}
local a = 2
for i = 2, #KEYS do
  local endsAt = ARGV[a]
  local n = tonumber(ARGV[a + 1])
  a = a + 2
  for j = 1, n do
    if fresh then
      out[#out + 1] = redis.call('HINCRBY', KEYS[i], ARGV[a], ARGV[a + 1])
    else
      out[#out + 1] = tonumber(redis.call('HGET', KEYS[i], ARGV[a]) or '0')
    end
    a = a + 2
  end
  if fresh then redis.call('PEXPIREAT', KEYS[i], endsAt) end
end
return out`;

const READ_SCRIPT = `
local out = {}
for i = 1, #KEYS do
  out[i] = tonumber(redis.call('HGET', KEYS[i], ARGV[i]) or '0')
end
return out`;

/** KEYS[1]: the hash; KEYS[2]: the id the increment is recorded under. ARGV: field, limit, end, the id's lifetime. */
const TAKE_SCRIPT = `
local count = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if count >= tonumber(ARGV[2]) then return {0, count} end
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
redis.call('SET', KEYS[2], '1', 'PX', ARGV[4])
return {1, count}`;

export interface RedisCountersOptions {
  now: () => number;
  /** Called when Redis stops or starts answering the counters (for one log line each way). */
  onStatus?: (up: boolean) => void;
}

export class RedisCounters implements UsageCounters {
  /** The values Redis last gave (or made) for each field. */
  private readonly known: ExpiringHashes;
  /** Additions batched for the next flush (counts nothing is refused on). */
  private readonly later: ExpiringHashes;
  /** Batches Redis has not confirmed, by id, and their sum per field. */
  private readonly unsent = new Map<string, readonly CounterAdd[]>();
  private readonly unsentTotals: ExpiringHashes;
  /**
   * The part of unsentTotals whose batch is on its way to Redis. Redis runs one connection's
   * commands in order, so a read sent after such a batch already counts it: a read leaves it out
   * of what it adds locally, or the batch would be counted twice until its reply is handled.
   */
  private readonly inFlightTotals: ExpiringHashes;
  private readonly flushTimer: NodeJS.Timeout;
  private flushing: Promise<void> | undefined;
  private up = true;

  constructor(
    private readonly redis: CounterRedis,
    private readonly options: RedisCountersOptions,
  ) {
    this.known = new ExpiringHashes(options.now);
    this.later = new ExpiringHashes(options.now);
    this.unsentTotals = new ExpiringHashes(options.now);
    this.inFlightTotals = new ExpiringHashes(options.now);
    this.flushTimer = setInterval(() => void this.flush(), FLUSH_INTERVAL_MS).unref();
  }

  add(adds: readonly CounterAdd[]): void {
    const id = randomUUID();
    // Counted locally only once Redis failed to take it: a read answered meanwhile already has it.
    void this.send(id, adds).then((sent) => {
      if (!sent) this.keepUnsent(id, adds);
    });
  }

  addLater(adds: readonly CounterAdd[]): void {
    for (const { hash, endsAt, field, by } of adds) this.later.add(hash, endsAt, field, by);
  }

  read(fields: readonly FieldRef[]): Promise<number[]> {
    const keys = fields.map(({ hash }) => KEY_PREFIX + hash);
    const names = fields.map(({ field }) => field);
    // What Redis will not hold when it runs this read, taken now: batches sent before it are in.
    const local = fields.map(({ hash, field }) => this.notInRedis(hash, field) - this.inFlightTotals.get(hash, field));
    return this.redis.evalScript(READ_SCRIPT, keys, names).then(
      (values) => {
        this.answered();
        return fields.map(({ hash, field, endsAt }, index) => {
          const value = Number((values as unknown[])[index] ?? 0);
          this.known.set(hash, endsAt, field, value);
          return value + local[index]!;
        });
      },
      () => {
        this.failed();
        return fields.map(({ hash, field }) => this.known.get(hash, field) + this.notInRedis(hash, field));
      },
    );
  }

  takeIfBelow(hash: string, endsAt: number, field: string, limit: number): Maybe<{ taken: boolean; count: number }> {
    const id = randomUUID();
    return this.redis.evalScript(TAKE_SCRIPT, [KEY_PREFIX + hash, BATCH_PREFIX + id], [field, limit, endsAt, BATCH_ID_TTL_MS]).then(
      (reply) => {
        this.answered();
        const [taken, count] = (reply as [number, number]).map(Number) as [number, number];
        this.known.set(hash, endsAt, field, taken === 1 ? count + 1 : count);
        return { taken: taken === 1, count };
      },
      () => {
        this.failed();
        const count = this.known.get(hash, field) + this.notInRedis(hash, field);
        if (count >= limit) return { taken: false, count };
        // Under the take's id: if the take did run after all, this is not counted again.
        this.keepUnsent(id, [{ hash, endsAt, field, by: 1 }]);
        return { taken: true, count };
      },
    );
  }

  readAll(hash: string): Promise<Map<string, number>> {
    // What Redis will not hold when it runs this read, taken now: batches on their way reach it
    // first (see inFlightTotals), so they are left out here.
    const notInRedis = (withInFlight: boolean): Map<string, number> => {
      const local = new Map<string, number>();
      for (const table of [this.later, this.unsentTotals]) {
        for (const [field, by] of table.all(hash)) local.set(field, (local.get(field) ?? 0) + by);
      }
      if (!withInFlight) for (const [field, by] of this.inFlightTotals.all(hash)) local.set(field, (local.get(field) ?? 0) - by);
      return local;
    };
    const withLocal = (values: Map<string, number>, local: Map<string, number>): Map<string, number> => {
      for (const [field, by] of local) values.set(field, (values.get(field) ?? 0) + by);
      return values;
    };
    const local = notInRedis(false);
    return this.redis.hgetall(KEY_PREFIX + hash).then(
      (fields) => {
        this.answered();
        return withLocal(new Map(Object.entries(fields).map(([field, value]) => [field, Number(value)])), local);
      },
      () => {
        this.failed();
        return withLocal(this.known.all(hash), notInRedis(true));
      },
    );
  }

  async close(): Promise<void> {
    clearInterval(this.flushTimer);
    await this.flush();
  }

  /** Sends what was batched and every batch Redis has not confirmed yet (each under its own id). */
  flush(): Promise<void> {
    if (this.flushing) return this.flushing;
    const batched = this.later.snapshot();
    if (batched.length > 0) {
      for (const { hash, endsAt, field, by } of batched) this.later.add(hash, endsAt, field, -by);
      this.keepUnsent(randomUUID(), batched);
    }
    if (this.unsent.size === 0) return Promise.resolve();
    const batches = [...this.unsent];
    this.flushing = (async () => {
      for (const [id, adds] of batches) {
        for (const { hash, endsAt, field, by } of adds) this.inFlightTotals.add(hash, endsAt, field, by);
        const sent = await this.send(id, adds);
        // Out of flight and out of the unsent totals in the same turn: no read sees it twice.
        for (const { hash, endsAt, field, by } of adds) this.inFlightTotals.add(hash, endsAt, field, -by);
        if (!sent) return;
        this.unsent.delete(id);
        for (const { hash, endsAt, field, by } of adds) this.unsentTotals.add(hash, endsAt, field, -by);
      }
    })().finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }

  /** True once Redis has the batch (now, or from an earlier send of the same id). */
  private async send(id: string, adds: readonly CounterAdd[]): Promise<boolean> {
    if (adds.length === 0) return true;
    const byHash = new Map<string, CounterAdd[]>();
    for (const add of adds) {
      const group = byHash.get(add.hash);
      if (group) group.push(add);
      else byHash.set(add.hash, [add]);
    }
    const keys: string[] = [BATCH_PREFIX + id];
    const args: Array<string | number> = [BATCH_ID_TTL_MS];
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
      for (const [index, add] of order.entries()) this.known.set(add.hash, add.endsAt, add.field, Number(values[index] ?? 0));
      return true;
    } catch {
      this.failed();
      return false;
    }
  }

  private keepUnsent(id: string, adds: readonly CounterAdd[]): void {
    this.unsent.set(id, adds);
    for (const { hash, endsAt, field, by } of adds) this.unsentTotals.add(hash, endsAt, field, by);
  }

  /** What this replica counted that Redis does not hold (as far as it knows). */
  private notInRedis(hash: string, field: string): number {
    return this.later.get(hash, field) + this.unsentTotals.get(hash, field);
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
