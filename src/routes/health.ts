/** Liveness and readiness: /healthz while the process serves, /readyz when it can answer. */
import type { FastifyInstance } from 'fastify';
import type { CacheStore } from '../cache/store.js';
import type { KeyPools } from '../keys/pools.js';
import { PROVIDER_NAMES } from '../providers/index.js';

export function registerHealthRoutes(app: FastifyInstance, store: CacheStore | undefined, pools: KeyPools): void {
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) => {
    const missing: string[] = [];
    const cacheUp = store === undefined || store.kind === 'memory' || (await store.ping());
    if (!cacheUp) missing.push('the cache backend (Redis) does not answer');
    const keys = Object.fromEntries(PROVIDER_NAMES.map((p) => [p, pools[p].size]));
    if (PROVIDER_NAMES.every((p) => pools[p].size === 0)) missing.push('no provider key is loaded (set OPENAI_API_KEYS, GROQ_API_KEYS or KEYS_FILE)');
    const cache = store === undefined ? 'off' : store.kind;
    if (missing.length > 0) {
      // Every error body has OpenAI's shape (the contract); probes and operators also get the list.
      const error = { message: `Not ready: ${missing.join('; ')}.`, type: 'server_error', code: 'not_ready' };
      return reply.code(503).send({ error, status: 'unavailable', missing, cache, keys });
    }
    return { status: 'ready', cache, keys };
  });
}
