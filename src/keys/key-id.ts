import { createHmac, randomBytes } from 'node:crypto';

// A fresh secret per process: the same key gets a different id in every process, so an id
// seen in logs cannot be matched against a list of candidate keys (the HMAC cannot be
// recomputed without the secret), and nothing of the key itself (no prefix) is shown.
const secret = randomBytes(32);

const ID_HEX_CHARS = 10;

/**
 * A short, stable-within-this-process, non-reversible name for a provider key, for logs.
 * Shape: `k_` + 10 hex characters (12 characters in all).
 */
export function keyId(key: string): string {
  const digest = createHmac('sha256', secret).update(key).digest('hex');
  return `k_${digest.slice(0, ID_HEX_CHARS)}`;
}
