/**
 * The one place a cache read fails open: a store that throws or rejects is "the cache is
 * unavailable" (the store has counted the error), and the request goes upstream. Both the hit
 * cached routes' pipeline reads through here, so it never knows which backend it reads.
 */
import type { CacheStore } from './store.js';

/** What one read came to: the value (undefined on a miss), or a failure to fail open on. */
export type StoreRead<T = Buffer> = { readonly failed: false; readonly value: T | undefined } | { readonly failed: true };

const STORE_FAILED: StoreRead<never> = Object.freeze({ failed: true });
const MISSED: StoreRead<never> = Object.freeze({ failed: false, value: undefined });

/**
 * Reads `key`; never throws nor rejects. Answers synchronously when the store does (the
 * embedded store), with a promise when the store does (Redis): the caller may tell the two apart
 * by the answer's form, as undici's cache interceptor does, never by the store.
 */
export function readStore(store: CacheStore, key: string): StoreRead | Promise<StoreRead> {
  let got: Buffer | undefined | Promise<Buffer | undefined>;
  try {
    got = store.get(key);
  } catch {
    return STORE_FAILED;
  }
  // The value's own form first: an embedded hit, the hot case, pays one type test.
  if (got === undefined) return MISSED;
  if (got instanceof Uint8Array) return { failed: false, value: got };
  return got.then(readOf, failedRead);
}

function readOf(value: Buffer | undefined): StoreRead {
  return value === undefined ? MISSED : { failed: false, value };
}

function failedRead(): StoreRead {
  return STORE_FAILED;
}
