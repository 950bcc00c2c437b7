/**
 * JSON values the fuzzer can write but JSON.stringify cannot: objects as ordered key/value
 * pairs (duplicate keys, `__proto__` as a plain key) and raw text (numbers beyond float range,
 * nesting deeper than a recursive serialiser survives).
 */

export type Json = null | boolean | number | string | Json[] | JsonObject | RawJson;

export class JsonObject {
  constructor(public pairs: Array<[string, Json]> = []) {}

  static of(record: Record<string, Json>): JsonObject {
    return new JsonObject(Object.entries(record));
  }

  get(key: string): Json | undefined {
    for (let i = this.pairs.length - 1; i >= 0; i--) if (this.pairs[i]?.[0] === key) return this.pairs[i]?.[1];
    return undefined;
  }

  /** Replaces every pair with this key by one, or appends it. */
  set(key: string, value: Json): void {
    const index = this.pairs.findIndex(([k]) => k === key);
    this.pairs = this.pairs.filter(([k], i) => k !== key || i === index);
    if (index < 0) this.pairs.push([key, value]);
    else {
      const kept = this.pairs.findIndex(([k]) => k === key);
      this.pairs[kept] = [key, value];
    }
  }

  delete(key: string): void {
    this.pairs = this.pairs.filter(([k]) => k !== key);
  }
}

export class RawJson {
  constructor(readonly text: string) {}
}

export function jsonText(value: Json): string {
  if (value instanceof RawJson) return value.text;
  if (value instanceof JsonObject) return `{${value.pairs.map(([k, v]) => `${JSON.stringify(k)}:${jsonText(v)}`).join(',')}}`;
  if (Array.isArray(value)) return `[${value.map(jsonText).join(',')}]`;
  return JSON.stringify(value);
}

/** A plain value (from JSON.parse or a literal) as a Json tree. */
export function fromPlain(value: unknown): Json {
  if (value === null || typeof value === 'boolean' || typeof value === 'number' || typeof value === 'string') return value;
  if (Array.isArray(value)) return value.map(fromPlain);
  return new JsonObject(Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, fromPlain(v)]));
}
