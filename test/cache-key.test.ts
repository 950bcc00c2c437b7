/** The cache key: equal for requests that must share an answer, different for everything else. */
import { describe, expect, it } from 'vitest';
import { CACHE_KEY_PREFIX, cacheKey, canonicalize } from '../src/cache/key.js';

const base = {
  model: 'gpt-4o-mini',
  messages: [
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: 'Hi' },
  ],
  temperature: 0.2,
};
const key = (body: unknown, extra: Partial<Parameters<typeof cacheKey>[0]> = {}): string =>
  cacheKey({ provider: 'openai', endpoint: 'chat.completions', body, ...extra });

describe('canonicalize', () => {
  it('sorts object keys at every depth and keeps array order', () => {
    expect(canonicalize({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: 'x' } })).toBe('{"a":{"c":"x","d":[3,{"y":2,"z":1}]},"b":1}');
  });

  it('drops stream, stream_options and user at the top level only', () => {
    expect(canonicalize({ model: 'm', stream: true, stream_options: { include_usage: true }, user: 'u' })).toBe('{"model":"m"}');
    expect(canonicalize({ metadata: { user: 'u', stream: true } })).toBe('{"metadata":{"stream":true,"user":"u"}}');
  });

  it('matches JSON.stringify for values JSON can hold, escapes included', () => {
    const value = { s: 'quote " backslash \\ newline \n emoji 😀 \u0001', n: [0, -1.5, 1e21, 1e-7], t: true, f: false, z: null };
    expect(JSON.parse(canonicalize(value))).toEqual(value);
    expect(canonicalize([1, 'a', null])).toBe(JSON.stringify([1, 'a', null]));
    expect(canonicalize({ u: undefined, a: [undefined] })).toBe('{"a":[null]}');
  });
});

describe('cacheKey', () => {
  it('is prefixed and stable', () => {
    expect(key(base)).toMatch(new RegExp(`^${CACHE_KEY_PREFIX}[A-Za-z0-9_-]{43}$`));
    expect(key(base)).toBe(key(structuredClone(base)));
  });

  it('ignores key order, nested key order, and the fields that cannot change the answer', () => {
    const reordered = {
      temperature: 0.2,
      messages: [
        { content: 'Be brief.', role: 'system' },
        { content: 'Hi', role: 'user' },
      ],
      model: 'gpt-4o-mini',
    };
    expect(key(reordered)).toBe(key(base));
    expect(key({ ...base, stream: true, stream_options: { include_usage: true }, user: 'alice' })).toBe(key(base));
  });

  it('changes with any field that can change the answer, known or unknown', () => {
    const variants = [
      { ...base, temperature: 0.3 },
      { ...base, seed: 7 },
      { ...base, tools: [{ type: 'function', function: { name: 'f', parameters: {} } }] },
      { ...base, some_future_field: 1 },
      { ...base, messages: [...base.messages].reverse() },
      { ...base, model: 'gpt-4o' },
    ];
    const keys = new Set([key(base), ...variants.map((v) => key(v))]);
    expect(keys.size).toBe(variants.length + 1);
  });

  it('changes with scope, provider and endpoint', () => {
    const keys = new Set([
      key(base),
      key(base, { scope: 'client-a' }),
      key(base, { scope: 'client-b' }),
      key(base, { provider: 'groq' }),
      key(base, { endpoint: 'completions' }),
    ]);
    expect(keys.size).toBe(5);
    expect(key(base, { scope: '' })).toBe(key(base));
  });

  it('cannot be collided by shifting text between scope and endpoint', () => {
    expect(key(base, { scope: 'a\n1:b', endpoint: 'c' })).not.toBe(key(base, { scope: 'a', endpoint: 'b\n1:c' }));
  });
});
