/** Usage counted in this process: a lone gateway without Redis. Every answer is immediate. */
import { type CounterAdd, ExpiringHashes, type FieldRef, type UsageCounters } from './counters.js';

export class MemoryCounters implements UsageCounters {
  private readonly hashes: ExpiringHashes;

  constructor(now: () => number) {
    this.hashes = new ExpiringHashes(now);
  }

  add(adds: readonly CounterAdd[]): void {
    for (const { hash, endsAt, field, by } of adds) this.hashes.add(hash, endsAt, field, by);
  }

  addLater(adds: readonly CounterAdd[]): void {
    this.add(adds);
  }

  read(fields: readonly FieldRef[]): number[] {
    return fields.map(({ hash, field }) => this.hashes.get(hash, field));
  }

  takeIfBelow(hash: string, endsAt: number, field: string, limit: number): { taken: boolean; count: number } {
    const count = this.hashes.get(hash, field);
    if (count >= limit) return { taken: false, count };
    this.hashes.add(hash, endsAt, field, 1);
    return { taken: true, count };
  }

  readAll(hash: string): Map<string, number> {
    return this.hashes.all(hash);
  }

  async close(): Promise<void> {}
}
