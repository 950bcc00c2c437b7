/**
 * LiteLLM's request body field `cache`, which clients written for LiteLLM send:
 * `{"no-cache": true}`, `{"no-store": true}`, `{"ttl": N}`, `{"s-maxage": N}` (several may be
 * combined). Each acts as the matching request header (policy.ts): no-cache and no-store as
 * `Cache-Control`, ttl as `X-Cache-TTL`, s-maxage as `Cache-Control: max-age`. The field is
 * taken out of the body before the cache key is made and before the request goes upstream,
 * where OpenAI refuses fields it does not know.
 *
 * Unlike a header hint, the field is part of the request the client wrote: a value the gateway
 * cannot honour is refused with a 400 naming it, not silently ignored.
 */
import { GatewayError } from '../errors.js';
import type { CachePolicy } from './policy.js';

/** The body's own cache controls; the gateway's reason not to cache a request is one too. */
export interface BodyCacheControls {
  noCache?: boolean;
  noStore?: boolean;
  ttlSeconds?: number;
  maxAgeSeconds?: number;
}

export const CACHE_FIELD = 'cache';
/** Seconds, as the headers take them: ten digits at most. */
const MAX_SECONDS = 9_999_999_999;

/** The controls the body's `cache` field asks for; undefined when it has none. Throws the 400 for a bad value. */
export function cacheFieldControls(fields: Record<string, unknown>): BodyCacheControls | undefined {
  const field = fields[CACHE_FIELD];
  if (field === undefined || field === null) return undefined;
  if (typeof field !== 'object' || Array.isArray(field)) {
    throw invalidCacheField('Invalid type for \'cache\': expected an object such as {"no-cache": true} or {"ttl": 600}.');
  }
  const controls: BodyCacheControls = {};
  for (const [name, value] of Object.entries(field)) {
    switch (name) {
      case 'no-cache':
        controls.noCache = flag(name, value);
        break;
      case 'no-store':
        controls.noStore = flag(name, value);
        break;
      case 'ttl':
        controls.ttlSeconds = seconds(name, value);
        break;
      case 's-maxage':
        controls.maxAgeSeconds = seconds(name, value);
        break;
      default:
        throw invalidCacheField(`Unsupported key in 'cache': '${name.slice(0, 64)}'. Supported: 'no-cache', 'no-store', 'ttl', 's-maxage'.`);
    }
  }
  return controls;
}

/** The body without its `cache` field (a shallow copy; the client's object is left as it is). */
export function withoutCacheField(body: Record<string, unknown>): Record<string, unknown> {
  if (!(CACHE_FIELD in body)) return body;
  const { [CACHE_FIELD]: _removed, ...rest } = body;
  return rest;
}

/**
 * Applies the body's controls after the headers': they only ever narrow what the cache may do
 * (no-store wins over no-cache, the younger max-age wins), except `ttl`, which sets the
 * lifetime of the stored answer as X-Cache-TTL does, and wins over that header.
 */
export function applyBodyCacheControls(policy: CachePolicy, controls: BodyCacheControls): void {
  if (controls.noStore) {
    policy.lookup = false;
    policy.store = false;
    policy.bypassReason = 'no-store';
  } else if (controls.noCache && policy.lookup) {
    policy.lookup = false;
    policy.bypassReason = 'no-cache';
  }
  if (controls.ttlSeconds !== undefined) policy.ttlSeconds = controls.ttlSeconds;
  if (controls.maxAgeSeconds !== undefined) {
    policy.maxAgeSeconds = policy.maxAgeSeconds === undefined ? controls.maxAgeSeconds : Math.min(policy.maxAgeSeconds, controls.maxAgeSeconds);
  }
}

function flag(name: string, value: unknown): boolean {
  if (typeof value !== 'boolean') throw invalidCacheField(`Invalid type for 'cache.${name}': expected a boolean.`);
  return value;
}

function seconds(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > MAX_SECONDS) {
    throw invalidCacheField(`Invalid value for 'cache.${name}': expected a whole number of seconds (0 or more).`);
  }
  return value;
}

/** A 400 a retry cannot fix (the SDKs honour x-should-retry), like the gateway's other bad-input errors. */
function invalidCacheField(message: string): GatewayError {
  return new GatewayError(400, 'invalid_request_error', 'invalid_cache_field', message, { 'x-should-retry': 'false' });
}
