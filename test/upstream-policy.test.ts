/**
 * The one upstream policy (upstream/upstream-policy.ts), first driven directly through a
 * provider's dispatcher against a real HTTP server, then through the passthrough, which now
 * shares it with the cached routes: a body held in memory is sent again, a streamed upload
 * never once read; every attempt is counted once; a 429's body hint cools the key on the
 * passthrough as on the cached routes.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import pino from 'pino';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { GatewayError } from '../src/errors.js';
import { KeyPool } from '../src/keys/pool.js';
import { createProviderDispatcher, createUpstreamPool } from '../src/upstream/pool.js';
import { multipartBody, tinyWav } from './helpers/audio.js';
import { TEST_OPENAI_KEYS } from './helpers/gateway.js';
import { metricValue, setUpGatewayE2e } from './helpers/upstream-e2e.js';

type Step = number | 'reset';
interface Seen {
  authorization: string | undefined;
  body: string;
}

/** Answers each request with the next step (a status, or a connection reset once the body was read). */
function scriptedServer(): { server: Server; steps: Step[]; seen: Seen[]; origin: () => string } {
  const steps: Step[] = [];
  const seen: Seen[] = [];
  const server = createServer((request: IncomingMessage, response: ServerResponse) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      seen.push({ authorization: request.headers.authorization, body: Buffer.concat(chunks).toString('utf8') });
      const step = steps.shift() ?? 200;
      if (step === 'reset') {
        request.socket.destroy();
        return;
      }
      const body = JSON.stringify(step < 400 ? { ok: true } : { error: { message: `status ${step}`, type: 'x', code: null } });
      response.writeHead(step, { 'content-type': 'application/json', 'retry-after': '30' }).end(body);
    });
  });
  return { server, steps, seen, origin: () => `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

describe('the policy dispatcher', () => {
  const upstream = scriptedServer();
  const keys = ['sk-policy-key-aaaaaaaaaaaaaaaa', 'sk-policy-key-bbbbbbbbbbbbbbbb'];
  let pool: ReturnType<typeof createUpstreamPool>;
  let keyPool: KeyPool;
  let attempts: number[];
  let dispatcher: ReturnType<typeof createProviderDispatcher>;

  beforeAll(async () => {
    await new Promise<void>((resolve) => upstream.server.listen(0, '127.0.0.1', resolve));
    pool = createUpstreamPool(upstream.origin(), loadConfig({ OPENAI_API_KEYS: keys.join(',') }));
  });
  afterAll(async () => {
    await pool.close();
    await new Promise((resolve) => upstream.server.close(resolve));
  });
  beforeEach(() => {
    upstream.steps.length = 0;
    upstream.seen.length = 0;
    attempts = [];
    keyPool = new KeyPool('openai', keys);
    dispatcher = createProviderDispatcher(pool, {
      provider: 'openai',
      keys: keyPool,
      maxRetries: 2,
      log: pino({ level: 'silent' }),
      observer: { attempt: (_provider, status) => attempts.push(status) },
    });
  });

  const send = (body: Buffer | Readable) =>
    dispatcher.request({ method: 'POST', path: '/v1/x', body, headers: { 'content-type': 'application/json', authorization: 'Bearer the-client-key' } });

  it('sends a body held in memory again after a 5xx and a reset, whole each time, with a provider key', async () => {
    upstream.steps.push(500, 'reset');
    const response = await send(Buffer.from('{"a":"whole body"}'));
    expect(response.statusCode).toBe(200);
    await response.body.dump();
    expect(upstream.seen.map((s) => s.body)).toEqual(['{"a":"whole body"}', '{"a":"whole body"}', '{"a":"whole body"}']);
    // The caller's own Authorization never goes: the policy's key replaces it.
    for (const s of upstream.seen) expect(keys.map((key) => `Bearer ${key}`)).toContain(s.authorization);
    // Each attempt counted once: the 500, the reset (0) and the answer.
    expect(attempts).toEqual([500, 0, 200]);
  });

  it('never sends a streamed upload again once it was read: a 5xx is handed on as it is', async () => {
    upstream.steps.push(500);
    const response = await send(Readable.from([Buffer.from('{"a":'), Buffer.from('"streamed"}')]));
    expect(response.statusCode).toBe(500);
    await response.body.dump();
    expect(upstream.seen.map((s) => s.body)).toEqual(['{"a":"streamed"}']);
    expect(attempts).toEqual([500]);
  });

  it('never sends a streamed upload again after a reset either', async () => {
    upstream.steps.push('reset');
    await expect(send(Readable.from([Buffer.from('{"a":"streamed"}')]))).rejects.toMatchObject({
      code: expect.stringMatching(/^(UND_ERR_SOCKET|ECONNRESET)$/),
    });
    expect(upstream.seen).toHaveLength(1);
  });

  it('a 429 on a streamed upload: the key cools, the provider body is not handed on, and nothing is sent again', async () => {
    upstream.steps.push(429);
    const failure = await send(Readable.from([Buffer.from('{"a":"streamed"}')])).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(failure).toBeInstanceOf(GatewayError);
    expect((failure as GatewayError).statusCode).toBe(429);
    expect(upstream.seen).toHaveLength(1);
    expect(keyPool.counts()).toEqual({ active: 1, cooling: 1, disabled: 0 });
  });
});

describe('the passthrough through the same policy', () => {
  const e2e = setUpGatewayE2e();
  const [firstKey] = TEST_OPENAI_KEYS as [string, string];
  const { body, contentType } = multipartBody({ model: 'whisper-1' }, { name: 'file', filename: 'a.wav', type: 'audio/wav', data: tinyWav() });
  const upload = (url: string) =>
    fetch(`${url}/v1/audio/transcriptions`, { method: 'POST', headers: { 'content-type': contentType }, body: new Uint8Array(body) });

  it('counts every attempt in the upstream histogram and errors, the retried 500 included', async () => {
    const gateway = await e2e.startWarmGateway();
    const labels = { provider: 'openai' };
    const durationsBefore = (await metricValue(gateway.url, 'gateway_upstream_duration_seconds_count', labels)) ?? 0;
    e2e.fake.queue.push({ status: 500 });
    const response = await upload(gateway.url);
    expect(response.status).toBe(200);
    expect((await metricValue(gateway.url, 'gateway_upstream_duration_seconds_count', labels)) ?? 0).toBe(durationsBefore + 2);
    expect(await metricValue(gateway.url, 'gateway_upstream_errors_total', { provider: 'openai', status: '500' })).toBe(1);
  });

  it("a 429 whose only hint is in its body cools the key for the provider's time, not the default", async () => {
    const gateway = await e2e.startWarmGateway();
    e2e.fake.keyResponses.set(firstKey, {
      status: 429,
      body: { error: { message: 'Rate limit reached for requests. Please try again in 42s.', type: 'requests', code: 'rate_limit_exceeded' } },
    });
    expect((await upload(gateway.url)).status).toBe(200);
    const cooled = gateway.logs
      .map((line) => JSON.parse(line) as { msg: string; cooldownMs?: number })
      .find((line) => line.msg === 'provider key rate limited; cooling');
    expect(cooled?.cooldownMs).toBe(42_000);
  });
});
