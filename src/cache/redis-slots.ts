/**
 * Hash slots of a Redis Cluster, computed as ioredis itself does (cluster-key-slot): a command
 * that names several keys must keep them in one slot there, so batched reads are grouped by it.
 */
import calculateSlot from 'cluster-key-slot';

export function keySlot(key: string): number {
  return calculateSlot(key);
}
