/**
 * A refused body is told what is actually wrong with it. Valid JSON holding a `__proto__` or
 * `constructor.prototype` key gets a 400 saying such keys are not allowed (it used to be "not
 * valid JSON"); a compressed body (Content-Encoding: gzip) gets 415, not invalid_json. The same
 * answer whichever way the request is framed: with Content-Length it is read by the hit fast path
 * first, chunked it goes to Fastify alone; and on the passthrough, which reads the model too.
 */
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { chatBody, unique, useGateway } from './helpers/cache-e2e.js';
import { rawRequest } from './helpers/raw-http.js';

const setup = useGateway('memory');

interface Answer {
  status: number;
  contentType: unknown;
  body: unknown;
}

async function send(path: string, body: Buffer, headers: Record<string, string>): Promise<Answer> {
  const response = await rawRequest(`${setup.gateway.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
  return { status: response.status, contentType: response.headers['content-type'], body: JSON.parse(response.body.toString('utf8')) as unknown };
}

/** The answers to one body sent with Content-Length (hit fast path first) and chunked (Fastify only). */
async function bothFramings(body: Buffer, headers: Record<string, string> = {}, path = '/v1/chat/completions'): Promise<Answer[]> {
  return [
    await send(path, body, { ...headers, 'content-length': String(body.length) }),
    await send(path, body, { ...headers, 'transfer-encoding': 'chunked' }),
  ];
}

const forbiddenKey: Answer = {
  status: 400,
  contentType: expect.stringMatching(/^application\/json/),
  body: {
    error: {
      message: 'The request body has a "__proto__" or "constructor.prototype" key, which is not allowed.',
      type: 'invalid_request_error',
      code: 'forbidden_json_key',
    },
  },
};

const encoded = (encoding: string): Answer => ({
  status: 415,
  contentType: expect.stringMatching(/^application\/json/),
  body: {
    error: {
      message: `Unsupported Content-Encoding "${encoding}": send the body uncompressed.`,
      type: 'invalid_request_error',
      code: 'unsupported_media_type',
    },
  },
});

describe('keys that JSON allows but the gateway refuses', () => {
  it.each([
    ['__proto__ at the top', (prompt: string) => `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"${prompt}"}],"__proto__":{"polluted":true}}`],
    ['__proto__ in a message', (prompt: string) => `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"${prompt}","__proto__":{"polluted":true}}]}`],
    [
      'constructor.prototype',
      (prompt: string) => `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"${prompt}"}],"constructor":{"prototype":{"polluted":true}}}`,
    ],
  ])('%s: 400 forbidden_json_key on both paths, nothing sent upstream', async (_name, body) => {
    const answers = await bothFramings(Buffer.from(body(unique())));
    expect(answers).toEqual([forbiddenKey, forbiddenKey]);
    expect(setup.fake.completionCalls()).toHaveLength(0);
  });

  it('a "constructor" key that is not an object with a prototype is an ordinary field', async () => {
    const body = Buffer.from(JSON.stringify(chatBody(unique(), { metadata: { constructor: 'ok' } })));
    const [fast, fastify] = await bothFramings(body);
    expect([fast?.status, fastify?.status]).toEqual([200, 200]);
  });
});

describe('compressed bodies', () => {
  it('gzip: 415 naming the Content-Encoding, on both paths and the passthrough', async () => {
    const body = gzipSync(Buffer.from(JSON.stringify(chatBody(unique()))));
    expect(await bothFramings(body, { 'content-encoding': 'gzip' })).toEqual([encoded('gzip'), encoded('gzip')]);
    const moderation = gzipSync(Buffer.from(JSON.stringify({ model: 'gpt-4o-mini', input: unique() })));
    expect(await bothFramings(moderation, { 'content-encoding': 'gzip' }, '/v1/moderations')).toEqual([encoded('gzip'), encoded('gzip')]);
    expect(setup.fake.requests).toHaveLength(0);
  });

  it('broken JSON without an encoding is still invalid_json; an empty body is still "empty"', async () => {
    const [fast, fastify] = await bothFramings(Buffer.from('{"model":'));
    expect(fast).toEqual(fastify);
    expect(fast?.status).toBe(400);
    expect(fast?.body).toMatchObject({ error: { code: 'invalid_json' } });
    const empty = await send('/v1/chat/completions', Buffer.alloc(0), { 'content-length': '0' });
    expect(empty.status).toBe(400);
    expect(empty.body).toMatchObject({ error: { message: expect.stringMatching(/empty/) } });
  });
});
