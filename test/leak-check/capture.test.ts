/**
 * The leak check sees every channel a gateway speaks on: its log lines, every response whatever
 * client read it (fetch, the openai SDK's stream, node:http, a raw socket), its /metrics when it
 * closes, and the real process's stdout and the responses read from it; and it registers the
 * secrets of the gateway's environment, of its KEYS_FILE as rewritten later, and the
 * Authorization values the test sends. (The search itself is tested in secret-matcher.test.ts.)
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { startGateway, TEST_CLIENT_KEY, TEST_OPENAI_KEYS } from '../helpers/gateway.js';
import { startGatewayProcess } from '../helpers/gateway-process.js';
import { rawRequest } from '../helpers/raw-http.js';
import { openaiClient } from '../helpers/sdk-clients.js';
import { leakState, type Channel } from './recorder.js';

let fake: FakeUpstream;

beforeAll(async () => {
  fake = await startFakeUpstream();
});
afterAll(async () => {
  await fake.close();
});

/** Everything recorded so far on one channel, as one text. */
function recorded(channel: Channel): string {
  return leakState()
    .entries.filter((entry) => entry.channel === channel)
    .map((entry) => entry.chunks.join(''))
    .join('\n');
}

it('is on: the setup file is loaded and this file is being recorded', () => {
  expect(leakState().file).toBe(join('test', 'leak-check', 'capture.test.ts'));
});

it('an in-process gateway: log lines, responses to every kind of client, /metrics at close, its secrets', async () => {
  const metricsToken = 'metrics-token-capture-Zx81Qp';
  const gateway = await startGateway(fake, { GATEWAY_API_KEYS: TEST_CLIENT_KEY, METRICS_TOKEN: metricsToken });
  const auth = { authorization: `Bearer ${TEST_CLIENT_KEY}` };
  const figures = { ...leakState().figures };

  const byFetch = await fetch(`${gateway.url}/v1/models`, { headers: auth });
  const fetchId = byFetch.headers.get('x-request-id');
  await byFetch.text();
  let streamed = '';
  const stream = await openaiClient(gateway).chat.completions.create({
    model: 'gpt-4o-mini',
    stream: true,
    messages: [{ role: 'user', content: 'capture sdk' }],
  });
  for await (const chunk of stream) streamed += chunk.choices[0]?.delta.content ?? '';
  const byHttp = await rawRequest(`${gateway.url}/healthz`);
  const socket = connect(Number(new URL(gateway.url).port), '127.0.0.1');
  let raw = '';
  socket.on('data', (chunk: Buffer) => (raw += chunk.toString('latin1')));
  const sentKey = 'sk-sent-by-the-test-only-Qm7Rt2Vw9';
  socket.write(`GET /v1/nowhere HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${sentKey}\r\nConnection: close\r\n\r\n`);
  await new Promise((resolve) => socket.once('close', resolve));
  await gateway.close();

  const responses = recorded('response');
  expect(responses).toContain(`x-request-id: ${fetchId}`);
  expect(streamed.length).toBeGreaterThan(0);
  for (const piece of streamed.split(' ').filter(Boolean)) expect(responses).toContain(piece);
  expect(responses).toContain(byHttp.body.toString('utf8'));
  expect(responses).toContain(raw.slice(raw.indexOf('\r\n\r\n') + 4));
  expect(leakState().figures.responses - figures.responses).toBe(4);
  expect(recorded('log')).toContain(`"id":"${fetchId}"`);
  expect(recorded('metrics')).toContain('gateway_requests_total');
  expect(leakState().figures.metricScrapes - figures.metricScrapes).toBe(1);
  const { matcher } = leakState();
  for (const secret of [TEST_CLIENT_KEY, metricsToken, ...TEST_OPENAI_KEYS, sentKey]) expect(matcher.has(secret), secret).toBe(true);
});

it('a KEYS_FILE rewritten while the gateway runs: the keys it reloads are registered too', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'leak-capture-'));
  const file = join(dir, 'keys.json');
  const first = 'sk-keys-file-first-Hy6Tq0Lp3';
  const rotated = 'sk-keys-file-rotated-Bn4Wc8Zs1';
  try {
    await writeFile(file, JSON.stringify({ openai: [first] }));
    const gateway = await startGateway(fake, { KEYS_FILE: file });
    expect(leakState().matcher.has(first)).toBe(true);
    await writeFile(file, JSON.stringify({ openai: [rotated] }));
    await gateway.close();
    expect(leakState().matcher.has(rotated)).toBe(true);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

it('a gateway process: its stdout, the responses read from it, the secrets of its environment and .env', async () => {
  const dotenvKey = 'gw-client-key-from-dotenv-Pq2Xz7';
  const gateway = await startGatewayProcess(
    { OPENAI_BASE_URL: fake.openaiBaseUrl, GROQ_BASE_URL: fake.groqBaseUrl, OPENAI_API_KEYS: TEST_OPENAI_KEYS[0]! },
    { dotenv: `GATEWAY_API_KEYS=${dotenvKey}\n` },
  );
  try {
    const answer = await fetch(`${gateway.url}/v1/models`, { headers: { authorization: `Bearer ${dotenvKey}` } });
    const id = answer.headers.get('x-request-id');
    await answer.text();
    expect(recorded('process-response')).toContain(`x-request-id: ${id}`);
    expect(recorded('process-stdout')).toContain('Server listening at');
    expect(leakState().matcher.has(dotenvKey)).toBe(true);
  } finally {
    gateway.kill();
    await gateway.exited;
  }
});
