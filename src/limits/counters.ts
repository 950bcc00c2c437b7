/**
 * Where usage is counted: named hashes (one per period: `day:2026-12-02`, `month:2026-12`,
 * `minute:m29434567`) of integer fields (`g` the gateway's spend, `s:<user>` a user's spend in
 * nano-dollars, `r:<user>` requests, `x:<user>` refusals, `t:<user>` upstream tokens), each hash
 * gone when its period ends. In memory (counters-memory.ts) or in Redis (counters-redis.ts),
 * where every replica shares them.
 */

export interface CounterAdd {
  hash: string;
  /** When the hash's period ends (ms since the epoch): it expires then. */
  endsAt: number;
  field: string;
  by: number;
}

export interface FieldRef {
  hash: string;
  endsAt: number;
  field: string;
}

/** An answer now (memory) or after a round trip (Redis). */
export type Maybe<T> = T | Promise<T>;

export interface UsageCounters {
  /** Adds now: spend and tokens, which the next check on any replica must see. Never throws. */
  add(adds: readonly CounterAdd[]): void;
  /** Adds in the next batch (request and refusal counts, which nothing is refused on). */
  addLater(adds: readonly CounterAdd[]): void;
  /** The fields' values, 0 when absent. Never rejects. */
  read(fields: readonly FieldRef[]): Maybe<number[]>;
  /**
   * One more in the field unless it has reached `limit` already; the count before it. Atomic,
   * so replicas sharing the counter cannot both take the last one. Never rejects.
   */
  takeIfBelow(hash: string, endsAt: number, field: string, limit: number): Maybe<{ taken: boolean; count: number }>;
  /** Every field of a hash (for the usage report). Never rejects. */
  readAll(hash: string): Maybe<Map<string, number>>;
  /** Sends what is still batched. */
  close(): Promise<void>;
}

/** Hashes of integer fields that disappear when their period ends, by the counters' clock. */
export class ExpiringHashes {
  private readonly hashes = new Map<string, { endsAt: number; fields: Map<string, number> }>();

  constructor(private readonly now: () => number) {}

  add(hash: string, endsAt: number, field: string, by: number): number {
    const fields = this.fieldsOf(hash, endsAt);
    const value = (fields.get(field) ?? 0) + by;
    fields.set(field, value);
    return value;
  }

  set(hash: string, endsAt: number, field: string, value: number): void {
    this.fieldsOf(hash, endsAt).set(field, value);
  }

  get(hash: string, field: string): number {
    return this.live(hash)?.fields.get(field) ?? 0;
  }

  all(hash: string): Map<string, number> {
    return new Map(this.live(hash)?.fields ?? []);
  }

  /** What the table holds, as additions (pending ones to send); fields back at 0 are dropped. */
  snapshot(): CounterAdd[] {
    const adds: CounterAdd[] = [];
    const now = this.now();
    for (const [hash, { endsAt, fields }] of this.hashes) {
      if (endsAt <= now) {
        this.hashes.delete(hash);
        continue;
      }
      for (const [field, by] of fields) {
        if (by === 0) fields.delete(field);
        else adds.push({ hash, endsAt, field, by });
      }
    }
    return adds;
  }

  private live(hash: string): { endsAt: number; fields: Map<string, number> } | undefined {
    const entry = this.hashes.get(hash);
    if (entry !== undefined && entry.endsAt <= this.now()) {
      this.hashes.delete(hash);
      return undefined;
    }
    return entry;
  }

  private fieldsOf(hash: string, endsAt: number): Map<string, number> {
    const entry = this.live(hash);
    if (entry !== undefined) return entry.fields;
    // A new period: forget the ended ones (a handful of hashes live at once, one per minute, day, month).
    const now = this.now();
    for (const [name, old] of this.hashes) if (old.endsAt <= now) this.hashes.delete(name);
    const fields = new Map<string, number>();
    this.hashes.set(hash, { endsAt, fields });
    return fields;
  }
}
