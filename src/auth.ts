/**
 * Client authentication with GATEWAY_API_KEYS, and the cache scope a request belongs to.
 * Keys are compared as SHA-256 digests with timingSafeEqual: constant time, whatever the
 * length of what the client sent.
 */
import * as crypto from 'node:crypto';
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { CacheScope } from './config.js';

/** On every request: the one-shot crypto.hash (Node >= 20.12) where it exists, as for cache keys. */
const digest: (value: string) => Buffer =
  typeof crypto.hash === 'function' ? (value) => crypto.hash('sha256', value, 'buffer') : (value) => createHash('sha256').update(value).digest();

export class ClientAuth {
  private readonly digests: readonly Buffer[];

  constructor(keys: readonly string[]) {
    this.digests = keys.map(digest);
  }

  get enabled(): boolean {
    return this.digests.length > 0;
  }

  /** The presented key when it is valid (or auth is off: undefined key, true). */
  check(authorization: string | undefined): { ok: boolean; key: string | undefined } {
    const presented = bearer(authorization);
    if (!this.enabled) return { ok: true, key: presented };
    if (presented === undefined) return { ok: false, key: undefined };
    const candidate = digest(presented);
    let ok = false;
    // No early exit: every configured key is compared.
    for (const known of this.digests) ok = timingSafeEqual(candidate, known) || ok;
    return { ok, key: ok ? presented : undefined };
  }
}

export function bearer(authorization: string | undefined): string | undefined {
  if (authorization === undefined) return undefined;
  const match = /^Bearer\s+(.+)$/i.exec(authorization.trim());
  return match?.[1]?.trim() || undefined;
}

/**
 * The cache scope of a request: '' for shared; a hash of the client key, or of the client key
 * and the user, otherwise. A plain hash, not a per-process HMAC, because Redis entries outlive
 * the process; it is only ever fed into the cache key's own hash, never stored or logged.
 *
 * per-user entries belong to a (client key, user) pair: X-OpenWebUI-User-Id is whatever the
 * holder of a gateway key sends, so scoped by the user alone, a client with another key could
 * name a user of the first and read that user's answers.
 */
export function cacheScopeOf(scope: CacheScope, headers: IncomingHttpHeaders, clientKey: string | undefined): string {
  if (scope === 'shared') return '';
  if (scope === 'per-user') {
    const user = headers['x-openwebui-user-id'];
    const id = Array.isArray(user) ? user[0] : user;
    // NUL cannot appear in a header value: no key and user can run into another pair.
    if (id)
      return `user:${createHash('sha256')
        .update(clientKey ?? '')
        .update('\u0000')
        .update(id)
        .digest('base64url')}`;
  }
  return `key:${createHash('sha256')
    .update(clientKey ?? '')
    .digest('base64url')}`;
}
