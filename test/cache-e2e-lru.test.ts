/**
 * End to end: the embedded store (no REDIS_URL, as `npm start` runs by default) caches in
 * memory, and with a small CACHE_MAX_BYTES keeps serving: recent and recently used entries hit,
 * older ones are evicted, an answer larger than the whole cache is simply not kept.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { chat, chatBody, parseStream, streamText, until, useGateway } from './helpers/cache-e2e.js';
import { answerFor } from './helpers/fake-upstream.js';

/** A prompt of hard-to-compress text, so each entry takes a predictable ~1–2 KB. */
function bulkyPrompt(label: string, bytes = 1_000): string {
  return `${label} ${randomBytes(bytes).toString('base64')}`;
}

describe('without REDIS_URL the gateway caches in memory', () => {
  const setup = useGateway('memory');

  it('reports the embedded cache as ready and answers a repeat from it', async () => {
    expect(setup.gateway.config.redisUrl).toBeUndefined();
    const ready = (await (await fetch(`${setup.gateway.url}/readyz`)).json()) as { status: string; cache: string };
    expect(ready).toMatchObject({ status: 'ready', cache: 'memory' });
    const body = chatBody(bulkyPrompt('npm-start'));
    expect((await chat(setup.gateway, body)).xCache).toBe('MISS');
    expect((await chat(setup.gateway, body)).xCache).toBe('HIT');
    expect(setup.fake.completionCalls()).toHaveLength(1);
  });
});

describe('embedded store with a small CACHE_MAX_BYTES', () => {
  // Room for roughly a dozen of the entries below.
  const setup = useGateway('memory', { env: { CACHE_MAX_BYTES: String(16 * 1024) } });

  it('keeps serving while evicting the least recently used entries', async () => {
    const bodies = Array.from({ length: 40 }, (_, i) => chatBody(bulkyPrompt(`entry-${i}`)));
    const favourite = bodies[0] as Record<string, unknown>;
    for (const [i, body] of bodies.entries()) {
      const answer = await chat(setup.gateway, body);
      expect(answer.status).toBe(200);
      expect(answer.xCache).toBe('MISS');
      // Read the first entry after every fill: used recently, it must survive the evictions.
      if (i > 0) expect((await chat(setup.gateway, favourite)).xCache).toBe('HIT');
    }
    expect(setup.fake.completionCalls()).toHaveLength(40);

    // The newest entries are still there; answers are intact.
    for (const body of bodies.slice(-3)) {
      const hit = await chat(setup.gateway, { ...body, stream: true });
      expect(hit.xCache).toBe('HIT');
      expect(streamText(parseStream(hit.text))).toBe(answerFor(body));
    }
    expect(setup.fake.completionCalls()).toHaveLength(40);
    // Old entries nobody read were evicted: asking again goes upstream, and still succeeds.
    for (const body of bodies.slice(1, 4)) {
      const again = await chat(setup.gateway, body);
      expect(again.status).toBe(200);
      expect(again.xCache).toBe('MISS');
    }
    expect(setup.fake.completionCalls()).toHaveLength(43);
  });

  it('serves an answer bigger than the whole cache without keeping it or evicting the rest', async () => {
    const small = chatBody(bulkyPrompt('small'));
    await chat(setup.gateway, small);
    const huge = chatBody(bulkyPrompt('huge', 30_000)); // its entry alone exceeds CACHE_MAX_BYTES
    const first = await chat(setup.gateway, huge);
    expect(first.status).toBe(200);
    expect((JSON.parse(first.text) as { choices: Array<{ message: { content: string } }> }).choices[0]?.message.content).toBe(answerFor(huge));
    // Right after the answer, a repeat may still be served from the finished call while its
    // (refused) store write completes; after that it must go upstream again.
    const refetched = await until(async () => {
      const again = await chat(setup.gateway, huge);
      expect(again.status).toBe(200);
      return again.xCache === 'MISS';
    }, 3_000);
    expect(refetched).toBe(true);
    expect((await chat(setup.gateway, small)).xCache).toBe('HIT');
  });
});
