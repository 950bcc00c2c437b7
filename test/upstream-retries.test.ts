/**
 * Retries end to end: a 5xx or a reset connection before the first byte reaches the client is
 * retried (on the next key, a bounded number of times) without the client noticing; once a
 * streamed byte has left, nothing is retried and the stream ends with an error event that the
 * openai SDK raises, never a silent truncation, and nothing is cached.
 */
import OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import { answerFor, startFakeUpstream } from './helpers/fake-upstream.js';
import { startGateway, TEST_CLIENT_KEY, type RunningGateway } from './helpers/gateway.js';
import { startKeyLimiter } from './helpers/key-limiter.js';
import { readChatStream } from './helpers/sdk-clients.js';
import { chat, metricValue, setUpGatewayE2e, stopGateway, uniqueContent } from './helpers/upstream-e2e.js';

const e2e = setUpGatewayE2e();

/** A gateway whose model lists are already fetched, so queued answers only meet completions. */
function start(env: Record<string, string> = {}): Promise<RunningGateway> {
  return e2e.startWarmGateway({ UPSTREAM_MAX_RETRIES: '2', ...env });
}

function sdk(gw: RunningGateway): OpenAI {
  return new OpenAI({ apiKey: TEST_CLIENT_KEY, baseURL: gw.baseURL, maxRetries: 0 });
}

describe('before the first byte', () => {
  it('retries a 5xx on the next key, and the client sees only the good answer', async () => {
    const gw = await start();
    e2e.fake.queue.push({ status: 500 }, { status: 502 });
    const answer = await chat(gw.url);
    expect(answer.status).toBe(200);
    expect(answer.content).toBeTruthy();
    expect((answer.json?.choices as Array<{ message: { content: string } }> | undefined)?.[0]?.message.content).toContain(answer.content);
    const calls = e2e.fake.completionCalls();
    expect(calls).toHaveLength(3);
    // Every retry moved on to another key.
    expect(calls[1]?.key).not.toBe(calls[0]?.key);
    expect(calls[2]?.key).not.toBe(calls[1]?.key);
    expect(await metricValue(gw.url, 'gateway_upstream_errors_total', { provider: 'openai', status: '500' })).toBe(1);
    expect(await metricValue(gw.url, 'gateway_upstream_errors_total', { provider: 'openai', status: '502' })).toBe(1);
  });

  it('retries a 5xx for a stream request too: the client gets one whole stream', async () => {
    const gw = await start();
    e2e.fake.queue.push({ status: 503 });
    const content = uniqueContent('stream-5xx');
    const stream = await sdk(gw).chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content }], stream: true });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
    expect(text).toBe(answerFor({ messages: [{ content }] }));
    expect(e2e.fake.completionCalls()).toHaveLength(2);
  });

  it('retries a connection reset before any answer', async () => {
    const gw = await start();
    e2e.fake.queue.push({ status: 0, destroy: true }, { status: 0, destroy: true });
    const answer = await chat(gw.url);
    expect(answer.status).toBe(200);
    expect(e2e.fake.completionCalls()).toHaveLength(3);
    expect(await metricValue(gw.url, 'gateway_upstream_errors_total', { provider: 'openai', status: '0' })).toBe(2);
    expect(gw.logs.filter((line) => line.includes('upstream connection failed; retrying'))).toHaveLength(2);
  });

  it('is bounded by UPSTREAM_MAX_RETRIES: the last 5xx is passed on', async () => {
    const gw = await start();
    const body = { error: { message: 'The server had an error while processing your request.', type: 'server_error', code: null } };
    e2e.fake.queue.push({ status: 500, body }, { status: 500, body }, { status: 500, body }, { status: 500, body });
    const answer = await chat(gw.url);
    expect(answer.status).toBe(500);
    expect(answer.json).toEqual(body);
    expect(e2e.fake.completionCalls()).toHaveLength(3);
    // The fourth canned failure was never asked for.
    expect(e2e.fake.queue).toHaveLength(1);
  });

  it('is bounded for connection failures too: 502 upstream_unreachable after the retries', async () => {
    // Start on a live fake so the port is real, then point at one that closed.
    const dead = await startFakeUpstream();
    const deadUrl = dead.openaiBaseUrl;
    await dead.close();
    e2e.gateway = await startGateway(e2e.fake, { OPENAI_BASE_URL: deadUrl, UPSTREAM_MAX_RETRIES: '2' });
    const answer = await chat(e2e.gateway.url, { model: 'openai/gpt-4o-mini' });
    expect(answer.status).toBe(502);
    expect(answer.json).toEqual({ error: { message: expect.stringContaining('openai'), type: 'server_error', code: 'upstream_unreachable' } });
    // 3 attempts for the completion (1 + 2 retries); the model list fetch failed as well.
    expect(e2e.gateway.logs.filter((line) => line.includes('upstream connection failed; retrying')).length).toBeGreaterThanOrEqual(2);
  });

  it('UPSTREAM_MAX_RETRIES=0 does not retry at all', async () => {
    const gw = await start({ UPSTREAM_MAX_RETRIES: '0' });
    e2e.fake.queue.push({ status: 500 });
    expect((await chat(gw.url)).status).toBe(500);
    expect(e2e.fake.completionCalls()).toHaveLength(1);
  });
});

describe('a 200 whose body breaks before any byte reached the client', () => {
  // The head alone has not reached the client (it leaves with the first event), and a JSON
  // answer is only sent whole: either can still be asked again, on the next key.
  for (const [breakage, stream] of [
    ['after-head', true],
    ['mid-json', false],
  ] as const) {
    it(`is retried (${breakage}, ${stream ? 'stream' : 'JSON'})`, async () => {
      const limiter = await startKeyLimiter(e2e.fake);
      try {
        e2e.gateway = await startGateway(e2e.fake, { OPENAI_BASE_URL: limiter.openaiBaseUrl, UPSTREAM_MAX_RETRIES: '2' });
        expect((await chat(e2e.gateway.url)).status).toBe(200);
        limiter.records.length = 0;
        limiter.breakNext.push(breakage);
        const content = uniqueContent(breakage);
        const answer = await chat(e2e.gateway.url, { stream, content });
        expect(answer.status).toBe(200);
        if (stream) {
          expect(answer.text).toContain('data: [DONE]');
          expect(answer.text).not.toContain('"error"');
        } else {
          expect((answer.json?.choices as Array<{ message: { content: string } }> | undefined)?.[0]?.message.content).toBe(
            answerFor({ messages: [{ content }] }),
          );
        }
        const attempts = limiter.records.filter((record) => record.content === content);
        expect(attempts).toHaveLength(2);
        expect(attempts[1]?.key).not.toBe(attempts[0]?.key);
        expect(e2e.gateway.logs.some((line) => line.includes('retrying'))).toBe(true);
      } finally {
        await stopGateway(e2e.gateway!);
        e2e.gateway = undefined;
        await limiter.close();
      }
    });
  }

  it('is bounded by the same budget: with UPSTREAM_MAX_RETRIES=1 a second breakage reaches the client as a 502', async () => {
    const limiter = await startKeyLimiter(e2e.fake);
    try {
      e2e.gateway = await startGateway(e2e.fake, { OPENAI_BASE_URL: limiter.openaiBaseUrl, UPSTREAM_MAX_RETRIES: '1' });
      expect((await chat(e2e.gateway.url)).status).toBe(200);
      limiter.records.length = 0;
      limiter.breakNext.push('after-head', 'after-head', 'after-head');
      const answer = await chat(e2e.gateway.url, { stream: true });
      // Nothing had been sent: a proper error status, not a 200 stream with an error event.
      expect(answer.status).toBe(502);
      expect(answer.json).toEqual({ error: expect.objectContaining({ code: 'upstream_unreachable' }) });
      expect(limiter.records).toHaveLength(2);
    } finally {
      await stopGateway(e2e.gateway!);
      e2e.gateway = undefined;
      await limiter.close();
    }
  });
});

describe('after the first streamed byte', () => {
  it('does not retry: the stream ends with an error event the openai SDK raises, and nothing is cached', async () => {
    const gw = await start();
    // Chunks spaced out, so the first ones have surely left the fake before it cuts the connection.
    e2e.fake.options.chunkDelayMs = 30;
    e2e.fake.cutStreamAfterChunks = 2;
    const content = uniqueContent('cut');
    const full = answerFor({ messages: [{ content }] });
    const stream = await sdk(gw).chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content }], stream: true });
    const { text, failure } = await readChatStream(stream);
    expect(failure).toBeInstanceOf(OpenAI.APIError);
    expect((failure as InstanceType<typeof OpenAI.APIError>).message).toMatch(/provider openai/i);
    expect(text.length).toBeGreaterThan(0);
    expect(full.startsWith(text)).toBe(true);
    expect(text).not.toBe(full);
    expect(e2e.fake.completionCalls()).toHaveLength(1);

    // The raw stream: data events, then the error event, and no [DONE].
    e2e.fake.requests.length = 0;
    const raw = await chat(gw.url, { stream: true, content: uniqueContent('cut-raw') });
    expect(raw.status).toBe(200);
    const events = raw.text.split('\n\n').filter(Boolean);
    const last = JSON.parse(events.at(-1)!.replace(/^data: /, '')) as { error?: { type: string; code: string } };
    expect(last.error).toEqual(expect.objectContaining({ type: 'server_error', code: 'upstream_unreachable' }));
    expect(raw.text).not.toContain('[DONE]');
    expect(e2e.fake.completionCalls()).toHaveLength(1);

    // A broken stream is never cached: the same request goes upstream again, and now succeeds.
    e2e.fake.cutStreamAfterChunks = undefined;
    e2e.fake.requests.length = 0;
    const again = await chat(gw.url, { content });
    expect(again.status).toBe(200);
    expect(again.headers.get('x-cache')).toBe('MISS');
    expect(e2e.fake.completionCalls()).toHaveLength(1);
  });
});

describe('x-should-retry', () => {
  it('is false on the gateway answers a retry cannot fix, absent on those it can', async () => {
    const gw = await start();
    const badJson = await fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{' });
    expect(badJson.status).toBe(400);
    expect(badJson.headers.get('x-should-retry')).toBe('false');
    const unknown = await chat(gw.url, { model: 'no-such-model-anywhere' });
    expect(unknown.status).toBe(404);
    expect(unknown.headers.get('x-should-retry')).toBe('false');
    e2e.fake.queue.push({ status: 500 }, { status: 500 }, { status: 500 });
    const serverError = await chat(gw.url);
    expect(serverError.status).toBe(500);
    expect(serverError.headers.get('x-should-retry')).not.toBe('false');
  });
});
