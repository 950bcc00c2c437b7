/**
 * Whether other gateway replicas share this one's Redis. Coalescing across replicas costs every
 * miss a lease round trip to Redis before its upstream call (replica-flights.ts); a replica alone
 * on its Redis has nobody to coalesce with, so it skips the lease and its misses cost what they
 * cost before replicas could share calls.
 *
 * Each replica beats every BEAT_MS: one script stamps its id with Redis's own clock in a shared
 * hash (one key, one Cluster slot) and counts the other ids stamped within STALE_MS, dropping
 * older ones. A replica that joins knows of the others from its first beat (awaited before it
 * serves); the others know of it by their next beat, so for at most BEAT_MS after a replica joins,
 * an identical request on each may still make two upstream calls. A replica that stops says so
 * (its id removed); one that dies is forgotten STALE_MS after its last beat. While Redis does not
 * answer, the last answer stands (the lease itself fails open then anyway).
 */
import { randomBytes } from 'node:crypto';
import { Gauge, type Registry } from 'prom-client';
import { type RedisClient, withDeadline } from '../cache/redis-connection.js';

export const BEAT_MS = 250;
export const STALE_MS = 1_500;
const PRESENCE_KEY = 'cachegate:replicas';

// Redis's clock, not each replica's: replicas whose clocks disagree still agree on who is alive.
const BEAT = `
redis.replicate_commands()
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('HSET', KEYS[1], ARGV[1], now)
redis.call('PEXPIRE', KEYS[1], ARGV[2] * 2)
local others = 0
local stamps = redis.call('HGETALL', KEYS[1])
for i = 1, #stamps, 2 do
  if stamps[i] ~= ARGV[1] then
    if now - tonumber(stamps[i + 1]) > tonumber(ARGV[2]) then redis.call('HDEL', KEYS[1], stamps[i]) else others = others + 1 end
  end
end
return others`;

interface PresenceScripts {
  cachegateReplicaBeat(key: string, id: string, staleMs: string): Promise<number>;
}

export class ReplicaPresence {
  private readonly id = randomBytes(9).toString('base64url');
  private readonly timer: NodeJS.Timeout;
  private others = 0;
  private closed = false;
  /** Settles with the first beat (or its failure): a replica knows of the others before it serves. */
  readonly ready: Promise<void>;

  constructor(
    private readonly client: RedisClient,
    private readonly commandTimeoutMs: number,
  ) {
    client.defineCommand('cachegateReplicaBeat', { numberOfKeys: 1, lua: BEAT });
    this.ready = this.beat();
    this.timer = setInterval(() => void this.beat(), BEAT_MS).unref();
  }

  /** Other replicas beat on this Redis within STALE_MS. */
  get othersPresent(): boolean {
    return this.others > 0;
  }

  /** How many other replicas this one saw at its last beat. */
  get otherReplicas(): number {
    return this.others;
  }

  private async beat(): Promise<void> {
    try {
      const scripts = this.client as unknown as PresenceScripts;
      const others = await withDeadline(scripts.cachegateReplicaBeat(PRESENCE_KEY, this.id, String(STALE_MS)), this.commandTimeoutMs);
      if (!this.closed) this.others = Number(others);
    } catch {
      // Redis away: keep the last answer.
    }
  }

  /** Stops beating and takes this replica's id out, so the others know at their next beat. */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    await withDeadline(this.client.hdel(PRESENCE_KEY, this.id), this.commandTimeoutMs).catch(() => {});
  }
}

/**
 * gateway_replicas: the replicas sharing this one's Redis, itself included, as of its last beat
 * (1 on the embedded cache). Scraped per replica, it tells an operator that the replicas found
 * each other, and so that identical requests on different replicas make one upstream call.
 */
export function registerReplicasGauge(registry: Registry, presence: ReplicaPresence | undefined): void {
  new Gauge({
    name: 'gateway_replicas',
    help: "Gateway replicas sharing this one's Redis, itself included (1 without Redis).",
    registers: [registry],
    collect() {
      this.set(1 + (presence?.otherReplicas ?? 0));
    },
  });
}
