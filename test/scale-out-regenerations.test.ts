/**
 * Regeneration memory shared by replicas on one Redis: Open WebUI's regenerate (the same request
 * again from the same chat) reaches another replica than the first request did, and is still
 * treated as no-cache there; the same request from another chat is still a hit on either replica.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chat, chatBody, unique, untilStored } from './helpers/cache-e2e.js';
import { startFakeUpstream, type FakeUpstream } from './helpers/fake-upstream.js';
import type { RunningGateway } from './helpers/gateway.js';
import { startReplicas } from './helpers/gateway-replicas.js';
import { type RedisServer, startRedis } from './helpers/redis-server.js';

let redis: RedisServer;
let fake: FakeUpstream;
let replicas: RunningGateway[];

beforeAll(async () => {
  redis = await startRedis();
  fake = await startFakeUpstream();
  replicas = await startReplicas(fake, { REDIS_URL: redis.url, REDIS_COMMAND_TIMEOUT_MS: '2000' });
}, 30_000);

afterAll(async () => {
  await Promise.all((replicas ?? []).map((replica) => replica.close()));
  await fake?.close();
  await redis?.stop();
});

const fromChat = (chatId: string): Record<string, string> => ({ 'x-openwebui-chat-id': chatId });

describe('regenerations across replicas', () => {
  it('a regenerate that reaches the other replica is a fresh answer there; another chat still hits', async () => {
    const body = chatBody(unique('regenerate-elsewhere'));
    const chatA = unique('chat');
    expect((await chat(replicas[0]!, body, fromChat(chatA))).xCache).toBe('MISS');
    await untilStored(() => chat(replicas[1]!, body, fromChat(unique('chat'))));
    const calls = fake.completionCalls().length;
    // The other replica learns the pair within milliseconds (pub/sub); a user's click comes later.
    const regenerated = await chat(replicas[1]!, body, fromChat(chatA));
    expect(regenerated.status).toBe(200);
    expect(regenerated.xCache).toBe('BYPASS');
    expect(fake.completionCalls().length).toBe(calls + 1);
    // And back on the first replica, a regenerate again: also fresh.
    expect((await chat(replicas[0]!, body, fromChat(chatA))).xCache).toBe('BYPASS');
    // The same request from a chat that never sent it: a hit on either replica.
    expect((await chat(replicas[1]!, body, fromChat(unique('chat')))).xCache).toBe('HIT');
    expect((await chat(replicas[0]!, body, fromChat(unique('chat')))).xCache).toBe('HIT');
  }, 20_000);
});
