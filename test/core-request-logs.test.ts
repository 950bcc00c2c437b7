/**
 * Logs: exactly one line per request with id, route, provider, model, status, duration and
 * bytes; and across a suite of requests that exercises every failure path (wrong client keys,
 * provider 429s and 401s, passthrough), no key of any kind appears in any log line, and no
 * prompt or answer text appears at info level.
 */
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { multipartBody, tinyWav } from './helpers/audio.js';
import { startFakeUpstream, type FakeUpstream } from './helpers/fake-upstream.js';
import { startGateway, TEST_CLIENT_KEY, TEST_GROQ_KEYS, TEST_OPENAI_KEYS, type RunningGateway } from './helpers/gateway.js';
import { openaiClient } from './helpers/sdk-clients.js';

const WRONG_KEYS = ['gw-wrong-key-aaaaaaaaaaaaaaaa', 'sk-proj-wrong-client-key-bbbbbbbbbbbb'];
const METRICS_TOKEN = 'metrics-token-cccccccccccccccc';
const WRONG_METRICS_TOKEN = 'metrics-wrong-dddddddddddddddd';
const PROMPT_MARKER = 'PROMPT-MARKER-zq81';

interface LogLine {
  level: number;
  id?: string;
  msg?: string;
  route?: string;
  provider?: string;
  model?: string;
  status?: number;
  durationMs?: number;
  bytes?: number;
  [field: string]: unknown;
}

let fake: FakeUpstream;

beforeAll(async () => {
  fake = await startFakeUpstream();
});
afterAll(async () => {
  await fake.close();
});

const parse = (lines: string[]): LogLine[] => lines.map((line) => JSON.parse(line) as LogLine);

describe('one line per request', () => {
  let gw: RunningGateway;
  beforeAll(async () => {
    gw = await startGateway(fake, { GATEWAY_API_KEYS: TEST_CLIENT_KEY });
  });
  afterAll(async () => {
    await gw.close();
  });

  const auth = { authorization: `Bearer ${TEST_CLIENT_KEY}` };
  /** Waits for the request's log line (written when the response has ended). */
  async function linesOf(id: string): Promise<LogLine[]> {
    for (let i = 0; i < 50 && !parse(gw.logs).some((l) => l.id === id && l.msg === 'request'); i++) await new Promise((r) => setTimeout(r, 20));
    return parse(gw.logs).filter((l) => l.id === id);
  }

  it('a chat completion: id, route, provider, model, status, duration, bytes as sent', async () => {
    const response = await fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json', 'x-request-id': 'log-chat-1' },
      body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'log line json' }] }),
    });
    const body = Buffer.from(await response.arrayBuffer());
    const lines = await linesOf('log-chat-1');
    expect(lines).toHaveLength(1);
    const [line] = lines;
    expect(line).toMatchObject({ level: 30, msg: 'request', route: '/v1/chat/completions', provider: 'openai', model: 'gpt-4o-mini', status: 200 });
    expect(typeof line?.durationMs).toBe('number');
    expect(line?.bytes).toBe(body.length);
  });

  it('a stream: bytes count everything streamed', async () => {
    const response = await fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json', 'x-request-id': 'log-stream-1' },
      body: JSON.stringify({ model: 'llama-3.1-8b-instant', stream: true, messages: [{ role: 'user', content: 'log line stream' }] }),
    });
    const body = Buffer.from(await response.arrayBuffer());
    const lines = await linesOf('log-stream-1');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ msg: 'request', provider: 'groq', model: 'llama-3.1-8b-instant', status: 200, bytes: body.length });
  });

  it.each([
    [
      'passthrough upload',
      'log-pass-1',
      () => {
        const { body, contentType } = multipartBody({ model: 'whisper-1' }, { name: 'file', filename: 'a.wav', type: 'audio/wav', data: tinyWav() });
        return fetch(`${gw.url}/v1/audio/transcriptions`, {
          method: 'POST',
          headers: { ...auth, 'content-type': contentType, 'x-request-id': 'log-pass-1' },
          body: new Uint8Array(body),
        });
      },
      { provider: 'openai', status: 200 },
    ],
    [
      'passthrough GET',
      'log-pass-2',
      () => fetch(`${gw.url}/v1/files`, { headers: { ...auth, 'x-request-id': 'log-pass-2' } }),
      { provider: 'openai', status: 404 },
    ],
    [
      'wrong client key',
      'log-401-1',
      () => fetch(`${gw.url}/v1/models`, { headers: { authorization: 'Bearer nope', 'x-request-id': 'log-401-1' } }),
      { status: 401 },
    ],
    ['unknown route', 'log-404-1', () => fetch(`${gw.url}/nowhere`, { headers: { ...auth, 'x-request-id': 'log-404-1' } }), { status: 404 }],
    [
      'malformed JSON',
      'log-400-1',
      () =>
        fetch(`${gw.url}/v1/chat/completions`, {
          method: 'POST',
          headers: { ...auth, 'content-type': 'application/json', 'x-request-id': 'log-400-1' },
          body: '{',
        }),
      { status: 400 },
    ],
    ['malformed URL', 'log-400-2', () => fetch(`${gw.url}/v1/%E0%A4%A`, { headers: { ...auth, 'x-request-id': 'log-400-2' } }), { status: 400 }],
    ['models', 'log-models-1', () => fetch(`${gw.url}/v1/models`, { headers: { ...auth, 'x-request-id': 'log-models-1' } }), { status: 200 }],
    ['health', 'log-health-1', () => fetch(`${gw.url}/healthz`, { headers: { 'x-request-id': 'log-health-1' } }), { status: 200 }],
  ])('%s: exactly one line, with its status', async (_name, id, send, expected) => {
    const response = await send();
    await response.arrayBuffer();
    const lines = await linesOf(id);
    expect(lines.map((l) => l.msg)).toEqual(['request']);
    expect(lines[0]).toMatchObject(expected);
    expect(typeof lines[0]?.durationMs).toBe('number');
    expect(typeof lines[0]?.bytes).toBe('number');
  });
});

/** Every request shape that could carry a key or prompt into a log line. */
async function exercise(gw: RunningGateway): Promise<void> {
  const client = openaiClient(gw);
  const ok = (p: Promise<unknown>) =>
    p.then(
      () => undefined,
      () => undefined,
    );
  const json = { 'content-type': 'application/json' };
  const rightAuth = { authorization: `Bearer ${TEST_CLIENT_KEY}` };

  // Successful traffic with the prompt marker everywhere a client can put text.
  await client.chat.completions.create({
    model: 'gpt-4o-mini',
    messages: [
      { role: 'system', content: `${PROMPT_MARKER} system` },
      { role: 'user', content: `${PROMPT_MARKER} user` },
    ],
  });
  for await (const chunk of await client.chat.completions.create({
    model: 'llama-3.1-8b-instant',
    stream: true,
    messages: [{ role: 'user', content: `${PROMPT_MARKER} stream` }],
  }))
    void chunk;
  await client.completions.create({ model: 'gpt-3.5-turbo-instruct', prompt: `${PROMPT_MARKER} legacy` });
  await client.embeddings.create({ model: 'text-embedding-3-small', input: `${PROMPT_MARKER} embed` });
  await client.audio.transcriptions.create({
    model: 'whisper-1',
    file: await OpenAI.toFile(tinyWav(), `${PROMPT_MARKER}.wav`),
    prompt: `${PROMPT_MARKER} whisper`,
  });
  await ok(client.moderations.create({ model: 'omni-moderation-latest', input: `${PROMPT_MARKER} moderation` }));
  await fetch(`${gw.url}/v1/files?purpose=${PROMPT_MARKER}`, { headers: rightAuth });
  await fetch(`${gw.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { ...rightAuth, ...json },
    body: `{"model":"gpt-4o-mini","messages":[{"content":"${PROMPT_MARKER} broken`,
  });
  await fetch(`${gw.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { ...rightAuth, ...json },
    body: JSON.stringify({ model: `${PROMPT_MARKER}-model`, messages: [] }),
  });

  // Wrong client keys, in every place a key can be sent.
  for (const wrong of WRONG_KEYS) {
    await ok(openaiClient(gw, wrong).chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] }));
    await fetch(`${gw.url}/v1/models`, { headers: { authorization: `Basic ${Buffer.from(`user:${wrong}`).toString('base64')}` } });
    await fetch(`${gw.url}/v1/models`, { headers: { authorization: wrong } });
    await fetch(`${gw.url}/v1/files`, { headers: { authorization: `Bearer ${wrong}`, 'x-api-key': wrong, cookie: `token=${wrong}` } });
    await fetch(`${gw.url}/v1/models?api_key=${wrong}`);
  }
  await fetch(`${gw.url}/metrics`, { headers: { authorization: `Bearer ${WRONG_METRICS_TOKEN}` } });
  await fetch(`${gw.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });

  // Provider 429 on every key, then a provider that echoes the whole key in its 401 body.
  for (const key of [...TEST_OPENAI_KEYS, ...TEST_GROQ_KEYS]) {
    fake.keyResponses.set(key, {
      status: 429,
      headers: { 'retry-after-ms': '100' },
      body: { error: { message: `Rate limit reached for key ${key}`, type: 'requests', code: 'rate_limit_exceeded' } },
    });
  }
  await ok(client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'limited' }] }));
  await ok(client.chat.completions.create({ model: 'llama-3.1-8b-instant', messages: [{ role: 'user', content: 'limited' }] }));
  await fetch(`${gw.url}/openai/v1/batches`, { headers: rightAuth });
  await new Promise((resolve) => setTimeout(resolve, 200)); // the keys cool down
  for (const key of [...TEST_OPENAI_KEYS, ...TEST_GROQ_KEYS]) {
    fake.keyResponses.set(key, {
      status: 401,
      body: { error: { message: `Incorrect API key provided: ${key}.`, type: 'invalid_request_error', code: 'invalid_api_key' } },
    });
  }
  await fetch(`${gw.url}/v1/files`, { headers: rightAuth });
  await ok(client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'rejected' }] }));
  await ok(client.chat.completions.create({ model: 'llama-3.1-8b-instant', stream: true, messages: [{ role: 'user', content: 'rejected' }] }));
  await ok(client.audio.transcriptions.create({ model: 'whisper-large-v3', file: await OpenAI.toFile(tinyWav(), 'b.wav') }));
  fake.reset();
}

function secrets(): string[] {
  return [...TEST_OPENAI_KEYS, ...TEST_GROQ_KEYS, TEST_CLIENT_KEY, ...WRONG_KEYS, METRICS_TOKEN, WRONG_METRICS_TOKEN];
}

function findLeaks(logs: string[], needles: string[]): string[] {
  const leaks: string[] = [];
  for (const line of logs) {
    for (const needle of needles) {
      // Whole keys, and long enough pieces of them (a prefix or a suffix) to identify one.
      for (const piece of [needle, needle.slice(0, 16), needle.slice(-12)]) {
        if (line.includes(piece)) leaks.push(`${piece} in ${line.slice(0, 300)}`);
      }
    }
  }
  return leaks;
}

describe('no secrets and no prompts in the logs', () => {
  it('the leak finder itself finds whole keys and identifying pieces', () => {
    expect(findLeaks([`{"msg":"x","k":"${TEST_OPENAI_KEYS[0]}"}`], secrets())).not.toEqual([]);
    expect(findLeaks([`{"msg":"Incorrect API key provided: ***${TEST_GROQ_KEYS[0]!.slice(-12)}"}`], secrets())).not.toEqual([]);
    expect(findLeaks(['{"msg":"request","status":401}'], secrets())).toEqual([]);
  });

  it('info level: no key of any kind in any line, and no prompt or answer text', async () => {
    const gw = await startGateway(fake, { GATEWAY_API_KEYS: TEST_CLIENT_KEY, METRICS_TOKEN, LOG_LEVEL: 'info' });
    try {
      await exercise(gw);
    } finally {
      await gw.close();
    }
    expect(gw.logs.length).toBeGreaterThan(20);
    // The failure paths really ran and were logged.
    const parsed = parse(gw.logs);
    expect(parsed.some((l) => l.status === 401)).toBe(true);
    expect(parsed.some((l) => l.status === 429)).toBe(true);
    expect(parsed.some((l) => l.status === 503)).toBe(true);
    expect(findLeaks(gw.logs, secrets())).toEqual([]);
    expect(gw.logs.filter((line) => line.includes(PROMPT_MARKER))).toEqual([]);
    expect(gw.logs.filter((line) => line.includes('Echo:') || line.includes('quick brown fox'))).toEqual([]);
  });

  it('trace level: still no key of any kind in any line', async () => {
    const gw = await startGateway(fake, { GATEWAY_API_KEYS: TEST_CLIENT_KEY, METRICS_TOKEN, LOG_LEVEL: 'trace' });
    try {
      await exercise(gw);
    } finally {
      await gw.close();
    }
    expect(gw.logs.length).toBeGreaterThan(20);
    expect(findLeaks(gw.logs, secrets())).toEqual([]);
  });
});
