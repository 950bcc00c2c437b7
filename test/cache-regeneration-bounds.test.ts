/**
 * The regeneration tracker and the Open WebUI id headers cannot be used to grow the gateway.
 * The tracker remembers (chat id, request) pairs by a fixed-size digest: 10,000 distinct 15 KB
 * chat ids cost what 10,000 short ones do (it used to keep every id: 150 MB held for good). And
 * an X-OpenWebUI-Chat-Id or X-OpenWebUI-User-Id longer than 256 bytes is refused with a 400 in
 * OpenAI's shape, the same on the hit fast path as through Fastify, even for a request the
 * cache could answer.
 */
import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import { describe, expect, it } from 'vitest';
import { PAIR_ENTRY_BYTES, RegenerationTracker } from '../src/cache/regeneration.js';
import { MAX_OPENWEBUI_ID_BYTES } from '../src/pipeline/openwebui-headers.js';
import { chat, chatBody, unique, untilStored, useGateway } from './helpers/cache-e2e.js';
import { rawRequest } from './helpers/raw-http.js';

/** A flat (not concatenated) string of `bytes` latin1 characters, distinct per `n`. */
function distinctId(n: number, bytes: number): string {
  const buffer = Buffer.alloc(bytes, 0x61);
  buffer.write(`chat-${n}-`);
  return buffer.toString('latin1');
}

/** V8's own collector, exposed for this measurement only. */
function collectGarbage(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

describe('RegenerationTracker memory', () => {
  it('10,000 distinct 15 KB chat ids cost what 10,000 short ones do', () => {
    const long = new RegenerationTracker();
    const short = new RegenerationTracker();
    for (let n = 0; n < 10_000; n++) {
      long.remember(distinctId(n, 15_000), 'cache-key');
      short.remember(`c${n}`, 'cache-key');
    }
    expect(long.size).toBe(10_000);
    expect(long.bytes).toBe(short.bytes);
    expect(long.bytes).toBeLessThanOrEqual(10_000 * PAIR_ENTRY_BYTES);
    // Still a working tracker.
    expect(long.seen(distinctId(42, 15_000), 'cache-key')).toBe(true);
    expect(long.seen(distinctId(42, 15_000), 'other-key')).toBe(false);
  });

  it('the heap it holds after 10,000 distinct 15 KB chat ids stays a few MB (150 MB of ids went through it)', () => {
    collectGarbage();
    const before = process.memoryUsage().heapUsed;
    const tracker = new RegenerationTracker();
    for (let n = 0; n < 10_000; n++) tracker.remember(distinctId(n, 15_000), `key-${n % 7}`);
    collectGarbage();
    const grown = process.memoryUsage().heapUsed - before;
    console.log(`regeneration tracker: ${tracker.size} pairs, accounted ${(tracker.bytes / 1e6).toFixed(2)} MB, heap grown ${(grown / 1e6).toFixed(2)} MB`);
    expect(tracker.size).toBe(10_000);
    expect(grown).toBeLessThan(10_000_000);
  });

  it('stays bounded in count (and so in bytes) and forgets after its TTL', async () => {
    const tracker = new RegenerationTracker({ maxEntries: 3, ttlMs: 50 });
    for (const id of ['a', 'b', 'c', 'd']) tracker.remember(distinctId(id.charCodeAt(0), 4_000), 'k');
    expect(tracker.size).toBe(3);
    expect(tracker.bytes).toBe(3 * PAIR_ENTRY_BYTES);
    await new Promise((resolve) => setTimeout(resolve, 120));
    expect(tracker.seen(distinctId('d'.charCodeAt(0), 4_000), 'k')).toBe(false);
  });
});

describe('over-long Open WebUI id headers', () => {
  const setup = useGateway('memory');
  const tooLong = 'x'.repeat(MAX_OPENWEBUI_ID_BYTES + 1);
  const longest = 'y'.repeat(MAX_OPENWEBUI_ID_BYTES);

  /** The same request framed for the hit fast path (Content-Length) and for Fastify only (chunked). */
  async function bothPaths(
    body: unknown,
    headers: Record<string, string>,
  ): Promise<Array<{ status: number; contentType: unknown; body: unknown; xCache: unknown }>> {
    const text = JSON.stringify(body);
    const answers = [];
    const framings: Array<Record<string, string>> = [{ 'content-length': String(Buffer.byteLength(text)) }, { 'transfer-encoding': 'chunked' }];
    for (const framing of framings) {
      const response = await rawRequest(`${setup.gateway.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...framing, ...headers },
        body: text,
      });
      answers.push({
        status: response.status,
        contentType: response.headers['content-type'],
        body: JSON.parse(response.body.toString('utf8')) as unknown,
        xCache: response.headers['x-cache'],
      });
    }
    return answers;
  }

  it.each([
    ['x-openwebui-chat-id', 'X-OpenWebUI-Chat-Id'],
    ['x-openwebui-user-id', 'X-OpenWebUI-User-Id'],
  ])('%s over 256 bytes: 400 header_too_long on both paths, even when the cache holds the answer', async (header, name) => {
    const body = chatBody(unique());
    // Cached first: without its own check the fast path would answer this HIT.
    expect((await chat(setup.gateway, body)).xCache).toBe('MISS');
    expect((await untilStored(() => chat(setup.gateway, body))).xCache).toBe('HIT');
    const calls = setup.fake.completionCalls().length;
    const [fast, fastify] = await bothPaths(body, { [header]: tooLong });
    const refusal = {
      status: 400,
      contentType: expect.stringMatching(/^application\/json/),
      body: {
        error: { message: `The ${name} header is longer than ${MAX_OPENWEBUI_ID_BYTES} bytes.`, type: 'invalid_request_error', code: 'header_too_long' },
      },
      xCache: undefined,
    };
    expect(fast).toEqual(refusal);
    expect(fastify).toEqual(refusal);
    expect(setup.fake.completionCalls()).toHaveLength(calls);
  });

  it.each([
    ['GET', '/v1/models'],
    ['POST', '/v1/moderations'],
  ])('on the other routes too (%s %s): 400 header_too_long, nothing forwarded, the id never counted as a user', async (method, path) => {
    const calls = setup.fake.requests.length;
    for (const header of ['x-openwebui-chat-id', 'x-openwebui-user-id']) {
      const response = await fetch(setup.gateway.url + path, {
        method,
        headers: { 'content-type': 'application/json', [header]: tooLong },
        ...(method === 'POST' ? { body: JSON.stringify({ model: 'omni-moderation-latest', input: 'x' }) } : {}),
      });
      expect(response.status).toBe(400);
      expect(((await response.json()) as { error: { code: string } }).error.code).toBe('header_too_long');
    }
    expect(setup.fake.requests.length).toBe(calls);
    const usage = (await (await fetch(`${setup.gateway.url}/admin/usage`)).json()) as { users: Array<{ user: string }> };
    expect(usage.users.map((entry) => entry.user)).not.toContain(tooLong);
  });

  it('a cached route refuses it before its user is counted', async () => {
    const response = await chat(setup.gateway, chatBody(unique()), { 'x-openwebui-user-id': tooLong });
    expect(response.status).toBe(400);
    const usage = (await (await fetch(`${setup.gateway.url}/admin/usage`)).json()) as { users: Array<{ user: string }> };
    expect(usage.users.map((entry) => entry.user)).not.toContain(tooLong);
  });

  it('ids of exactly 256 bytes work, regenerations included', async () => {
    const body = chatBody(unique());
    const headers = { 'x-openwebui-chat-id': longest, 'x-openwebui-user-id': longest };
    expect((await chat(setup.gateway, body, headers)).xCache).toBe('MISS');
    // The same request again from the same chat: a regeneration, not a hit.
    expect((await chat(setup.gateway, body, headers)).xCache).toBe('BYPASS');
    expect((await untilStored(() => chat(setup.gateway, body))).status).toBe(200);
  });
});
