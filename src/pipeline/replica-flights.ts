/**
 * The Redis side of coalescing across replicas. A replica about to call upstream for a cache key
 * first takes the key's lease (a random token set only where none is, with an expiry: `SET NX PX`
 * done by a script that also answers the holder's token when it is taken). The holder, the leader, appends its answer as it comes to a Redis
 * stream named after its token (head, each SSE event, then the outcome) and renews the lease
 * while it runs. A replica that finds the lease taken reads that stream from its first record,
 * polling, until the outcome; when the lease lapses without one (the leader died), it is free to
 * take the lease itself. Lease and stream share a hash tag: one slot in a Redis Cluster.
 *
 * Bounds: a leader renews every RENEW_MS (a streaming one looks for followers every
 * FOLLOWER_WATCH_MS until the first comes) and its lease lapses LEASE_MS after the last renewal, so
 * a dead leader holds its followers for at most LEASE_MS (+ one POLL_MS) before they call upstream
 * themselves.
 */
import { randomBytes } from 'node:crypto';
import { type RedisClient, withDeadline } from '../cache/redis-connection.js';
import type { FlightHead } from './flight.js';
import { ReplicaPresence } from './replica-presence.js';

export const LEASE_MS = 2_000;
export const RENEW_MS = 500;
/**
 * How often a leader whose answer streams looks for followers until it has one: a follower's
 * stream starts only once the leader publishes, so waiting for the next renewal would hold its
 * first byte up to RENEW_MS. JSON answers are published whole at the end, so they wait for nothing.
 */
export const FOLLOWER_WATCH_MS = 50;
export const POLL_MS = 25;
/** After the outcome, late identical requests still read it from the stream (the store write may lag). */
export const DONE_KEEP_MS = 5_000;

/** Who answered the leader's call (a model-policy fallback may have answered instead of the model asked). */
export interface AnsweredBy {
  provider: string;
  model: string;
  upstreamModel: string;
  fellBack: boolean;
}

export type FlightRecord =
  | { kind: 'head'; head: FlightHead; by: AnsweredBy }
  | { kind: 'event'; data: string; usageOnly: boolean }
  /** `entry`: the encoded cache entry (base64), or the upstream's JSON body when there is none. */
  | { kind: 'completed'; head: FlightHead; by: AnsweredBy; entry?: string; json?: string }
  | { kind: 'upstream-error'; head: FlightHead; body: string }
  | { kind: 'failed'; statusCode: number; type: string; code: string; message: string; headers: Record<string, string> };

export type Claim = { readonly leader: true; readonly token: string } | { readonly leader: false; readonly token: string };

export interface StreamRead {
  records: FlightRecord[];
  /** The stream id to read after next time. */
  lastId: string;
  /** Who holds the lease now (undefined: nobody). */
  holder: string | undefined;
}

// The lease is a hash: `t` the leader's token, `f` how many followers announced themselves.
// Scripts keep each step atomic and work on Redis 6 as on 7.
const CLAIM = `
local holder = redis.call('HGET', KEYS[1], 't')
if holder then return holder end
redis.call('HSET', KEYS[1], 't', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return false`;

const ANNOUNCE = `
if redis.call('HGET', KEYS[1], 't') == ARGV[1] then return redis.call('HINCRBY', KEYS[1], 'f', 1) end
return 0`;

const RENEW = `
if redis.call('HGET', KEYS[1], 't') == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return tonumber(redis.call('HGET', KEYS[1], 'f') or '0')
end
return -1`;

// With followers waiting, the lease stays a little while after the outcome (late identical
// requests read the outcome from the stream); without, it is released at once.
const FINISH = `
if redis.call('HGET', KEYS[1], 't') ~= ARGV[1] then return 0 end
local followers = tonumber(redis.call('HGET', KEYS[1], 'f') or '0')
if followers > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) else redis.call('DEL', KEYS[1]) end
return followers`;

type Script = (...keysThenArgs: string[]) => Promise<unknown>;

/** The scripts, sent once and then called by their SHA (EVALSHA): a few bytes per call. */
interface FlightScripts {
  cachegateFlightClaim: Script;
  cachegateFlightAnnounce: Script;
  cachegateFlightRenew: Script;
  cachegateFlightFinish: Script;
}

export class ReplicaFlights {
  private readonly scripts: FlightScripts;

  /** `claimTimeoutMs`: a miss waits this long at most for the lease before calling upstream on its own. */
  constructor(
    private readonly client: RedisClient,
    private readonly claimTimeoutMs: number,
    /** Who else shares this Redis: a replica alone on it takes no lease (replica-presence.ts). */
    readonly presence: ReplicaPresence = new ReplicaPresence(client, claimTimeoutMs),
  ) {
    client.defineCommand('cachegateFlightClaim', { numberOfKeys: 1, lua: CLAIM });
    client.defineCommand('cachegateFlightAnnounce', { numberOfKeys: 1, lua: ANNOUNCE });
    client.defineCommand('cachegateFlightRenew', { numberOfKeys: 1, lua: RENEW });
    client.defineCommand('cachegateFlightFinish', { numberOfKeys: 1, lua: FINISH });
    this.scripts = client as unknown as FlightScripts;
  }

  /** Stops telling the other replicas this one is there (before the Redis connection closes). */
  close(): Promise<void> {
    return this.presence.close();
  }

  /** Takes the key's lease, or names its holder; rejects when Redis does not answer. */
  async claim(key: string): Promise<Claim> {
    const token = randomBytes(9).toString('base64url');
    const holder = (await withDeadline(this.scripts.cachegateFlightClaim(leaseKey(key), token, String(LEASE_MS)), this.claimTimeoutMs)) as string | null;
    return holder === null ? { leader: true, token } : { leader: false, token: holder };
  }

  /** A follower says it waits, so the leader publishes its answer and keeps its call going. */
  announceFollower(key: string, token: string): void {
    this.scripts.cachegateFlightAnnounce(leaseKey(key), token).catch(() => {});
  }

  /** Renews the lease while `token` holds it; how many followers announced themselves, or -1 once it is lost. */
  async renew(key: string, token: string): Promise<number> {
    return Number(await this.scripts.cachegateFlightRenew(leaseKey(key), token, String(LEASE_MS)));
  }

  /** Appends records to the leader's stream, which outlives the lease by DONE_KEEP_MS at most. */
  async publish(key: string, token: string, records: readonly FlightRecord[]): Promise<void> {
    const stream = streamKey(key, token);
    const pipeline = this.client.pipeline();
    for (const record of records) pipeline.xadd(stream, '*', 'r', JSON.stringify(record));
    await pipeline.pexpire(stream, LEASE_MS + DONE_KEEP_MS).exec();
  }

  /** The leader's call ended: how many followers wait (the lease is kept for them, else released). */
  async finish(key: string, token: string): Promise<number> {
    return Number(await this.scripts.cachegateFlightFinish(leaseKey(key), token, String(DONE_KEEP_MS)));
  }

  /** The records after `lastId` ('0': from the first) and the lease's holder, in one round trip. */
  async read(key: string, token: string, lastId: string): Promise<StreamRead> {
    const replies = await this.client.pipeline().call('XREAD', 'COUNT', '1000', 'STREAMS', streamKey(key, token), lastId).hget(leaseKey(key), 't').exec();
    const [readReply, holderReply] = replies ?? [];
    if (readReply?.[0]) throw readReply[0];
    if (holderReply?.[0]) throw holderReply[0];
    const streams = readReply?.[1] as Array<[string, Array<[string, string[]]>]> | null;
    const entries = streams?.[0]?.[1] ?? [];
    const records = entries.map(([, fields]) => JSON.parse(fields[1] ?? 'null') as FlightRecord);
    return { records, lastId: entries.at(-1)?.[0] ?? lastId, holder: (holderReply?.[1] as string | null) ?? undefined };
  }
}

// The cache key inside the braces: lease, presence and stream of one key share a Cluster slot.
function leaseKey(key: string): string {
  return `cachegate:flight:{${key}}`;
}

function streamKey(key: string, token: string): string {
  return `cachegate:flight:{${key}}:${token}`;
}
