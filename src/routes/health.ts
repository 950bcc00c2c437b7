/** Liveness and readiness: /healthz while the process serves, /readyz when it can answer. */
import type { FastifyInstance } from 'fastify';
import type { CacheStore } from '../cache/store.js';
import type { KeyPools } from '../keys/pools.js';
import { PROVIDER_NAMES } from '../providers/provider-name.js';
import type { ProviderHealth } from '../upstream/circuit-breaker.js';

/**
 * `health`: the providers' circuit breakers, whose states /readyz shows (an open one does not make
 * the gateway unready: its requests go to their fallbacks, and a probe tries it again soon).
 */
export function registerHealthRoutes(app: FastifyInstance, store: CacheStore | undefined, pools: KeyPools, health?: ProviderHealth): void {
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) => {
    const missing: string[] = [];
    const cacheUp = store === undefined || (await store.ping());
    if (!cacheUp) missing.push('the cache backend (Redis) does not answer');
    const keys = Object.fromEntries(PROVIDER_NAMES.map((p) => [p, pools[p].size]));
    const keysMissing = providerKeysMissing(pools);
    if (keysMissing) missing.push(keysMissing);
    const cache = store === undefined ? 'off' : store.label;
    const providers = health?.describe();
    if (missing.length > 0) {
      // Every error body has OpenAI's shape (clients parse it); probes and operators also get the list.
      const error = { message: `Not ready: ${missing.join('; ')}.`, type: 'server_error', code: 'not_ready' };
      return reply.code(503).send({ error, status: 'unavailable', missing, cache, keys, providers });
    }
    return { status: 'ready', cache, keys, providers };
  });
}

/**
 * Ready needs a provider with a usable key: active, or cooling (a cooldown ends by itself). Keys
 * the provider rejected (401/403) stay disabled until the keys are reloaded, so a provider whose
 * every key was rejected cannot answer anything, however many keys are loaded.
 */
function providerKeysMissing(pools: KeyPools): string | undefined {
  if (PROVIDER_NAMES.every((p) => pools[p].size === 0)) return 'no provider key is loaded (set OPENAI_API_KEYS, GROQ_API_KEYS or KEYS_FILE)';
  const states = PROVIDER_NAMES.map((p) => ({ provider: p, ...pools[p].counts() }));
  if (states.some((s) => s.active + s.cooling > 0)) return undefined;
  const why = states.map((s) =>
    s.disabled === 0 ? `${s.provider}: no key loaded` : `${s.provider}: every key (${s.disabled}) rejected by the provider (401/403)`,
  );
  return `no provider has a usable key (${why.join('; ')}); reload valid keys`;
}
