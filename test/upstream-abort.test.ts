/**
 * A client that goes away aborts its upstream call, so no tokens are burned for nobody: the
 * fake upstream must see its socket close. Unless identical (coalesced) requests still wait on
 * the same call: then it runs on for them, and stops only when the last one has left.
 */
import { describe, expect, it } from 'vitest';
import { answerFor } from './helpers/fake-upstream.js';
import type { RunningGateway } from './helpers/gateway.js';
import { chat, eventually, pause, setUpGatewayE2e, uniqueContent } from './helpers/upstream-e2e.js';

const e2e = setUpGatewayE2e();

interface OpenStream {
  controller: AbortController;
  response: Response;
  /** Everything read so far. */
  text(): string;
  /** Reads until `predicate(textSoFar)` holds (or the stream ends). */
  readUntil(predicate: (text: string) => boolean): Promise<void>;
  /** Reads to the end. */
  rest(): Promise<string>;
}

async function openStream(gw: RunningGateway, content: string): Promise<OpenStream> {
  const controller = new AbortController();
  const response = await fetch(`${gw.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content }], stream: true }),
    signal: controller.signal,
  });
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let received = '';
  const readUntil = async (predicate: (text: string) => boolean) => {
    while (!predicate(received)) {
      const { value, done } = await reader.read();
      if (done) return;
      received += decoder.decode(value, { stream: true });
    }
  };
  return {
    controller,
    response,
    text: () => received,
    readUntil,
    rest: async () => {
      await readUntil(() => false);
      return received;
    },
  };
}

/** The streamed content so far, from the SSE text. */
function contentOf(sse: string): string {
  let text = '';
  for (const line of sse.split('\n')) {
    if (!line.startsWith('data: {')) continue;
    const chunk = JSON.parse(line.slice(6)) as { choices?: Array<{ delta?: { content?: string } }> };
    text += chunk.choices?.[0]?.delta?.content ?? '';
  }
  return text;
}

const hasContent = (sse: string) => contentOf(sse).length > 0;

describe('a client that disconnects', () => {
  it('mid-stream: the upstream call is aborted at once', async () => {
    const gw = await e2e.startWarmGateway();
    e2e.fake.options.chunkDelayMs = 200;
    e2e.fake.options.chunks = 12;
    const stream = await openStream(gw, uniqueContent('abort-stream'));
    await stream.readUntil(hasContent);
    expect(e2e.fake.completionCalls()).toHaveLength(1);
    stream.controller.abort();
    // Long before the stream would have ended on its own (many more chunks, 200 ms apart).
    await eventually(() => expect(e2e.fake.completionCalls()[0]?.aborted).toBe(true), 1_500, 10);
  });

  it('while waiting for the answer (JSON request): the upstream call is aborted at once', async () => {
    const gw = await e2e.startWarmGateway();
    e2e.fake.options.latencyMs = 3_000;
    const controller = new AbortController();
    const pending = chat(gw.url, { signal: controller.signal }).catch((error: unknown) => error);
    await eventually(() => expect(e2e.fake.completionCalls()).toHaveLength(1), 2_000, 10);
    controller.abort();
    expect(await pending).toBeInstanceOf(Error);
    await eventually(() => expect(e2e.fake.completionCalls()[0]?.aborted).toBe(true), 2_000, 10);
    // The gateway logged the request as it ended, and did not try again.
    await pause(100);
    expect(e2e.fake.completionCalls()).toHaveLength(1);
  });
});

describe('coalesced followers', () => {
  it('keep the upstream call alive when the first client leaves; it stops when the last one leaves', async () => {
    const gw = await e2e.startWarmGateway();
    e2e.fake.options.chunkDelayMs = 150;
    e2e.fake.options.chunks = 12;
    const content = uniqueContent('coalesced');

    const first = await openStream(gw, content);
    await first.readUntil(hasContent);
    const follower = await openStream(gw, content);
    expect(follower.response.headers.get('x-cache')).toBe('COALESCED');
    await follower.readUntil(hasContent);
    first.controller.abort();

    // The follower still gets the whole answer, from the same single upstream call.
    const sse = await follower.rest();
    expect(contentOf(sse)).toBe(answerFor({ messages: [{ content }] }));
    expect(sse).toContain('data: [DONE]');
    expect(e2e.fake.completionCalls()).toHaveLength(1);
    expect(e2e.fake.completionCalls()[0]?.aborted).toBe(false);

    // Now two waiters that both leave: the call is aborted once nobody is left.
    e2e.fake.requests.length = 0;
    const again = uniqueContent('coalesced-both-leave');
    const one = await openStream(gw, again);
    await one.readUntil(hasContent);
    const two = await openStream(gw, again);
    expect(two.response.headers.get('x-cache')).toBe('COALESCED');
    await two.readUntil(hasContent);
    one.controller.abort();
    await pause(200);
    expect(e2e.fake.completionCalls()[0]?.aborted).toBe(false);
    two.controller.abort();
    await eventually(() => expect(e2e.fake.completionCalls()[0]?.aborted).toBe(true), 1_200, 10);
    expect(e2e.fake.completionCalls()).toHaveLength(1);
  });
});
