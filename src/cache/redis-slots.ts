/**
 * Hash slots of a Redis Cluster, computed as ioredis itself does (cluster-key-slot): a command
 * that names several keys must keep them in one slot there, so batched reads are grouped by it.
 */
import calculateSlot from 'cluster-key-slot';

export function keySlot(key: string): number {
  return calculateSlot(key);
}

/** `keys` grouped by slot, each group in the order its keys were given, with their positions. */
export function groupBySlot(keys: readonly string[]): Array<{ keys: string[]; positions: number[] }> {
  const groups = new Map<number, { keys: string[]; positions: number[] }>();
  for (const [position, key] of keys.entries()) {
    const slot = calculateSlot(key);
    const group = groups.get(slot);
    if (group) {
      group.keys.push(key);
      group.positions.push(position);
    } else groups.set(slot, { keys: [key], positions: [position] });
  }
  return [...groups.values()];
}
