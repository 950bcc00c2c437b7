/**
 * The leader of a cross-replica stream killed mid-stream, after the followers on two other
 * replicas received part of the answer: the followers' replicas take over (one upstream call per
 * replica at most) and, the upstream being deterministic, every follower's stream finishes with
 * the whole answer, read by the openai SDK, under one completion id, within the documented bound
 * (LEASE_MS + POLL_MS after the death, plus the new call); the takeover's answer is cached. When
 * the new call answers differently, or is refused, the streams end with an error event, never a
 * spliced text nor a hang.
 */
import type OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LEASE_MS, POLL_MS } from '../src/pipeline/replica-flights.js';
import { chat, chatBody, parseStream, streamText, unique, until, untilStored } from './helpers/cache-e2e.js';
import { fakeUpstreamEnv, type RunningGateway } from './helpers/gateway.js';
import { type GatewayProcess, startGatewayProcess } from './helpers/gateway-process.js';
import { startReplicas, untilReplicasMeet } from './helpers/gateway-replicas.js';
import { type RedisServer, startRedis } from './helpers/redis-server.js';
import { openaiClient } from './helpers/sdk-clients.js';
import { type StallingStreamProvider, type StreamPlan, startStallingStreamProvider } from './helpers/stalling-stream-provider.js';

/** The answer as the first call splits it: the leader's stream stalls after the first two pieces. */
const ANSWER = ['The quick ', 'brown fox ', 'jumps over ', 'the lazy ', 'dog.'];
const SENT_BEFORE_DEATH = ANSWER.slice(0, 2).join('');
/** The same answer split otherwise, so the resumed stream starts inside a piece. */
const SAME_ANSWER_SPLIT_OTHERWISE = ['The quick brown f', 'ox jumps over the', ' lazy dog.'];

let redis: RedisServer;
let provider: StallingStreamProvider;
let followerReplicas: RunningGateway[];
/** What calls after the first (the takeovers) answer; set by each test. */
let takeoverAnswer: (call: number) => StreamPlan = () => ({ pieces: SAME_ANSWER_SPLIT_OTHERWISE });
/** The call number of the current leader's call: it stalls mid-stream. */
let leaderCall = -1;

beforeAll(async () => {
  redis = await startRedis();
  provider = await startStallingStreamProvider((call): StreamPlan => (call === leaderCall ? { pieces: ANSWER, stallAfter: 2 } : takeoverAnswer(call)));
  followerReplicas = await startReplicas(provider, { REDIS_URL: redis.url, REDIS_COMMAND_TIMEOUT_MS: '2000' });
}, 30_000);

afterAll(async () => {
  await Promise.all((followerReplicas ?? []).map((replica) => replica.close()));
  await provider?.close();
  await redis?.stop();
});

interface FollowerStream {
  text: string;
  ids: Set<string>;
  /** Responses API streams: each event's sequence_number, in order. */
  sequences: number[];
  failure: unknown;
  ended: Promise<void>;
  endedAt: number;
}

/** Reads an SDK stream in the background, as a chat UI does. */
function readInBackground(stream: Promise<AsyncIterable<OpenAI.Chat.Completions.ChatCompletionChunk>>): FollowerStream {
  const reader: FollowerStream = { text: '', ids: new Set(), sequences: [], failure: undefined, ended: Promise.resolve(), endedAt: 0 };
  reader.ended = (async () => {
    try {
      for await (const chunk of await stream) {
        reader.ids.add(chunk.id);
        reader.text += chunk.choices[0]?.delta.content ?? '';
      }
    } catch (error) {
      reader.failure = error;
    }
    reader.endedAt = Date.now();
  })();
  return reader;
}

/** The same for a Responses API stream: its text deltas, the response and item ids its events carry, their numbering. */
function readResponsesInBackground(stream: Promise<AsyncIterable<OpenAI.Responses.ResponseStreamEvent>>): FollowerStream {
  const reader: FollowerStream = { text: '', ids: new Set(), sequences: [], failure: undefined, ended: Promise.resolve(), endedAt: 0 };
  reader.ended = (async () => {
    try {
      for await (const event of await stream) {
        reader.sequences.push(event.sequence_number);
        if (event.type === 'response.output_text.delta') reader.text += event.delta;
        if ('response' in event) reader.ids.add(event.response.id);
        if (event.type === 'response.output_item.added' || event.type === 'response.output_item.done') reader.ids.add(event.item.id ?? '');
      }
    } catch (error) {
      reader.failure = error;
    }
    reader.endedAt = Date.now();
  })();
  return reader;
}

/**
 * A leader process answers `prompt`'s stream, followers on both follower replicas receive its
 * first pieces, then the leader is killed. The followers' streams, when and how they ended, and
 * the upstream calls the takeover made.
 */
async function killLeaderMidStream(
  prompt: string,
  { replicas = followerReplicas, user, api = 'chat' }: { replicas?: RunningGateway[]; user?: string; api?: 'chat' | 'responses' } = {},
): Promise<{ followers: FollowerStream[]; killedAt: number; takeoverCalls: number; leader: GatewayProcess }> {
  const leader = await startGatewayProcess({ ...fakeUpstreamEnv(provider), PORT: '0', LOG_LEVEL: 'info', REDIS_URL: redis.url });
  await fetch(`${leader.url}/v1/models`).then((response) => response.text());
  // A replica that sees no other takes no lease: all three must have met.
  await untilReplicasMeet([leader, ...replicas], replicas.length + 1);
  const body = api === 'chat' ? chatBody(prompt, { stream: true }) : { model: 'gpt-4o-mini', input: prompt, stream: true };
  leaderCall = provider.calls;
  const leadersClient = fetch(`${leader.url}/v1/${api === 'chat' ? 'chat/completions' : 'responses'}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })
    .then((response) => response.text())
    .catch(() => '');
  expect(await until(() => provider.calls === leaderCall + 1, 10_000)).toBe(true);
  const headers = user ? { 'x-openwebui-user-id': user } : {};
  const followers = Array.from({ length: 6 }, (_, i) => {
    const client = openaiClient(replicas[i % replicas.length]!);
    return api === 'chat'
      ? readInBackground(client.chat.completions.create({ model: 'gpt-4o-mini', messages: body['messages'] as never, stream: true }, { headers }))
      : readResponsesInBackground(client.responses.create({ model: 'gpt-4o-mini', input: prompt, stream: true }, { headers }));
  });
  // Every follower has the part the leader sent before it died.
  expect(await until(() => followers.every((follower) => follower.text === SENT_BEFORE_DEATH), 10_000)).toBe(true);
  const killedAt = Date.now();
  leader.kill();
  await leadersClient;
  await Promise.all(followers.map((follower) => follower.ended));
  return { followers, killedAt, takeoverCalls: provider.calls - leaderCall - 1, leader };
}

describe('the leader of a cross-replica stream killed mid-stream', () => {
  it("followers on two replicas finish the stream from upstream: the whole answer, one id, within the bound; the takeover's answer is cached", async () => {
    takeoverAnswer = () => ({ pieces: SAME_ANSWER_SPLIT_OTHERWISE });
    const prompt = unique('takeover-resumes');
    const { followers, killedAt, takeoverCalls } = await killLeaderMidStream(prompt);
    for (const follower of followers) {
      expect(follower.failure).toBeUndefined();
      expect(follower.text).toBe(ANSWER.join(''));
      // One coherent stream: the chunks of the new call carry the id the stream started with.
      expect([...follower.ids]).toEqual([`chatcmpl-stalling${leaderCall}`]);
      expect(follower.endedAt - killedAt).toBeLessThan(LEASE_MS + POLL_MS + 1_500);
    }
    // One takeover per follower replica at most (the second may follow the first's stream).
    expect(takeoverCalls).toBeGreaterThanOrEqual(1);
    expect(takeoverCalls).toBeLessThanOrEqual(2);
    const callsBefore = provider.calls;
    const hit = await untilStored(() => chat(followerReplicas[0]!, chatBody(prompt, { stream: true })));
    expect(hit.xCache).toBe('HIT');
    expect(streamText(parseStream(hit.text))).toBe(ANSWER.join(''));
    expect(provider.calls).toBe(callsBefore);
  }, 45_000);

  it('a Responses API stream: the followers finish it from the takeover, one response id, numbered without a gap', async () => {
    takeoverAnswer = () => ({ pieces: SAME_ANSWER_SPLIT_OTHERWISE });
    const { followers, killedAt, takeoverCalls } = await killLeaderMidStream(unique('takeover-responses'), { api: 'responses' });
    for (const follower of followers) {
      expect(follower.failure).toBeUndefined();
      expect(follower.text).toBe(ANSWER.join(''));
      expect([...follower.ids]).toEqual([`resp_stalling${leaderCall}`, `msg_stalling${leaderCall}`]);
      expect(follower.sequences).toEqual(follower.sequences.map((_, i) => i));
      expect(follower.endedAt - killedAt).toBeLessThan(LEASE_MS + POLL_MS + 1_500);
    }
    expect(takeoverCalls).toBeGreaterThanOrEqual(1);
    expect(takeoverCalls).toBeLessThanOrEqual(2);
  }, 45_000);

  it('a takeover that answers differently ends the streams with an error event, never a spliced text', async () => {
    const different = ['A different ', 'answer, call ', 'number ', 'two.'];
    takeoverAnswer = () => ({ pieces: different });
    const prompt = unique('takeover-diverges');
    const { followers, takeoverCalls } = await killLeaderMidStream(prompt);
    for (const follower of followers) {
      expect(follower.failure).toBeInstanceOf(Error);
      expect(String((follower.failure as Error).message)).toMatch(/malformed or incomplete/);
      expect(follower.text).toBe(SENT_BEFORE_DEATH);
    }
    expect(takeoverCalls).toBeGreaterThanOrEqual(1);
    expect(takeoverCalls).toBeLessThanOrEqual(2);
    const logs = followerReplicas.flatMap((replica) => replica.logs).join('\n');
    expect(logs).toContain('the new answer differs from the part sent');
    // The takeover's answer was whole: cached, for the next identical request.
    const hit = await untilStored(() => chat(followerReplicas[1]!, chatBody(prompt, { stream: true })));
    expect(hit.xCache).toBe('HIT');
    expect(streamText(parseStream(hit.text))).toBe(different.join(''));
  }, 45_000);

  it("a stream in progress is never cut by a budget: followers past their budget finish from the takeover's call", async () => {
    takeoverAnswer = () => ({ pieces: SAME_ANSWER_SPLIT_OTHERWISE });
    const [budgeted] = await startReplicas(provider, { REDIS_URL: redis.url, REDIS_COMMAND_TIMEOUT_MS: '2000', USER_BUDGET_DAILY_USD: '0.000001' }, 1);
    try {
      // Bob spends past his budget (one call costs a few millionths of a dollar), and is refused a new call.
      const asBob = { 'x-openwebui-user-id': 'bob' };
      expect((await chat(budgeted!, chatBody(unique('bob spends')), asBob)).status).toBe(200);
      const refused = await chat(budgeted!, chatBody(unique('bob again')), asBob);
      expect(refused.status).toBe(429);
      expect(JSON.parse(refused.text).error.code).toBe('budget_exceeded');
      const { followers, takeoverCalls } = await killLeaderMidStream(unique('takeover-past-budget'), { replicas: [budgeted!], user: 'bob' });
      for (const follower of followers) {
        expect(follower.failure).toBeUndefined();
        expect(follower.text).toBe(ANSWER.join(''));
      }
      expect(takeoverCalls).toBe(1);
    } finally {
      await budgeted?.close();
    }
  }, 45_000);

  it('a takeover call the provider refuses ends the streams with the error event at once, never leaves them hanging', async () => {
    takeoverAnswer = () => ({ pieces: [], refuseWith: 400 });
    const { followers, killedAt, takeoverCalls } = await killLeaderMidStream(unique('takeover-refused'));
    for (const follower of followers) {
      expect(follower.failure).toBeInstanceOf(Error);
      expect(follower.text).toBe(SENT_BEFORE_DEATH);
      expect(follower.endedAt - killedAt).toBeLessThan(LEASE_MS + POLL_MS + 1_500);
    }
    expect(takeoverCalls).toBeGreaterThanOrEqual(1);
    expect(takeoverCalls).toBeLessThanOrEqual(2);
  }, 45_000);
});
