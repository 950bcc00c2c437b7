import { KeyPool, type KeyCounts, type KeyPoolOptions } from './pool.js';
import { PROVIDER_NAMES, type ProviderName } from '../providers/provider-name.js';
import type { ProviderKeys } from './types.js';

export type KeyPools = Readonly<Record<ProviderName, KeyPool>>;

export function createKeyPools(keys: ProviderKeys, opts: KeyPoolOptions = {}): KeyPools {
  return { openai: new KeyPool('openai', keys.openai, opts), groq: new KeyPool('groq', keys.groq, opts) };
}

/** Apply a reloaded set to every provider in one synchronous step: no request sees a mix. */
export function replaceAllKeys(pools: KeyPools, keys: ProviderKeys): void {
  for (const provider of PROVIDER_NAMES) pools[provider].replace(keys[provider]);
}

export type KeyStateSample = { provider: ProviderName; state: keyof KeyCounts; count: number };

/** One sample per provider and state, for `gateway_upstream_keys` in a gauge's collect(). */
export function keyStateSamples(pools: KeyPools): KeyStateSample[] {
  return PROVIDER_NAMES.flatMap((provider) => {
    const counts = pools[provider].counts();
    return (['active', 'cooling', 'disabled'] as const).map((state) => ({ provider, state, count: counts[state] }));
  });
}
