/**
 * What a request's headers ask of the cache: Cache-Control no-cache / no-store /
 * max-age=N, and X-Cache-TTL: N. Unusable values are ignored, never an error: a client must not
 * get a 400 for a cache hint.
 */
export type RequestHeaders = Record<string, string | string[] | undefined>;

export interface CachePolicy {
  /** Look for a stored answer. */
  lookup: boolean;
  /** Store the fresh answer. */
  store: boolean;
  /** Accept only an entry younger than this many seconds. */
  maxAgeSeconds?: number;
  /** Lifetime for a stored answer; 0 = no expiry (LRU only), like CACHE_TTL_SECONDS. */
  ttlSeconds: number;
  /** Why the cache is bypassed, for `X-Cache: BYPASS` and logs. */
  bypassReason?: 'no-cache' | 'no-store';
}

export function parseCachePolicy(headers: RequestHeaders, defaults: { ttlSeconds: number }): CachePolicy {
  const directives = parseCacheControl(header(headers, 'cache-control'));
  // RFC 9111 §5.4: Pragma: no-cache counts only when Cache-Control is absent.
  const pragmaNoCache = directives.size === 0 && /(^|,)\s*no-cache\s*(,|$)/i.test(header(headers, 'pragma') ?? '');
  const ttl = nonNegativeInteger(header(headers, 'x-cache-ttl'));
  const ttlSeconds = ttl ?? defaults.ttlSeconds;

  if (directives.has('no-store')) return { lookup: false, store: false, ttlSeconds, bypassReason: 'no-store' };
  if (directives.has('no-cache') || pragmaNoCache) {
    return { lookup: false, store: true, ttlSeconds, bypassReason: 'no-cache' };
  }
  const maxAge = nonNegativeInteger(directives.get('max-age'));
  return maxAge === undefined ? { lookup: true, store: true, ttlSeconds } : { lookup: true, store: true, maxAgeSeconds: maxAge, ttlSeconds };
}

/** Whether an entry stored at `storedAtMs` satisfies the policy's max-age ("younger than N seconds"). */
export function isFreshEnough(policy: Pick<CachePolicy, 'maxAgeSeconds'>, storedAtMs: number, nowMs = Date.now()): boolean {
  return policy.maxAgeSeconds === undefined || nowMs - storedAtMs < policy.maxAgeSeconds * 1000;
}

/** The `Age` response header value: whole seconds since the entry was stored. */
export function ageSeconds(storedAtMs: number, nowMs = Date.now()): number {
  return Math.max(0, Math.floor((nowMs - storedAtMs) / 1000));
}

/** Directive name (lower case) → its argument ('' when none); the first occurrence wins. */
function parseCacheControl(value: string | undefined): Map<string, string> {
  const directives = new Map<string, string>();
  if (!value) return directives;
  for (const part of value.split(',')) {
    const eq = part.indexOf('=');
    const name = (eq < 0 ? part : part.slice(0, eq)).trim().toLowerCase();
    if (!name || directives.has(name)) continue;
    const argument =
      eq < 0
        ? ''
        : part
            .slice(eq + 1)
            .trim()
            .replace(/^"(.*)"$/, '$1');
    directives.set(name, argument);
  }
  return directives;
}

function nonNegativeInteger(value: string | undefined): number | undefined {
  if (value === undefined || !/^\s*\d{1,10}\s*$/.test(value)) return undefined;
  return Number(value);
}

/** A header by name, case-insensitively; repeated headers are joined as HTTP list syntax allows. */
function header(headers: RequestHeaders, name: string): string | undefined {
  let value = headers[name];
  if (value === undefined) {
    for (const key of Object.keys(headers)) {
      if (key.toLowerCase() === name) {
        value = headers[key];
        break;
      }
    }
  }
  return Array.isArray(value) ? value.join(',') : value;
}
