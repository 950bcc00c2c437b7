/**
 * The rules by which the fuzzer's "ways in" comparison (test/fuzz/entry-paths.ts) calls two
 * answers to one input the same answer: a stream may be chunked differently and an upstream
 * answer differs from a stored one in its id, but two hits of one entry are the same bytes, and
 * the status, error code and type, and Content-Type always match.
 */
import { describe, expect, it } from 'vitest';
import { disagreement } from './fuzz/agreement.js';
import { retarget, withQuery } from './fuzz/entry-paths.js';
import { requestHead, type WireResponse } from './fuzz/http-wire.js';
import type { JudgedOutcome } from './fuzz/oracle.js';

function answer(status: number, contentType: string, body: string | object, cache?: string): JudgedOutcome {
  const headers = new Map<string, string[]>([['content-type', [contentType]]]);
  if (cache) headers.set('x-cache', [cache]);
  const response: WireResponse = { status, headers, body: Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)), interim: [] };
  return { kind: 'response', response };
}

const chat = (id: string, content: string) => ({
  id,
  object: 'chat.completion',
  created: 1,
  model: 'gpt-4o-mini',
  choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }],
  usage: { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 },
});
const sse = (...chunks: object[]) => `${chunks.map((c) => `data: ${JSON.stringify(c)}\n\n`).join('')}data: [DONE]\n\n`;
const chunk = (id: string, delta: object, finish: string | null = null) => ({
  id,
  object: 'chat.completion.chunk',
  created: 1,
  model: 'gpt-4o-mini',
  choices: [{ index: 0, delta, finish_reason: finish }],
});
const NAMES = ['a', 'b'] as const;
const JSON_TYPE = 'application/json';
const SSE_TYPE = 'text/event-stream; charset=utf-8';

describe('fuzz agreement', () => {
  it('an upstream answer and a stored one agree when they say the same, whatever their ids; two hits must be the same bytes', () => {
    expect(disagreement(answer(200, JSON_TYPE, chat('x1', 'hi'), 'MISS'), answer(200, JSON_TYPE, chat('x2', 'hi'), 'HIT'), NAMES)).toBeUndefined();
    expect(disagreement(answer(200, JSON_TYPE, chat('x1', 'hi'), 'MISS'), answer(200, JSON_TYPE, chat('x1', 'ho'), 'HIT'), NAMES)).toMatch(/2xx content/);
    expect(disagreement(answer(200, JSON_TYPE, chat('x1', 'hi'), 'HIT'), answer(200, JSON_TYPE, chat('x2', 'hi'), 'HIT'), NAMES)).toMatch(
      /two hits of one entry/,
    );
  });

  it('streams agree on their text, roles, finish reasons and usage, however they are chunked', () => {
    const whole = sse(chunk('s1', { role: 'assistant', content: '' }), chunk('s1', { content: 'hello world' }), chunk('s1', {}, 'stop'));
    const split = sse(chunk('s2', { role: 'assistant', content: 'hel' }), chunk('s2', { content: 'lo ' }), chunk('s2', { content: 'world' }, 'stop'));
    const other = sse(chunk('s3', { role: 'assistant', content: 'hello there' }, 'stop'));
    const cut = split.replace('data: [DONE]\n\n', '');
    expect(disagreement(answer(200, SSE_TYPE, whole, 'MISS'), answer(200, SSE_TYPE, split, 'HIT'), NAMES)).toBeUndefined();
    expect(disagreement(answer(200, SSE_TYPE, whole, 'HIT'), answer(200, SSE_TYPE, other, 'HIT'), NAMES)).toMatch(/2xx content/);
    expect(disagreement(answer(200, SSE_TYPE, whole, 'HIT'), answer(200, SSE_TYPE, cut, 'HIT'), NAMES)).toMatch(/2xx content/);
  });

  it('status, Content-Type and the error code and type must match; a 5xx or no answer in time is the oracle’s to report', () => {
    const error = (code: string, type = 'invalid_request_error') => ({ error: { message: 'm', type, code } });
    expect(disagreement(answer(200, JSON_TYPE, chat('x', 'hi'), 'HIT'), answer(415, JSON_TYPE, error('unsupported_media_type')), NAMES)).toMatch(
      /^status: a 200 \(X-Cache HIT\)/,
    );
    expect(disagreement(answer(200, JSON_TYPE, chat('x', 'hi'), 'HIT'), answer(200, 'application/json; charset=utf-8', chat('x', 'hi'), 'HIT'), NAMES)).toMatch(
      /^Content-Type/,
    );
    expect(disagreement(answer(400, JSON_TYPE, error('invalid_json')), answer(400, JSON_TYPE, error('invalid_request')), NAMES)).toMatch(
      /^error \(status 400\)/,
    );
    expect(disagreement(answer(400, JSON_TYPE, error('x', 'a')), answer(400, JSON_TYPE, error('x', 'b')), NAMES)).toMatch(/type "a".*type "b"/);
    expect(
      disagreement(
        answer(400, JSON_TYPE, { error: { message: 'one', type: 't', code: 'c' } }),
        answer(400, JSON_TYPE, { error: { message: 'two', type: 't', code: 'c' } }),
        NAMES,
      ),
    ).toBeUndefined();
    expect(disagreement(answer(200, JSON_TYPE, chat('x', 'hi'), 'HIT'), answer(502, JSON_TYPE, error('upstream_error')), NAMES)).toBeUndefined();
    expect(disagreement(answer(200, JSON_TYPE, chat('x', 'hi'), 'HIT'), { kind: 'timeout', partial: 0 }, NAMES)).toBeUndefined();
    expect(disagreement(answer(400, JSON_TYPE, error('x')), { kind: 'closed', partial: 0 }, NAMES)).toMatch(/a: answered 400; b: closed without an answer/);
  });

  it('the Fastify twin of a request differs from it in nothing but a first query parameter', () => {
    expect(withQuery('/v1/chat/completions')).toBe('/v1/chat/completions?x=1');
    expect(withQuery('/v1/chat/completions?a=b')).toBe('/v1/chat/completions?x=1&a=b');
    expect(withQuery('/v1/chat/completions#frag')).toBe('/v1/chat/completions?x=1#frag');
    expect(withQuery('http://127.0.0.1:1/v1/./embeddings')).toBe('http://127.0.0.1:1/v1/./embeddings?x=1');
    const head = requestHead(
      'POST',
      '/v1/\u00fcchat',
      [
        ['Host', 'h'],
        ['X-Target', '/v1/\u00fcchat'],
      ],
      'HTTP/1.0',
    );
    const twin = retarget({ head, method: 'POST', target: '/v1/\u00fcchat' }, '/v1/\u00fcchat?x=1');
    expect(twin.head.toString('latin1')).toBe('POST /v1/\u00fcchat?x=1 HTTP/1.0\r\nHost: h\r\nX-Target: /v1/\u00fcchat\r\n\r\n');
  });
});
