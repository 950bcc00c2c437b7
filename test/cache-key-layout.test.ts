/**
 * The bytes a cache key hashes are a stored format: entries in a shared Redis outlive a deploy,
 * so a faster way of hashing must give the very same keys. Checked against the layout written out
 * by hand: length-prefixed version, scope, provider and endpoint lines, then the canonical body.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { CACHE_FORMAT_VERSION, CACHE_KEY_PREFIX, cacheKey, canonicalize, type CacheKeyParts } from '../src/cache/key.js';

function referenceKey(parts: CacheKeyParts): string {
  const hash = createHash('sha256');
  for (const field of [String(CACHE_FORMAT_VERSION), parts.scope ?? '', parts.provider, parts.endpoint]) hash.update(`${field.length}:${field}\n`);
  hash.update(canonicalize(parts.body));
  return CACHE_KEY_PREFIX + hash.digest('base64url');
}

describe('cache key layout', () => {
  const cases: CacheKeyParts[] = [
    { provider: 'openai', endpoint: 'chat.completions', body: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hi' }], stream: true } },
    { scope: 'key:abc', provider: 'groq', endpoint: 'completions', body: { model: 'llama-3.1-8b-instant', prompt: 'Ünïcödé ✓ "quoted"\n' } },
    { scope: 'user:xyz', provider: 'openai', endpoint: 'embeddings', body: { input: ['a', 'b'], model: 'text-embedding-3-small', dimensions: 256 } },
  ];
  it.each(cases)('is the SHA-256 of the documented layout ($endpoint, scope "$scope")', (parts) => {
    expect(cacheKey(parts)).toBe(referenceKey(parts));
  });

  it('keeps the key of a known request (format v1), as computed before the hashing was made one-shot', () => {
    expect(cacheKey(cases[0]!)).toBe('gw:v1:Q6gdQSoK_6mYErDBetw8MbjtpuYEc-wdPNyjMiDb3WY');
  });
});
