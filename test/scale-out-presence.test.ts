/**
 * A replica alone on its Redis takes no lease for its misses (nobody could follow it, and the
 * lease is a round trip before every upstream call); once a second replica shares the Redis,
 * both take leases and identical requests on the two make one upstream call. Replicas tell each
 * other apart by beats in Redis: a replica that stops is forgotten at once, one that dies within
 * STALE_MS.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BEAT_MS, STALE_MS } from '../src/pipeline/replica-presence.js';
import { chat, chatBody, unique, until } from './helpers/cache-e2e.js';
import { answerFor, startFakeUpstream, type FakeUpstream } from './helpers/fake-upstream.js';
import { startGatedUpstream, type GatedUpstream } from './helpers/gated-upstream.js';
import { fakeUpstreamEnv, type RunningGateway } from './helpers/gateway.js';
import { startGatewayProcess } from './helpers/gateway-process.js';
import { startReplicas, untilReplicasMeet } from './helpers/gateway-replicas.js';
import { scrape } from './helpers/metrics-scrape.js';
import { type RedisServer, startRedis } from './helpers/redis-server.js';

let redis: RedisServer;
let inspector: Redis;
let fake: FakeUpstream;
let gate: GatedUpstream;

const gateDouble = (): { openaiBaseUrl: string; groqBaseUrl: string } => ({ openaiBaseUrl: `${gate.url}/v1`, groqBaseUrl: `${gate.url}/openai/v1` });
const env = (): Record<string, string> => ({ REDIS_URL: redis.url, REDIS_COMMAND_TIMEOUT_MS: '2000' });

beforeAll(async () => {
  redis = await startRedis();
  inspector = new Redis(redis.url);
  fake = await startFakeUpstream();
  gate = await startGatedUpstream(fake.url);
}, 30_000);

afterAll(async () => {
  inspector?.disconnect();
  await gate?.close();
  await fake?.close();
  await redis?.stop();
});

const leases = async (): Promise<string[]> => (await inspector.keys('cachegate:flight:*')).filter((key) => key.endsWith('}'));
const replicasSeen = async (replica: { url: string }): Promise<number> => (await scrape(replica.url)).select('gateway_replicas')[0]?.value ?? 0;

describe('replicas sharing a Redis find each other', () => {
  it('a lone replica takes no lease for a miss; with a second replica, misses take one and coalesce', async () => {
    const [lone] = (await startReplicas(gateDouble(), env(), 1)) as [RunningGateway];
    let second: RunningGateway[] = [];
    try {
      expect(await replicasSeen(lone)).toBe(1);
      const body = chatBody(unique('alone'));
      gate.hold();
      const held = chat(lone, body);
      expect(await until(() => gate.waiting >= 1, 10_000)).toBe(true);
      // The upstream call is under way and no lease was taken for it.
      expect(await leases()).toEqual([]);
      gate.release();
      expect((await held).xCache).toBe('MISS');

      second = await startReplicas(gateDouble(), env(), 1);
      await untilReplicasMeet([lone, ...second], 2);
      const shared = chatBody(unique('together'));
      const callsBefore = fake.completionCalls().length;
      gate.hold();
      const first = chat(lone, shared);
      expect(await until(() => gate.waiting >= 1, 10_000)).toBe(true);
      expect(await leases()).toHaveLength(1);
      const other = chat(second[0]!, shared);
      expect(await until(async () => Number((await inspector.hget((await leases())[0]!, 'f')) ?? 0) >= 1, 10_000)).toBe(true);
      gate.release();
      const answers = await Promise.all([first, other]);
      expect(answers.map((answer) => answer.xCache).sort()).toEqual(['COALESCED', 'MISS']);
      expect(answers.every((answer) => JSON.parse(answer.text).choices[0].message.content === answerFor(shared))).toBe(true);
      expect(fake.completionCalls().length - callsBefore).toBe(1);
    } finally {
      gate.release();
      await Promise.all([lone, ...second].map((replica) => replica.close()));
    }
  }, 30_000);

  it('a replica that stops is forgotten at once, one that dies within the stale time', async () => {
    const [stays, leaves] = (await startReplicas(gateDouble(), env(), 2)) as [RunningGateway, RunningGateway];
    try {
      await leaves.close();
      expect(await until(async () => (await replicasSeen(stays)) === 1, BEAT_MS * 4)).toBe(true);
      const dies = await startGatewayProcess({ ...fakeUpstreamEnv(gateDouble()), PORT: '0', LOG_LEVEL: 'info', REDIS_URL: redis.url });
      await untilReplicasMeet([stays, dies], 2);
      const killedAt = Date.now();
      dies.kill();
      expect(await until(async () => (await replicasSeen(stays)) === 1, STALE_MS + BEAT_MS * 4)).toBe(true);
      expect(Date.now() - killedAt).toBeGreaterThanOrEqual(STALE_MS - BEAT_MS * 2);
    } finally {
      await stays.close();
    }
  }, 30_000);
});
