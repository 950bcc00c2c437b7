/** The part of cluster-key-slot's API the gateway uses (the package, ioredis's own, ships no types). */
declare module 'cluster-key-slot' {
  /** The Redis Cluster hash slot (0–16383) of a key, honouring a `{hash tag}`. */
  export default function calculateSlot(key: string | Buffer): number;
}
