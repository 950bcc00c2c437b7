/**
 * Streams flow: the client gets the first content chunk while the upstream is still writing,
 * not after the gateway buffered the whole answer. Asserted by ordering (the upstream had not
 * finished when the first chunk arrived), never by absolute timings.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { answerFor, startFakeUpstream, type FakeUpstream, type RecordedRequest } from './helpers/fake-upstream.js';
import { startGateway, type RunningGateway } from './helpers/gateway.js';
import { openaiClient } from './helpers/sdk-clients.js';
import { chatContentOf, readSse } from './helpers/sse-reader.js';

let fake: FakeUpstream;
let gw: RunningGateway;

beforeAll(async () => {
  // Five content chunks 200 ms apart: the upstream needs about a second to finish.
  fake = await startFakeUpstream({ chunkDelayMs: 200, chunks: 5 });
  gw = await startGateway(fake);
});
beforeEach(() => fake.reset());
afterAll(async () => {
  await gw.close();
  await fake.close();
});

function upstreamCall(): RecordedRequest {
  const [call] = fake.completionCalls();
  if (!call) throw new Error('the upstream got no completion request');
  return call;
}

describe('the first content chunk reaches the client before the upstream has finished', () => {
  it('chat stream over plain HTTP', async () => {
    const messages = [{ role: 'user', content: 'first chunk ordering' }];
    const response = await fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-4o-mini', messages, stream: true }),
    });
    let upstreamDoneAtFirstContent: boolean | undefined;
    let firstContentAt: number | undefined;
    const events = await readSse(response, (event) => {
      if (firstContentAt !== undefined || event.data === '[DONE]') return;
      const chunk = JSON.parse(event.data) as { choices: Array<{ delta: { content?: string } }> };
      if (!chunk.choices[0]?.delta.content) return;
      firstContentAt = event.at;
      upstreamDoneAtFirstContent = upstreamCall().finishedAt !== undefined;
    });
    expect(upstreamDoneAtFirstContent).toBe(false);
    const finishedAt = upstreamCall().finishedAt;
    expect(finishedAt).toBeDefined();
    expect(firstContentAt!).toBeLessThan(finishedAt!);
    expect(chatContentOf(events)).toBe(answerFor({ messages }));
    expect(events.at(-1)?.data).toBe('[DONE]');
  });

  it('chat stream through the openai SDK', async () => {
    const messages = [{ role: 'user' as const, content: 'first chunk via sdk' }];
    const stream = await openaiClient(gw).chat.completions.create({ model: 'llama-3.1-8b-instant', messages, stream: true });
    let text = '';
    let upstreamDoneAtFirstContent: boolean | undefined;
    for await (const chunk of stream) {
      const delta = chunk.choices[0]?.delta.content;
      if (delta && upstreamDoneAtFirstContent === undefined) upstreamDoneAtFirstContent = upstreamCall().finishedAt !== undefined;
      text += delta ?? '';
    }
    expect(upstreamDoneAtFirstContent).toBe(false);
    expect(text).toBe(answerFor({ messages }));
  });

  it('legacy completions stream', async () => {
    const response = await fetch(`${gw.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-3.5-turbo-instruct', prompt: 'first chunk legacy', stream: true }),
    });
    let upstreamDoneAtFirstText: boolean | undefined;
    await readSse(response, (event) => {
      if (upstreamDoneAtFirstText !== undefined || event.data === '[DONE]') return;
      const chunk = JSON.parse(event.data) as { choices: Array<{ text?: string }> };
      if (chunk.choices[0]?.text) upstreamDoneAtFirstText = upstreamCall().finishedAt !== undefined;
    });
    expect(upstreamDoneAtFirstText).toBe(false);
  });
});
