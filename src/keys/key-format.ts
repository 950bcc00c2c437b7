// A provider key travels in an `Authorization: Bearer` header: only visible ASCII fits
// there (a stray newline or space would make the request fail on every call, far from the
// typo that caused it), so such a key is refused where it is loaded.
const KEY_SHAPE = /^[\x21-\x7e]+$/;

export function isWellFormedKey(key: string): boolean {
  return KEY_SHAPE.test(key);
}

/** Order kept, duplicates dropped: the same key twice would only skew the rotation. */
export function dedupe(keys: readonly string[]): string[] {
  return [...new Set(keys)];
}
