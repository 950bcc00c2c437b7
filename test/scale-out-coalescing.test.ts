/**
 * Coalescing across replicas on one Redis: 100 identical requests split over two gateway replicas
 * while the first is in flight make one upstream call, JSON and streams, and every client gets the
 * whole, identical answer (followers on the other replica marked COALESCED, a stream from its
 * first byte). The leader's process killed mid-call: the followers on the other replica call
 * upstream themselves once its lease lapses (LEASE_MS), and all get the answer.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LEASE_MS, RENEW_MS } from '../src/pipeline/replica-flights.js';
import { chat, chatBody, type GatewayResponse, parseStream, streamText, unique, until } from './helpers/cache-e2e.js';
import { answerFor, startFakeUpstream, type FakeUpstream } from './helpers/fake-upstream.js';
import { startGatedUpstream, type GatedUpstream } from './helpers/gated-upstream.js';
import { fakeUpstreamEnv, type RunningGateway } from './helpers/gateway.js';
import { startGatewayProcess } from './helpers/gateway-process.js';
import { startReplicas } from './helpers/gateway-replicas.js';
import { scrape } from './helpers/metrics-scrape.js';
import { writeModelsFile } from './helpers/models-file.js';
import { freePort } from './helpers/free-port.js';
import { type RedisServer, startRedis } from './helpers/redis-server.js';

let redis: RedisServer;
let inspector: Redis;
let fake: FakeUpstream;
let gate: GatedUpstream;
let replicas: RunningGateway[];

const gateDouble = (): { openaiBaseUrl: string; groqBaseUrl: string } => ({ openaiBaseUrl: `${gate.url}/v1`, groqBaseUrl: `${gate.url}/openai/v1` });

beforeAll(async () => {
  redis = await startRedis();
  inspector = new Redis(redis.url);
  fake = await startFakeUpstream();
  gate = await startGatedUpstream(fake.url);
  replicas = await startReplicas(gateDouble(), { REDIS_URL: redis.url, REDIS_COMMAND_TIMEOUT_MS: '2000' });
}, 30_000);

afterAll(async () => {
  await Promise.all((replicas ?? []).map((replica) => replica.close()));
  inspector?.disconnect();
  await gate?.close();
  await fake?.close();
  await redis?.stop();
});

/** How many requests of other replicas announced they follow a leader's call (replica-flights.ts). */
async function remoteFollowers(): Promise<number> {
  const leases = (await inspector.keys('cachegate:flight:*')).filter((key) => key.endsWith('}'));
  const counts = await Promise.all(leases.map((lease) => inspector.hget(lease, 'f')));
  return counts.reduce((sum, count) => sum + Number(count ?? 0), 0);
}

async function clearFlights(): Promise<void> {
  const keys = await inspector.keys('cachegate:flight:*');
  if (keys.length > 0) await inspector.del(...keys);
}

async function openStream(replica: RunningGateway, body: Record<string, unknown>): Promise<{ xCache: string | null; all: Promise<string> }> {
  const response = await fetch(`${replica.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ ...body, stream: true }),
  });
  return { xCache: response.headers.get('x-cache'), all: response.text() };
}

describe('coalescing across two replicas on one Redis', () => {
  it('100 identical JSON requests split over both replicas: one upstream call, everyone the same answer', async () => {
    await clearFlights();
    const body = chatBody(unique('replicas-json'));
    const callsBefore = fake.completionCalls().length;
    gate.hold();
    const leader = chat(replicas[0]!, body);
    expect(await until(() => gate.waiting >= 1, 10_000)).toBe(true);
    const followers = Array.from({ length: 99 }, (_, i) => chat(replicas[i % 2]!, body));
    // The other replica's 49 wait on the leader (announced in Redis); the leader's replica's 50 joined its flight.
    expect(await until(async () => (await remoteFollowers()) >= 49, 10_000)).toBe(true);
    gate.release();
    const answers: GatewayResponse[] = [await leader, ...(await Promise.all(followers))];
    expect(fake.completionCalls().length - callsBefore).toBe(1);
    expect(answers.map((answer) => answer.status)).toEqual(answers.map(() => 200));
    const texts = new Set(
      answers.map((answer) => (JSON.parse(answer.text) as { choices: Array<{ message: { content: string } }> }).choices[0]!.message.content),
    );
    expect([...texts]).toEqual([answerFor(body)]);
    expect(answers[0]!.xCache).toBe('MISS');
    expect(answers.slice(1).every((answer) => answer.xCache === 'COALESCED')).toBe(true);
    expect((await scrape(replicas[1]!.url)).sum('gateway_cache_coalesced_total')).toBeGreaterThanOrEqual(49);
  }, 30_000);

  it('100 identical streams split over both replicas: one upstream call, every stream whole from its first byte', async () => {
    await clearFlights();
    const body = chatBody(unique('replicas-stream'));
    const callsBefore = fake.completionCalls().length;
    gate.hold(); // the leader's first event goes out, the rest waits
    const leader = await openStream(replicas[0]!, body);
    expect(leader.xCache).toBe('MISS');
    const followers = await Promise.all(Array.from({ length: 99 }, (_, i) => openStream(replicas[i % 2]!, body)));
    expect(await until(async () => (await remoteFollowers()) >= 49, 10_000)).toBe(true);
    gate.release();
    const streams = await Promise.all([leader.all, ...followers.map((follower) => follower.all)]);
    expect(fake.completionCalls().length - callsBefore).toBe(1);
    expect(followers.every((follower) => follower.xCache === 'COALESCED')).toBe(true);
    const parsed = streams.map(parseStream);
    for (const stream of parsed) {
      expect(stream.done).toBe(true);
      expect(streamText(stream)).toBe(answerFor(body));
    }
    // The same chunks (ids and all) on both replicas, the first one included.
    expect(new Set(streams).size).toBe(1);
  }, 30_000);

  it("a stream's follower on the other replica gets its first byte within a few polls, not at the leader's next renewal", async () => {
    await clearFlights();
    const body = chatBody(unique('replicas-first-byte'));
    gate.hold(); // the leader's first event goes out, the rest waits
    const leader = await openStream(replicas[0]!, body);
    expect(leader.xCache).toBe('MISS');
    // Joined right after the leader started: its next renewal is ~RENEW_MS away.
    const joinedAt = Date.now();
    const follower = await openStream(replicas[1]!, body);
    const firstByteMs = Date.now() - joinedAt;
    expect(follower.xCache).toBe('COALESCED');
    expect(firstByteMs).toBeLessThan(RENEW_MS * 0.6);
    gate.release();
    const [leaderText, followerText] = await Promise.all([leader.all, follower.all]);
    expect(followerText).toBe(leaderText);
  }, 30_000);

  it("the leader's process killed mid-call: the other replica's followers call upstream themselves within the lease", async () => {
    await clearFlights();
    const body = chatBody(unique('replicas-leader-dies'));
    const leaderProcess = await startGatewayProcess({ ...fakeUpstreamEnv(gateDouble()), PORT: '0', LOG_LEVEL: 'info', REDIS_URL: redis.url });
    await fetch(`${leaderProcess.url}/v1/models`).then((response) => response.text());
    const callsBefore = fake.completionCalls().length;
    gate.hold();
    const doomed = fetch(`${leaderProcess.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    }).catch(() => undefined);
    expect(await until(() => gate.waiting >= 1, 10_000)).toBe(true);
    const followers = Array.from({ length: 10 }, () => chat(replicas[1]!, body));
    expect(await until(async () => (await remoteFollowers()) >= 10, 10_000)).toBe(true);
    const heldBefore = gate.waiting; // the dead leader's answer stays held at the gate
    const killedAt = Date.now();
    leaderProcess.kill();
    await doomed;
    // The takeover's own call (one for the replica's ten: they shared one reader of the leader) is held too.
    expect(await until(() => gate.waiting > heldBefore, LEASE_MS + 3_000)).toBe(true);
    const tookOverMs = Date.now() - killedAt;
    gate.release();
    const answers = await Promise.all(followers);
    const tookMs = Date.now() - killedAt;
    expect(answers.map((answer) => answer.status)).toEqual(answers.map(() => 200));
    for (const answer of answers) expect(JSON.parse(answer.text).choices[0].message.content).toBe(answerFor(body));
    // The dead leader's call and one takeover: the followers of the lapsed lease coalesced again.
    expect(fake.completionCalls().length - callsBefore).toBe(2);
    expect(answers.filter((answer) => answer.xCache === 'MISS')).toHaveLength(1);
    expect(answers.filter((answer) => answer.xCache === 'COALESCED')).toHaveLength(9);
    // Within the lease (plus a poll and this busy machine's slack) after the leader died.
    expect(tookOverMs).toBeLessThan(LEASE_MS + 1_000);
    expect(tookMs).toBeLessThan(LEASE_MS + 3_000);
  }, 40_000);
});

describe('coalescing across replicas when the leader fell back to another model', () => {
  let fallbackReplicas: RunningGateway[] = [];

  afterAll(async () => {
    await Promise.all(fallbackReplicas.map((replica) => replica.close()));
  });

  it("the other replica's followers say who answered: the fallback's provider and the model asked for", async () => {
    await clearFlights();
    // OpenAI refuses connections; gpt-4o-mini falls back to a Groq model, whose answer the gate holds.
    const models = await writeModelsFile({ fallbacks: { 'gpt-4o-mini': ['groq/llama-3.3-70b-versatile'] } });
    const dead = `http://127.0.0.1:${await freePort()}/v1`;
    fallbackReplicas = await startReplicas(
      { openaiBaseUrl: dead, groqBaseUrl: `${gate.url}/openai/v1` },
      { REDIS_URL: redis.url, REDIS_COMMAND_TIMEOUT_MS: '2000', MODELS_FILE: models.path, UPSTREAM_MAX_RETRIES: '0' },
    );
    const body = chatBody(unique('replicas-fallback'));
    gate.hold();
    const leader = chat(fallbackReplicas[0]!, body);
    expect(await until(() => gate.waiting >= 1, 10_000)).toBe(true);
    const followers = Array.from({ length: 3 }, () => chat(fallbackReplicas[1]!, body));
    expect(await until(async () => (await remoteFollowers()) >= 3, 10_000)).toBe(true);
    gate.release();
    const answers = [await leader, ...(await Promise.all(followers))];
    for (const answer of answers) {
      expect(answer.status).toBe(200);
      expect(answer.headers.get('x-gateway-provider')).toBe('groq');
      expect(answer.headers.get('x-gateway-fallback')).toBe('gpt-4o-mini');
    }
    expect(answers.slice(1).map((answer) => answer.xCache)).toEqual(['COALESCED', 'COALESCED', 'COALESCED']);
  }, 30_000);
});
