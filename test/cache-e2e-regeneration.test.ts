/**
 * End to end: Open WebUI's "regenerate" re-sends the same request from the same chat
 * (X-OpenWebUI-Chat-Id): it must reach the upstream (BYPASS) and refresh the entry, while the same
 * request from another chat is an ordinary lookup. Both backends.
 */
import { describe, expect, it } from 'vitest';
import { BACKENDS, chat, chatBody, parseStream, unique, useGateway, type GatewayResponse } from './helpers/cache-e2e.js';

const idOf = (response: GatewayResponse): string => (JSON.parse(response.text) as { id: string }).id;
const fromChat = (chatId: string): Record<string, string> => ({ 'x-openwebui-chat-id': chatId });

describe.each(BACKENDS)('regeneration by X-OpenWebUI-Chat-Id (%s backend)', (backend) => {
  const setup = useGateway(backend);

  it('treats the same body again from the same chat as a regeneration: BYPASS, upstream, entry refreshed', async () => {
    const body = chatBody(unique());
    const chatA = unique('chat');
    const first = await chat(setup.gateway, body, fromChat(chatA));
    expect(first.xCache).toBe('MISS');
    const regenerated = await chat(setup.gateway, body, fromChat(chatA));
    expect(regenerated.status).toBe(200);
    expect(regenerated.xCache).toBe('BYPASS');
    expect(setup.fake.completionCalls()).toHaveLength(2);
    expect(idOf(regenerated)).not.toBe(idOf(first));
    // Again and again: each regeneration is a fresh answer (a stream too).
    const third = await chat(setup.gateway, { ...body, stream: true }, fromChat(chatA));
    expect(third.xCache).toBe('BYPASS');
    expect(setup.fake.completionCalls()).toHaveLength(3);
    // The regenerated answer replaced the entry: another chat now gets it.
    const other = await chat(setup.gateway, body, fromChat(unique('chat')));
    expect(other.xCache).toBe('HIT');
    expect(idOf(other)).toBe(parseStream(third.text).chunks[0]?.id);
    expect(setup.fake.completionCalls()).toHaveLength(3);
  });

  it('regenerates also when the chat’s first answer was a HIT filled by another chat', async () => {
    const body = chatBody(unique());
    const filler = await chat(setup.gateway, body, fromChat(unique('chat')));
    expect(filler.xCache).toBe('MISS');
    const chatB = unique('chat');
    const firstInB = await chat(setup.gateway, body, fromChat(chatB));
    expect(firstInB.xCache).toBe('HIT');
    expect(setup.fake.completionCalls()).toHaveLength(1);
    const regenerated = await chat(setup.gateway, body, fromChat(chatB));
    expect(regenerated.xCache).toBe('BYPASS');
    expect(setup.fake.completionCalls()).toHaveLength(2);
    expect(idOf(regenerated)).not.toBe(idOf(firstInB));
  });

  it('lets the same body from another chat, or with no chat id, hit', async () => {
    const body = chatBody(unique());
    await chat(setup.gateway, body, fromChat(unique('chat')));
    const otherChat = await chat(setup.gateway, body, fromChat(unique('chat')));
    expect(otherChat.xCache).toBe('HIT');
    const noChat = await chat(setup.gateway, body);
    expect(noChat.xCache).toBe('HIT');
    const noChatAgain = await chat(setup.gateway, body);
    expect(noChatAgain.xCache).toBe('HIT');
    expect(setup.fake.completionCalls()).toHaveLength(1);
  });

  it('does not count a different request from the same chat (the next turn) as a regeneration', async () => {
    const chatId = unique('chat');
    const turn1 = chatBody(unique());
    const turn2 = { ...turn1, messages: [...(turn1.messages as unknown[]), { role: 'assistant', content: 'ok' }, { role: 'user', content: 'and then?' }] };
    await chat(setup.gateway, turn1, fromChat(unique('chat'))); // filled elsewhere
    expect((await chat(setup.gateway, turn1, fromChat(chatId))).xCache).toBe('HIT');
    expect((await chat(setup.gateway, turn2, fromChat(chatId))).xCache).toBe('MISS');
    expect(setup.fake.completionCalls()).toHaveLength(2);
  });
});
