/**
 * End to end: only complete successes are cached. Upstream errors (400, 500) and streams
 * that were cut off reach the client as errors (the openai SDK raises) and the next identical
 * request goes upstream again. Both backends.
 */
import OpenAI from 'openai';
import { afterEach, describe, expect, it } from 'vitest';
import { BACKENDS, chat, chatBody, parseStream, streamText, unique, useGateway } from './helpers/cache-e2e.js';
import { answerFor } from './helpers/fake-upstream.js';

describe.each(BACKENDS)('errors and cut-off streams are not cached (%s backend)', (backend) => {
  // No retries: a queued 500 must reach the client instead of being retried away.
  const setup = useGateway(backend, { env: { UPSTREAM_MAX_RETRIES: '0' } });
  afterEach(() => cutAfter(undefined));
  /** Cuts the fake's streams after `chunks` content chunks; paced, so what came before reaches the gateway. */
  const cutAfter = (chunks: number | undefined): void => {
    setup.fake.cutStreamAfterChunks = chunks;
    setup.fake.options.chunkDelayMs = chunks === undefined ? 0 : 20;
  };
  const sdk = (): OpenAI => new OpenAI({ apiKey: 'unused-by-gateway', baseURL: setup.gateway.baseURL, maxRetries: 0, timeout: 10_000 });

  it.each([
    [400, { error: { message: 'Invalid value for temperature', type: 'invalid_request_error', code: 'invalid_value' } }],
    [500, { error: { message: 'The server had an error', type: 'server_error', code: null } }],
  ])('passes an upstream %i through and calls upstream again for the same request', async (status, errorBody) => {
    const body = chatBody(unique());
    setup.fake.queue.push({ status, body: errorBody });
    const failed = await chat(setup.gateway, body);
    expect(failed.status).toBe(status);
    expect(JSON.parse(failed.text)).toMatchObject(errorBody);
    expect(failed.xCache).not.toBe('HIT');

    const retried = await chat(setup.gateway, body);
    expect(retried.status).toBe(200);
    expect(retried.xCache).toBe('MISS');
    expect(setup.fake.completionCalls()).toHaveLength(2);
    // Only the success is stored.
    expect((await chat(setup.gateway, body)).xCache).toBe('HIT');
    expect(setup.fake.completionCalls()).toHaveLength(2);
  });

  it('an upstream error on a stream request is not cached either', async () => {
    const body = chatBody(unique(), { stream: true });
    setup.fake.queue.push({ status: 400, body: { error: { message: 'bad', type: 'invalid_request_error', code: null } } });
    const failed = await chat(setup.gateway, body);
    expect(failed.status).toBe(400);
    const retried = await chat(setup.gateway, body);
    expect(retried.status).toBe(200);
    expect(retried.xCache).toBe('MISS');
    expect(streamText(parseStream(retried.text))).toBe(answerFor(body));
    expect(setup.fake.completionCalls()).toHaveLength(2);
  });

  it('a stream cut mid-way makes the openai SDK raise, and the next identical request goes upstream', async () => {
    const prompt = unique('cut');
    const params = { model: 'gpt-4o-mini', messages: [{ role: 'user' as const, content: prompt }], stream: true as const };
    cutAfter(2);
    const stream = await sdk().chat.completions.create(params);
    let received = '';
    await expect(
      (async () => {
        for await (const chunk of stream) received += chunk.choices[0]?.delta.content ?? '';
      })(),
    ).rejects.toThrow();
    expect(received.length).toBeGreaterThan(0); // it was cut, not refused
    expect(received).not.toBe(answerFor({ messages: [{ content: prompt }] }));

    cutAfter(undefined);
    const again = await chat(setup.gateway, params);
    expect(again.xCache).toBe('MISS');
    const parsed = parseStream(again.text);
    expect(parsed.done).toBe(true);
    expect(streamText(parsed)).toBe(answerFor({ messages: [{ content: prompt }] }));
    expect(setup.fake.completionCalls()).toHaveLength(2);
    expect((await chat(setup.gateway, { ...params, stream: false })).xCache).toBe('HIT');
  });

  it('a cut stream ends without [DONE] for raw clients and is not served to a later JSON request', async () => {
    const body = chatBody(unique('cut-raw'));
    cutAfter(1);
    const cut = await chat(setup.gateway, { ...body, stream: true });
    const parsed = parseStream(cut.text);
    expect(parsed.done).toBe(false);
    expect(parsed.data.at(-1)).toMatch(/"error"/);
    cutAfter(undefined);
    const json = await chat(setup.gateway, body);
    expect(json.status).toBe(200);
    expect(json.xCache).toBe('MISS');
    expect(setup.fake.completionCalls()).toHaveLength(2);
  });
});
