/**
 * /readyz: 200 when the cache backend answers (or is embedded) and a provider key is loaded;
 * 503 saying which is missing otherwise (a real Redis is killed and restarted for the cache
 * case). /healthz stays 200 while the process serves.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeUpstream, type FakeUpstream } from './helpers/fake-upstream.js';
import { startGateway, TEST_GROQ_KEYS, type RunningGateway } from './helpers/gateway.js';
import { startRedis, type RedisServer } from './helpers/redis-server.js';

interface Readiness {
  status: number;
  body: { status?: string; missing?: string[]; cache?: string; error?: { message: string; type: string; code: string } };
  contentType: string | null;
}

let fake: FakeUpstream;

beforeAll(async () => {
  fake = await startFakeUpstream();
});
afterAll(async () => {
  await fake.close();
});

async function readiness(gw: RunningGateway): Promise<Readiness> {
  const response = await fetch(`${gw.url}/readyz`);
  return { status: response.status, body: (await response.json()) as Readiness['body'], contentType: response.headers.get('content-type') };
}

async function withGateway(env: Record<string, string | undefined>, run: (gw: RunningGateway) => Promise<void>): Promise<void> {
  const gw = await startGateway(fake, env);
  try {
    await run(gw);
  } finally {
    await gw.close();
  }
}

/** Polls until the readiness status is `want` (cache state changes are noticed asynchronously). */
async function readinessBecomes(gw: RunningGateway, want: number, timeoutMs = 8_000): Promise<Readiness> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const state = await readiness(gw);
    if (state.status === want || Date.now() > deadline) return state;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('embedded cache', () => {
  it('keys and the embedded cache: 200 ready', async () => {
    await withGateway({}, async (gw) => {
      const state = await readiness(gw);
      expect(state.status).toBe(200);
      expect(state.body.status).toBe('ready');
      expect(state.body.cache).toBe('memory');
    });
  });

  it('keys of one provider are enough', async () => {
    await withGateway({ OPENAI_API_KEYS: undefined, GROQ_API_KEYS: TEST_GROQ_KEYS.join(',') }, async (gw) => {
      expect((await readiness(gw)).status).toBe(200);
    });
  });

  it('with caching turned off it is ready too', async () => {
    await withGateway({ CACHE_ENABLED: 'false' }, async (gw) => {
      expect((await readiness(gw)).status).toBe(200);
    });
  });

  it('no provider key: 503 saying the keys are missing, in OpenAI error shape too; /healthz still 200', async () => {
    await withGateway({ OPENAI_API_KEYS: undefined, GROQ_API_KEYS: undefined }, async (gw) => {
      const state = await readiness(gw);
      expect(state.status).toBe(503);
      expect(state.contentType).toMatch(/^application\/json/);
      expect(state.body.missing?.join(' ')).toMatch(/key/i);
      expect(state.body.missing?.join(' ')).not.toMatch(/redis|cache/i);
      expect(state.body.error?.type).toBe('server_error');
      expect(state.body.error?.message).toMatch(/key/i);
      expect((await fetch(`${gw.url}/healthz`)).status).toBe(200);
    });
  });
});

describe('Redis cache', () => {
  let redis: RedisServer;

  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis.stop();
  });

  it('200 while Redis answers, 503 naming Redis when it dies, 200 again when it is back', async () => {
    await withGateway({ REDIS_URL: redis.url, REDIS_COMMAND_TIMEOUT_MS: '200' }, async (gw) => {
      const up = await readinessBecomes(gw, 200);
      expect(up.status).toBe(200);
      expect(up.body.cache).toBe('redis');

      redis.kill();
      const down = await readinessBecomes(gw, 503);
      expect(down.status).toBe(503);
      expect(down.body.missing?.join(' ')).toMatch(/redis|cache/i);
      expect(down.body.missing?.join(' ')).not.toMatch(/provider key/i);
      expect(down.body.error?.message).toMatch(/redis|cache/i);
      // Not ready for the orchestrator, but requests are still served from upstream.
      const chat = await fetch(`${gw.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'redis is down' }] }),
      });
      expect(chat.status).toBe(200);
      expect((await fetch(`${gw.url}/healthz`)).status).toBe(200);

      await redis.restart();
      expect((await readinessBecomes(gw, 200)).status).toBe(200);
    });
  });
});
