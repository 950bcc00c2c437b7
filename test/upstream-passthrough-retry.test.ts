/**
 * Passthrough routes (audio, files, …) retry like the cached routes, before any byte reaches
 * the client: a 429 cools that key and a 401/403 disables it, and the request goes again on
 * another key with the same body; a 5xx or a reset connection is retried a bounded number of
 * times. Only when no key is left does the client see the provider's refusal.
 */
import { describe, expect, it } from 'vitest';
import { multipartBody, tinyWav } from './helpers/audio.js';
import { TEST_OPENAI_KEYS } from './helpers/gateway.js';
import { keyGauge, setUpGatewayE2e } from './helpers/upstream-e2e.js';

const e2e = setUpGatewayE2e();
const [firstKey, secondKey] = TEST_OPENAI_KEYS as [string, string];

// One multipart body (one boundary) for every upload, so what the fake received can be compared.
const { body, contentType } = multipartBody({ model: 'whisper-1' }, { name: 'file', filename: 'a.wav', type: 'audio/wav', data: tinyWav() });

function upload(url: string): Promise<Response> {
  return fetch(`${url}/v1/audio/transcriptions`, { method: 'POST', headers: { 'content-type': contentType }, body: new Uint8Array(body) });
}

function transcriptionCalls() {
  return e2e.fake.requests.filter((r) => r.path === '/v1/audio/transcriptions');
}

describe('passthrough retries', () => {
  it('a 429 on one key: the upload succeeds on the other key, with the same bytes, and the first key cools', async () => {
    const gateway = await e2e.startWarmGateway();
    e2e.fake.keyResponses.set(firstKey, {
      status: 429,
      headers: { 'retry-after': '30' },
      body: { error: { message: 'Rate limit reached', type: 'requests', code: 'rate_limit_exceeded' } },
    });
    const responses = [await upload(gateway.url), await upload(gateway.url)];
    for (const response of responses) {
      expect(response.status).toBe(200);
      expect(((await response.json()) as { text: string }).text).toMatch(/^transcribed \d+ bytes/);
    }
    const calls = transcriptionCalls();
    const succeeded = calls.filter((call) => call.key === secondKey);
    expect(succeeded).toHaveLength(2);
    // The retried request carried the client's multipart body unchanged.
    for (const call of calls) expect(call.body).toBe(body.toString('utf8'));
    expect(calls.filter((call) => call.key === firstKey).length).toBeLessThanOrEqual(1);
    expect((await keyGauge(gateway.url, 'openai')).cooling).toBe(1);
  });

  it('a 401 on one key: the request succeeds on the other key and the rejected key is disabled', async () => {
    const gateway = await e2e.startWarmGateway();
    e2e.fake.keyResponses.set(firstKey, {
      status: 401,
      body: { error: { message: `Incorrect API key provided: ${firstKey.slice(0, 3)}...`, type: 'invalid_request_error', code: 'invalid_api_key' } },
    });
    for (let i = 0; i < 3; i++) expect((await upload(gateway.url)).status).toBe(200);
    expect(transcriptionCalls().filter((call) => call.key === firstKey).length).toBe(1);
    expect((await keyGauge(gateway.url, 'openai')).disabled).toBe(1);
  });

  it('a 500 and a reset connection before the answer are retried', async () => {
    const gateway = await e2e.startWarmGateway();
    e2e.fake.queue.push({ status: 500 }, { status: 0, destroy: true });
    const response = await upload(gateway.url);
    expect(response.status).toBe(200);
    expect(transcriptionCalls()).toHaveLength(3);
  });

  it('every key rate limited: the client gets the 429, after each key was tried once', async () => {
    const gateway = await e2e.startWarmGateway();
    for (const key of TEST_OPENAI_KEYS) e2e.fake.keyResponses.set(key, { status: 429, headers: { 'retry-after': '7' } });
    const response = await upload(gateway.url);
    expect(response.status).toBe(429);
    expect(response.headers.get('retry-after')).toBe('7');
    expect(new Set(transcriptionCalls().map((call) => call.key))).toEqual(new Set(TEST_OPENAI_KEYS));
    expect(transcriptionCalls()).toHaveLength(2);
  });
});
