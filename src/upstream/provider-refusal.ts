/**
 * What a client is told when the provider refused the gateway's own key and no other key can
 * be tried: always the gateway's own error, never the provider's answer. A 401/403 body names
 * the gateway's key (OpenAI's "Incorrect API key provided: sk-…" quotes it), and passing the
 * status on would tell the client that ITS key is wrong. A 429 body names the gateway's
 * organisation and limits, the operator's business; the client only needs when to come back.
 * One mapping for every call to a provider, made by the upstream policy (upstream-policy.ts).
 */
import { errors, type GatewayError } from '../errors.js';
import type { KeyPool } from '../keys/pool.js';

/**
 * The error for a key refusal (`status` 401, 403 or 429) that ends the request, once `keys` has
 * been told about it (rejected or rate limited). `cooldownMs`: how long the provider asked to
 * wait after a 429, when it said.
 */
export function refusalError(provider: string, status: number, keys: KeyPool, cooldownMs?: number): GatewayError {
  const usableIn = keys.usableInMs();
  if (usableIn === undefined) return errors.allKeysRejected(provider);
  // A 429: retry once a key is free; one free already (its cooldown ended while the others
  // were tried) gets the provider's own hint.
  if (status === 429) return errors.allKeysCooling(provider, Math.max(1, usableIn > 0 ? usableIn : (cooldownMs ?? 1_000)));
  // A 401/403 with a key still usable (now or after its cooldown): a retry is worthwhile.
  return errors.providerKeyRejected(provider);
}
