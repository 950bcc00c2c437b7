import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cooldownFromResponse } from '../src/keys/cooldown.js';
import { parseDuration } from '../src/keys/duration.js';
import { retryAfterHeaders } from '../src/keys/retry-after.js';

const NOW = Date.parse('2025-01-01T00:00:00Z');

describe('parseDuration reads OpenAI and Groq reset durations', () => {
  it.each([
    ['1s', 1_000],
    ['6m0s', 360_000],
    ['20ms', 20],
    ['1m30.5s', 90_500],
    ['2m59.56s', 179_560],
    ['7.66s', 7_660],
    ['2h1m', 7_260_000],
    ['0s', 0],
    ['1.5h', 5_400_000],
  ])('%s is %d ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each(['', 'soon', '5', '5x', 's', '1m 30s', '-1s', '1s2'])('%j is not a duration', (text) => {
    expect(parseDuration(text)).toBeUndefined();
  });
});

describe('cooldownFromResponse takes the provider hint', () => {
  it('retry-after in seconds', () => {
    expect(cooldownFromResponse({ 'retry-after': '7' }, undefined, NOW)).toBe(7_000);
  });

  it('retry-after as an HTTP date', () => {
    const at = new Date(NOW + 42_000).toUTCString();
    expect(cooldownFromResponse({ 'retry-after': at }, undefined, NOW)).toBe(42_000);
  });

  it('retry-after as an HTTP date already past means no wait', () => {
    const at = new Date(NOW - 5_000).toUTCString();
    expect(cooldownFromResponse({ 'retry-after': at }, undefined, NOW)).toBe(0);
  });

  it('retry-after-ms, preferred over retry-after', () => {
    expect(cooldownFromResponse({ 'retry-after-ms': '1500', 'retry-after': '2' }, undefined, NOW)).toBe(1_500);
  });

  it('x-ratelimit-reset-requests when the request budget is out', () => {
    const headers = {
      'x-ratelimit-remaining-requests': '0',
      'x-ratelimit-reset-requests': '6m0s',
      'x-ratelimit-remaining-tokens': '5000',
      'x-ratelimit-reset-tokens': '20ms',
    };
    expect(cooldownFromResponse(headers, undefined, NOW)).toBe(360_000);
  });

  it('x-ratelimit-reset-tokens when the token budget is out', () => {
    const headers = {
      'x-ratelimit-remaining-requests': '99',
      'x-ratelimit-reset-requests': '6m0s',
      'x-ratelimit-remaining-tokens': '0',
      'x-ratelimit-reset-tokens': '20ms',
    };
    expect(cooldownFromResponse(headers, undefined, NOW)).toBe(20);
  });

  it('the later reset when no remaining count says which budget ran out', () => {
    const headers = { 'x-ratelimit-reset-requests': '2m59.56s', 'x-ratelimit-reset-tokens': '7.66s' };
    expect(cooldownFromResponse(headers, undefined, NOW)).toBe(179_560);
  });

  it('retry-after wins over the reset headers', () => {
    expect(cooldownFromResponse({ 'retry-after': '3', 'x-ratelimit-reset-tokens': '1m' }, undefined, NOW)).toBe(3_000);
  });

  it.each([
    ['Please try again in 5.289s.', 5_289],
    ['Rate limit reached. Please try again in 1m2.5s. Visit …', 62_500],
    ['Please try again in 120ms.', 120],
  ])('the body message %j', (message, ms) => {
    const body = JSON.stringify({ error: { message, type: 'tokens', code: 'rate_limit_exceeded' } });
    expect(cooldownFromResponse({}, body, NOW)).toBe(ms);
  });

  it('headers win over the body message', () => {
    expect(cooldownFromResponse({ 'retry-after': '1' }, 'Please try again in 5.289s.', NOW)).toBe(1_000);
  });

  it('undefined when there is no hint, or only unreadable ones', () => {
    expect(cooldownFromResponse({}, undefined, NOW)).toBeUndefined();
    expect(cooldownFromResponse({ 'retry-after': 'later', 'retry-after-ms': 'x' }, '{"error":{}}', NOW)).toBeUndefined();
  });

  it('reads header names in any case and the first of repeated values', () => {
    expect(cooldownFromResponse({ 'Retry-After': ['4', '9'] }, undefined, NOW)).toBe(4_000);
  });
});

describe('cooldownFromResponse on a real 429 read with undici', () => {
  let server: Server;
  let url: string;

  beforeAll(async () => {
    server = createServer((_req, res) => {
      res.writeHead(429, {
        'content-type': 'application/json',
        'x-ratelimit-remaining-requests': '14399',
        'x-ratelimit-remaining-tokens': '0',
        'x-ratelimit-reset-requests': '6s',
        'x-ratelimit-reset-tokens': '7.66s',
      });
      res.end(JSON.stringify({ error: { message: 'Please try again in 5.289s.', type: 'tokens' } }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  });

  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('uses the reset of the exhausted budget from the response headers', async () => {
    const response = await request(url);
    const body = await response.body.text();
    expect(response.statusCode).toBe(429);
    expect(cooldownFromResponse(response.headers, body, Date.now())).toBe(7_660);
  });
});

describe('retryAfterHeaders for the gateway own 429', () => {
  it('rounds seconds up and keeps exact milliseconds', () => {
    expect(retryAfterHeaders(5_289)).toEqual({ 'retry-after': '6', 'retry-after-ms': '5289' });
    expect(retryAfterHeaders(2_000)).toEqual({ 'retry-after': '2', 'retry-after-ms': '2000' });
    expect(retryAfterHeaders(0.4)).toEqual({ 'retry-after': '1', 'retry-after-ms': '1' });
  });
});
