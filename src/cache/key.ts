import * as crypto from 'node:crypto';
import type { ProviderName } from '../providers/provider-name.js';

/**
 * Bumped whenever the entry layout or the canonical form changes: old entries then simply stop
 * matching (and age out) instead of being misread.
 */
export const CACHE_FORMAT_VERSION = 1;

/** Prefix of every key, so the gateway's keys are recognisable (and scannable) in a shared Redis. */
export const CACHE_KEY_PREFIX = `gw:v${CACHE_FORMAT_VERSION}:`;

/** Top-level request fields that cannot change the answer's content. */
const IGNORED_TOP_LEVEL_FIELDS = new Set(['stream', 'stream_options', 'user']);

export interface CacheKeyParts {
  /** '' for the shared cache; otherwise an id of the client key or user (a hash, never the key itself). */
  scope?: string;
  provider: ProviderName;
  /** The cached endpoint: 'chat.completions', 'completions' or 'embeddings'. */
  endpoint: string;
  /** The parsed request body. */
  body: unknown;
}

/**
 * The request body as one canonical JSON string: object keys sorted at every depth (arrays keep
 * their order) and the top-level fields that do not affect the answer dropped. Every other field,
 * known or not, counts. Written by hand because it runs on every request: one pass, no
 * stringify-parse round trip.
 */
export function canonicalize(body: unknown): string {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return serialize(body) ?? 'null';
  return serializeObject(body as Record<string, unknown>, IGNORED_TOP_LEVEL_FIELDS);
}

/** The storage key: prefix plus a SHA-256 (base64url) over version, scope, provider, endpoint and body. */
export function cacheKey(parts: CacheKeyParts): string {
  // Length-prefixed fields: no scope or endpoint value can be crafted to collide with another split.
  let material = '';
  for (const field of [String(CACHE_FORMAT_VERSION), parts.scope ?? '', parts.provider, parts.endpoint]) {
    material += `${field.length}:${field}\n`;
  }
  return CACHE_KEY_PREFIX + sha256(material + canonicalize(parts.body));
}

/**
 * One string hashed in one call: on every cached request, so the one-shot crypto.hash (Node
 * >= 20.12) is used where it exists; it skips the Hash object and its per-call crossings into C++
 * (about 1.5 µs of the key's ~8, bench/README.md). The bytes hashed, so the keys, are unchanged.
 */
const sha256: (data: string) => string =
  typeof crypto.hash === 'function'
    ? (data) => crypto.hash('sha256', data, 'base64url')
    : (data) => crypto.createHash('sha256').update(data).digest('base64url');

/** JSON.stringify semantics (undefined/functions vanish from objects, become null in arrays). */
function serialize(value: unknown): string | undefined {
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'number':
      return Number.isFinite(value) ? String(value) : 'null';
    case 'boolean':
      return value ? 'true' : 'false';
    case 'bigint':
      return value.toString();
    case 'object':
      if (value === null) return 'null';
      if (Array.isArray(value)) return serializeArray(value);
      return serializeObject(value as Record<string, unknown>, undefined);
    default:
      return undefined; // undefined, function, symbol
  }
}

function serializeArray(values: unknown[]): string {
  let out = '[';
  for (let i = 0; i < values.length; i++) {
    if (i > 0) out += ',';
    out += serialize(values[i]) ?? 'null';
  }
  return `${out}]`;
}

function serializeObject(object: Record<string, unknown>, skip: Set<string> | undefined): string {
  const keys = Object.keys(object).sort();
  let out = '{';
  let first = true;
  for (const key of keys) {
    if (skip?.has(key)) continue;
    const serialized = serialize(object[key]);
    if (serialized === undefined) continue;
    out += `${(first ? '' : ',') + JSON.stringify(key)}:${serialized}`;
    first = false;
  }
  return `${out}}`;
}
