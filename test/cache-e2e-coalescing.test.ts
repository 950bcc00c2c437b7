/**
 * End to end: identical requests that arrive while the first is in flight share its one
 * upstream call (streams and JSON mixed), are marked COALESCED, and a late stream joiner receives
 * every byte from the first. A leader that disconnects does not abort the call others wait on; with
 * nobody left the upstream sees the abort at once. Both backends.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import { BACKENDS, chat, chatBody, parseStream, streamText, unique, until, useGateway, type E2eSetup } from './helpers/cache-e2e.js';
import type { GatedUpstream } from './helpers/gated-upstream.js';
import { answerFor, type FakeUpstream } from './helpers/fake-upstream.js';
import type { RunningGateway } from './helpers/gateway.js';

interface OpenStream {
  response: Response;
  /** The first bytes the client received. */
  first: string;
  /** Everything, first bytes included, once the stream ends. */
  all: Promise<string>;
}

/** Starts a streaming request and waits for its first bytes, leaving the rest to be read. */
async function openStream(gateway: RunningGateway, body: Record<string, unknown>, signal?: AbortSignal): Promise<OpenStream> {
  const response = await fetch(`${gateway.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ ...body, stream: true }),
    ...(signal ? { signal } : {}),
  });
  const reader = (response.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  const firstRead = await reader.read();
  const first = decoder.decode(firstRead.value ?? new Uint8Array(), { stream: true });
  const all = (async () => {
    let text = first;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return text + decoder.decode();
      text += decoder.decode(value, { stream: true });
    }
  })();
  all.catch(() => {}); // an aborted leader's rest is never read
  return { response, first, all };
}

function gateOf(setup: E2eSetup): GatedUpstream {
  if (!setup.gate) throw new Error('this block runs without a gate');
  return setup.gate;
}

function slowUpstream(fake: FakeUpstream, settings: { latencyMs?: number; chunkDelayMs?: number; chunks?: number }): void {
  Object.assign(fake.options, settings);
}

describe.each(BACKENDS)('coalescing end to end (%s backend)', (backend) => {
  // The gate holds upstream answers open until the test has seen every joiner join.
  const setup = useGateway(backend, { gated: true });
  afterEach(() => slowUpstream(setup.fake, { latencyMs: 0, chunkDelayMs: 0, chunks: 5 }));

  it('50 identical concurrent requests (streams and JSON mixed) make one upstream call; everyone gets the whole answer', async () => {
    const gate = gateOf(setup);
    const prompt = unique('crowd');
    const body = chatBody(prompt);
    const text = answerFor(body);
    gate.hold(); // the upstream answer stays open until every joiner has joined
    const coalescedBefore = await coalescedCount(setup.gateway);
    const leader = await openStream(setup.gateway, body);
    expect(leader.response.headers.get('x-cache')).toBe('MISS');
    expect(leader.first).toMatch(/^data: /); // the first event already went out

    const joiners = Promise.all(
      Array.from({ length: 49 }, (_, i) => (i % 2 === 0 ? chat(setup.gateway, { ...body, stream: true }) : chat(setup.gateway, body))),
    );
    expect(await until(async () => (await coalescedCount(setup.gateway)) >= coalescedBefore + 49, 10_000)).toBe(true);
    gate.release();
    const answers = await joiners;
    const leaderText = await leader.all;
    expect(streamText(parseStream(leaderText))).toBe(text);
    expect(setup.fake.completionCalls()).toHaveLength(1);

    answers.forEach((joiner, i) => {
      expect(joiner.status).toBe(200);
      expect(joiner.xCache).toBe('COALESCED');
      if (i % 2 === 0) {
        // A late joiner gets every byte from the first one on: the very same stream.
        expect(joiner.text).toBe(leaderText);
        const stream = parseStream(joiner.text);
        expect(stream.done).toBe(true);
        expect(streamText(stream)).toBe(text);
      } else {
        const completion = JSON.parse(joiner.text) as {
          object: string;
          choices: Array<{ message: { content: string }; finish_reason: string }>;
          usage: { total_tokens: number };
        };
        expect(completion.object).toBe('chat.completion');
        expect(completion.choices[0]?.message.content).toBe(text);
        expect(completion.choices[0]?.finish_reason).toBe('stop');
        expect(completion.usage.total_tokens).toBeGreaterThan(0);
      }
    });
    // And the answer was stored once for everybody after.
    expect((await chat(setup.gateway, body)).xCache).toBe('HIT');
    expect(setup.fake.completionCalls()).toHaveLength(1);
  });

  it('a JSON leader: stream joiners get a proper stream, JSON joiners the same completion', async () => {
    const gate = gateOf(setup);
    const body = chatBody(unique('json-leader'));
    gate.hold();
    const coalescedBefore = await coalescedCount(setup.gateway);
    const leaderPromise = chat(setup.gateway, body);
    expect(await until(() => gate.waiting === 1, 5_000, 10)).toBe(true);
    const joiners = Promise.all(Array.from({ length: 10 }, (_, i) => chat(setup.gateway, i % 2 === 0 ? { ...body, stream: true } : body)));
    expect(await until(async () => (await coalescedCount(setup.gateway)) >= coalescedBefore + 10, 10_000)).toBe(true);
    gate.release();
    const [leader, answers] = await Promise.all([leaderPromise, joiners]);
    expect(leader.xCache).toBe('MISS');
    const completion = JSON.parse(leader.text) as { id: string; choices: Array<{ message: { content: string } }> };
    answers.forEach((joiner, i) => {
      expect(joiner.xCache).toBe('COALESCED');
      if (i % 2 === 0) {
        const stream = parseStream(joiner.text);
        expect(stream.done).toBe(true);
        expect(stream.chunks[0]?.id).toBe(completion.id);
        expect(streamText(stream)).toBe(completion.choices[0]?.message.content);
      } else {
        expect(JSON.parse(joiner.text)).toEqual(completion);
      }
    });
    expect(setup.fake.completionCalls()).toHaveLength(1);
  });

  it('a leader that disconnects does not abort the upstream call while followers wait', async () => {
    const gate = gateOf(setup);
    const body = chatBody(unique('leader-leaves'));
    const abort = new AbortController();
    gate.hold();
    const coalescedBefore = await coalescedCount(setup.gateway);
    const leader = await openStream(setup.gateway, body, abort.signal);
    const followers = Promise.all([chat(setup.gateway, body), chat(setup.gateway, { ...body, stream: true }), chat(setup.gateway, body)]);
    // The followers have joined before the leader leaves.
    expect(await until(async () => (await coalescedCount(setup.gateway)) >= coalescedBefore + 3, 10_000)).toBe(true);
    abort.abort();
    await expect(leader.all).rejects.toThrow();
    // Give the gateway time to see the leader go (an abort of the upstream call would show in gate.calls).
    await sleep(300);
    expect(gate.calls.map((call) => call.aborted)).toEqual([false]);
    gate.release();

    const answers = await followers;
    const text = answerFor(body);
    expect(answers.map((a) => a.xCache)).toEqual(['COALESCED', 'COALESCED', 'COALESCED']);
    expect((JSON.parse(answers[0]?.text ?? '') as { choices: Array<{ message: { content: string } }> }).choices[0]?.message.content).toBe(text);
    expect(streamText(parseStream(answers[1]?.text ?? ''))).toBe(text);
    expect(parseStream(answers[1]?.text ?? '').done).toBe(true);
    expect(setup.fake.completionCalls()).toHaveLength(1);
    expect(setup.fake.completionCalls()[0]?.aborted).toBe(false);
    expect(gate.calls.map((call) => call.aborted)).toEqual([false]);
    // The completed answer was cached as usual.
    expect((await chat(setup.gateway, body)).xCache).toBe('HIT');
  });

  it('gives each stream joiner the usage chunk only when it asked for it', async () => {
    const gate = gateOf(setup);
    const body = chatBody(unique('usage-mix'));
    gate.hold();
    const coalescedBefore = await coalescedCount(setup.gateway);
    const leader = await openStream(setup.gateway, body); // did not ask for usage
    const joiners = Promise.all([
      chat(setup.gateway, { ...body, stream: true, stream_options: { include_usage: true } }),
      chat(setup.gateway, { ...body, stream: true }),
    ]);
    expect(await until(async () => (await coalescedCount(setup.gateway)) >= coalescedBefore + 2, 10_000)).toBe(true);
    gate.release();
    const [withUsage, without] = await joiners;
    const leaderStream = parseStream(await leader.all);
    const usageStream = parseStream(withUsage?.text ?? '');
    expect(leaderStream.chunks.some((c) => c.usage)).toBe(false);
    expect(parseStream(without?.text ?? '').chunks.some((c) => c.usage)).toBe(false);
    expect(usageStream.chunks.at(-1)?.usage?.['total_tokens']).toBeGreaterThan(0);
    expect(usageStream.chunks.at(-1)?.choices).toEqual([]);
    expect(streamText(usageStream)).toBe(streamText(leaderStream));
    expect(setup.fake.completionCalls()).toHaveLength(1);
  });

  it('a streaming client that disconnects alone aborts the upstream call at once, and nothing is stored', async () => {
    slowUpstream(setup.fake, { chunks: 10 });
    setup.fake.stallStreamAfterChunks = 2; // the upstream would never finish on its own
    const body = chatBody(unique('alone'));
    const abort = new AbortController();
    const leader = await openStream(setup.gateway, body, abort.signal);
    expect(leader.response.headers.get('x-cache')).toBe('MISS');
    abort.abort();
    expect(await until(() => setup.fake.completionCalls()[0]?.aborted === true, 3_000, 20)).toBe(true);
    setup.fake.stallStreamAfterChunks = undefined;
    const again = await chat(setup.gateway, body);
    expect(again.xCache).toBe('MISS');
    expect(setup.fake.completionCalls()).toHaveLength(2);
  });

  it('a JSON client that disconnects alone while the upstream has not answered aborts the upstream call', async () => {
    slowUpstream(setup.fake, { latencyMs: 10_000 });
    const body = chatBody(unique('json-alone'));
    const abort = new AbortController();
    const pending = fetch(`${setup.gateway.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal: abort.signal,
    });
    pending.catch(() => {});
    expect(await until(() => setup.fake.completionCalls().length === 1, 3_000, 10)).toBe(true);
    abort.abort();
    expect(await until(() => setup.fake.completionCalls()[0]?.aborted === true, 3_000, 20)).toBe(true);
  });
});

/** gateway_cache_coalesced_total summed over endpoints, read from /metrics. */
async function coalescedCount(gateway: RunningGateway): Promise<number> {
  const text = await (await fetch(`${gateway.url}/metrics`)).text();
  let sum = 0;
  for (const match of text.matchAll(/^gateway_cache_coalesced_total\{[^}]*\} (\d+)/gm)) sum += Number(match[1]);
  return sum;
}
