/**
 * End to end: every request control header (Cache-Control no-cache / no-store / max-age,
 * X-Cache-TTL) and response header (X-Cache, Age), and CACHE_ENABLED=false, through the real
 * gateway against the embedded store and a real Redis.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { BACKENDS, chat, chatBody, parseStream, streamText, unique, until, useGateway, type GatewayResponse } from './helpers/cache-e2e.js';

const idOf = (response: GatewayResponse): string => (JSON.parse(response.text) as { id: string }).id;

describe.each(BACKENDS)('cache control headers end to end (%s backend)', (backend) => {
  const setup = useGateway(backend);

  it('X-Cache is MISS then HIT; Age only on a HIT, a whole number of seconds that grows', async () => {
    const body = chatBody(unique());
    const miss = await chat(setup.gateway, body);
    expect(miss.xCache).toBe('MISS');
    expect(miss.headers.get('age')).toBeNull();
    const hit = await chat(setup.gateway, body);
    expect(hit.xCache).toBe('HIT');
    const firstAge = hit.headers.get('age');
    expect(firstAge).toMatch(/^\d+$/);
    await sleep(1_100);
    const later = await chat(setup.gateway, { ...body, stream: true });
    expect(later.xCache).toBe('HIT');
    const laterAge = later.headers.get('age');
    expect(laterAge).toMatch(/^\d+$/);
    expect(Number(laterAge)).toBeGreaterThanOrEqual(1);
    expect(Number(laterAge)).toBeGreaterThan(Number(firstAge));
    expect(setup.fake.completionCalls()).toHaveLength(1);
    // Hits carry the same identifying headers as forwarded answers.
    for (const response of [miss, hit, later]) {
      expect(response.headers.get('x-gateway-provider')).toBe('openai');
      expect(response.headers.get('x-request-id')).toBeTruthy();
    }
    const own = await chat(setup.gateway, body, { 'x-request-id': 'my-trace-42' });
    expect(own.xCache).toBe('HIT');
    expect(own.headers.get('x-request-id')).toBe('my-trace-42');
  });

  it('Cache-Control: no-cache skips the lookup, calls upstream, and stores the fresh answer for later hits', async () => {
    const body = chatBody(unique());
    const original = await chat(setup.gateway, body);
    expect(original.xCache).toBe('MISS');
    const fresh = await chat(setup.gateway, body, { 'cache-control': 'no-cache' });
    expect(fresh.status).toBe(200);
    expect(fresh.xCache).toBe('BYPASS');
    expect(fresh.headers.get('age')).toBeNull();
    expect(setup.fake.completionCalls()).toHaveLength(2);
    expect(idOf(fresh)).not.toBe(idOf(original));
    const next = await chat(setup.gateway, body);
    expect(next.xCache).toBe('HIT');
    expect(idOf(next)).toBe(idOf(fresh)); // the NEW answer replaced the old one
    expect(setup.fake.completionCalls()).toHaveLength(2);
  });

  it.each([
    ['right after a large fill', 0],
    ['once a large fill is stored', 500],
  ])('Cache-Control: no-cache %s: the next request gets the refreshed answer at once', async (_when, pauseMs) => {
    // Large answers are compressed off the event loop before they are stored, so each request here
    // arrives while the previous answer is still being written.
    const largeCompletion = (id: string) => ({
      status: 200,
      body: {
        id,
        object: 'chat.completion',
        created: 1_700_000_777,
        model: 'gpt-4o-mini',
        choices: [
          {
            index: 0,
            message: { role: 'assistant', content: Array.from({ length: 40_000 }, (_, i) => `${id}${(i * 7919) % 100_003}`).join(' ') },
            finish_reason: 'stop',
          },
        ],
        usage: { prompt_tokens: 3, completion_tokens: 40_000, total_tokens: 40_003 },
      },
    });
    setup.fake.queue.push(largeCompletion('chatcmpl-old'), largeCompletion('chatcmpl-new'));
    const body = chatBody(unique());
    expect(idOf(await chat(setup.gateway, body))).toBe('chatcmpl-old');
    await sleep(pauseMs);
    const fresh = await chat(setup.gateway, body, { 'cache-control': 'no-cache' });
    expect(fresh.xCache).toBe('BYPASS');
    expect(idOf(fresh)).toBe('chatcmpl-new');
    const next = await chat(setup.gateway, body);
    expect(next.xCache).toBe('HIT');
    expect(idOf(next)).toBe('chatcmpl-new');
    // And once everything is written, the store holds the new answer too.
    await sleep(300);
    const later = await chat(setup.gateway, body);
    expect(idOf(later)).toBe('chatcmpl-new');
    expect(setup.fake.completionCalls()).toHaveLength(2);
  });

  it('Cache-Control: no-cache on a stream also refreshes the entry', async () => {
    const body = chatBody(unique());
    const original = await chat(setup.gateway, body);
    const fresh = await chat(setup.gateway, { ...body, stream: true }, { 'Cache-Control': 'no-cache' });
    expect(fresh.xCache).toBe('BYPASS');
    const freshId = parseStream(fresh.text).chunks[0]?.id;
    expect(freshId).not.toBe(idOf(original));
    const next = await chat(setup.gateway, body);
    expect(next.xCache).toBe('HIT');
    expect(idOf(next)).toBe(freshId);
    expect(setup.fake.completionCalls()).toHaveLength(2);
  });

  it('Cache-Control: no-store neither reads nor writes', async () => {
    const body = chatBody(unique());
    const notStored = await chat(setup.gateway, body, { 'cache-control': 'no-store' });
    expect(notStored.xCache).toBe('BYPASS');
    const first = await chat(setup.gateway, body);
    expect(first.xCache).toBe('MISS'); // nothing was written
    const notRead = await chat(setup.gateway, { ...body, stream: true }, { 'cache-control': 'no-store' });
    expect(notRead.xCache).toBe('BYPASS');
    expect(streamText(parseStream(notRead.text))).not.toBe('');
    expect(setup.fake.completionCalls()).toHaveLength(3);
    const hit = await chat(setup.gateway, body);
    expect(hit.xCache).toBe('HIT');
    expect(idOf(hit)).toBe(idOf(first)); // the no-store answer did not replace the entry
    expect(setup.fake.completionCalls()).toHaveLength(3);
  });

  it('Cache-Control: max-age=N accepts only an entry younger than N seconds', async () => {
    const body = chatBody(unique());
    const original = await chat(setup.gateway, body);
    const young = await chat(setup.gateway, body, { 'cache-control': 'max-age=60' });
    expect(young.xCache).toBe('HIT');
    expect(setup.fake.completionCalls()).toHaveLength(1);

    const zero = await chat(setup.gateway, body, { 'cache-control': 'max-age=0' });
    expect(zero.xCache).toBe('MISS');
    expect(setup.fake.completionCalls()).toHaveLength(2);
    expect(idOf(zero)).not.toBe(idOf(original));

    await sleep(1_100);
    const tooOld = await chat(setup.gateway, body, { 'cache-control': 'max-age=1' });
    expect(tooOld.xCache).toBe('MISS');
    expect(setup.fake.completionCalls()).toHaveLength(3);
    // The fresh answer was stored: a request without max-age now gets it.
    const latest = await chat(setup.gateway, body);
    expect(latest.xCache).toBe('HIT');
    expect(idOf(latest)).toBe(idOf(tooOld));
    expect(setup.fake.completionCalls()).toHaveLength(3);
  });

  it('X-Cache-TTL: N makes the entry expire after N seconds', async () => {
    const body = chatBody(unique());
    expect((await chat(setup.gateway, body, { 'x-cache-ttl': '1' })).xCache).toBe('MISS');
    expect((await chat(setup.gateway, body)).xCache).toBe('HIT');
    // The default TTL is a day: only the header can make the entry go within seconds.
    let last: GatewayResponse | undefined;
    const expired = await until(
      async () => {
        last = await chat(setup.gateway, body);
        return last.xCache === 'MISS';
      },
      5_000,
      200,
    );
    expect(expired).toBe(true);
    expect(setup.fake.completionCalls()).toHaveLength(2);
    // A neighbour stored without the header is still there.
    const other = chatBody(unique());
    await chat(setup.gateway, other);
    await sleep(1_100);
    expect((await chat(setup.gateway, other)).xCache).toBe('HIT');
  });

  it('ignores unusable cache header values instead of failing the request', async () => {
    const body = chatBody(unique());
    const odd = await chat(setup.gateway, body, { 'cache-control': 'max-age=soon', 'x-cache-ttl': '-5' });
    expect(odd.status).toBe(200);
    expect(odd.xCache).toBe('MISS');
    expect((await chat(setup.gateway, body)).xCache).toBe('HIT');
  });
});

describe.each(BACKENDS)('CACHE_ENABLED=false (%s backend configured)', (backend) => {
  const setup = useGateway(backend, { env: { CACHE_ENABLED: 'false' } });

  it('answers every request from upstream with X-Cache: BYPASS', async () => {
    const body = chatBody(unique());
    const answers = [
      await chat(setup.gateway, body),
      await chat(setup.gateway, body),
      await chat(setup.gateway, { ...body, stream: true }),
      await chat(setup.gateway, body, { 'cache-control': 'max-age=60' }),
    ];
    for (const answer of answers) {
      expect(answer.status).toBe(200);
      expect(answer.xCache).toBe('BYPASS');
      expect(answer.headers.get('age')).toBeNull();
    }
    expect(setup.fake.completionCalls()).toHaveLength(4);
  });
});
