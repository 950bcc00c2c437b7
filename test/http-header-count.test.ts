/**
 * A request padded with a thousand header fields is refused with 431 before anything is
 * forwarded. Node's HTTP parser (the gateway's and the provider's) keeps only the first fields
 * of a request and drops the rest without a word: forwarded, such a request reached the
 * provider without the provider key, and the provider's 401 disabled every key of the pool.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_HEADER_FIELDS } from '../src/http/http-server.js';
import { setUpFakeUpstream } from './helpers/fake-upstream-fixture.js';
import { startGateway, TEST_CLIENT_KEY, type RunningGateway } from './helpers/gateway.js';
import { firstResponse, sendRaw } from './helpers/raw-socket.js';
import { chat, keyGauge } from './helpers/upstream-e2e.js';

const fixture = setUpFakeUpstream();
let gateway: RunningGateway;
beforeAll(async () => {
  gateway = await startGateway(fixture.fake, { GATEWAY_API_KEYS: TEST_CLIENT_KEY });
});
afterAll(async () => {
  await gateway?.close();
});

function requestWithHeaders(path: string, extra: number): string {
  const padding = Array.from({ length: extra }, (_, i) => `X-H${i}: v\r\n`).join('');
  return `GET ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TEST_CLIENT_KEY}\r\n${padding}Connection: close\r\n\r\n`;
}

describe('the number of header fields is bounded', () => {
  it.each([1_000, 3_000])('%i extra headers on a passthrough route: 431 in OpenAI shape, nothing forwarded, no key disabled', async (extra) => {
    const filesCalls = (): number => fixture.fake.requests.filter((r) => r.path.endsWith('/files')).length;
    const before = filesCalls();
    const { text } = await sendRaw(gateway.url, requestWithHeaders('/v1/files', extra));
    const response = firstResponse(text);
    expect(response?.status).toBe(431);
    expect(response?.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(JSON.parse(response?.body ?? '{}')).toMatchObject({ error: { type: 'invalid_request_error', code: 'request_headers_too_large' } });
    expect(filesCalls()).toBe(before);
    expect(await keyGauge(gateway.url, 'openai')).toMatchObject({ disabled: 0 });
    const after = await chat(gateway.url, { headers: { authorization: `Bearer ${TEST_CLIENT_KEY}` } });
    expect(after.status).toBe(200);
  });

  it('a request at the limit is served', async () => {
    // Host, Authorization and Connection are three of the fields.
    const { text } = await sendRaw(gateway.url, requestWithHeaders('/v1/models', MAX_HEADER_FIELDS - 3));
    expect(firstResponse(text)?.status).toBe(200);
  });
});
