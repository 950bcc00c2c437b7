/**
 * The memo of requests seen before (src/pipeline/known-requests.ts): it may only ever save
 * work, never change an answer. Different bytes, endpoints or scopes never share an entry; a model
 * list replaced since (routing may have changed) or a body too large to remember is worked out
 * again.
 */
import { describe, expect, it } from 'vitest';
import { KNOWN_REQUEST_MAX_BODY_BYTES, KnownRequests } from '../src/pipeline/known-requests.js';
import type { PreparedRequest } from '../src/pipeline/prepare.js';

const prepared: PreparedRequest = {
  endpoint: 'chat.completions',
  provider: 'openai',
  model: 'gpt-4o-mini',
  asked: 'gpt-4o-mini',
  upstreamModel: 'gpt-4o-mini',
  body: { model: 'gpt-4o-mini', messages: [] },
  stream: false,
  includeUsage: false,
};

describe('known requests', () => {
  it('finds a body again by its exact bytes, endpoint and scope only', () => {
    const known = new KnownRequests();
    const body = Buffer.from('{"model":"gpt-4o-mini","messages":[{"role":"user","content":"żółć"}]}');
    const memoKey = known.memoKeyOf('chat.completions', '', body)!;
    known.remember(memoKey, 'gw:v1:key', prepared, 3);
    expect(known.get(known.memoKeyOf('chat.completions', '', Buffer.from(body))!, 3)).toMatchObject({
      key: 'gw:v1:key',
      request: { provider: 'openai', stream: false },
    });
    // The parsed body is not kept.
    expect(known.get(memoKey, 3)?.request).not.toHaveProperty('body');
    expect(known.get(known.memoKeyOf('completions', '', body)!, 3)).toBeUndefined();
    expect(known.get(known.memoKeyOf('chat.completions', 'key:abc', body)!, 3)).toBeUndefined();
    const oneByteOff = Buffer.from(body);
    oneByteOff.writeUInt8(oneByteOff.readUInt8(oneByteOff.length - 5) ^ 1, oneByteOff.length - 5);
    expect(known.get(known.memoKeyOf('chat.completions', '', oneByteOff)!, 3)).toBeUndefined();
  });

  it('keeps bytes that are not valid UTF-8 apart', () => {
    const known = new KnownRequests();
    // Both decode to U+FFFD as UTF-8; as bytes they differ.
    const a = known.memoKeyOf('chat.completions', '', Buffer.from([0x7b, 0xff, 0x7d]))!;
    const b = known.memoKeyOf('chat.completions', '', Buffer.from([0x7b, 0xfe, 0x7d]))!;
    expect(a).not.toBe(b);
  });

  it('forgets routing decided before a model list was replaced', () => {
    const known = new KnownRequests();
    const memoKey = known.memoKeyOf('chat.completions', '', Buffer.from('{}'))!;
    known.remember(memoKey, 'gw:v1:key', prepared, 1);
    expect(known.get(memoKey, 1)).toBeDefined();
    expect(known.get(memoKey, 2)).toBeUndefined();
  });

  it('does not remember bodies larger than its bound', () => {
    const known = new KnownRequests();
    expect(known.memoKeyOf('chat.completions', '', Buffer.alloc(KNOWN_REQUEST_MAX_BODY_BYTES))).toBeDefined();
    expect(known.memoKeyOf('chat.completions', '', Buffer.alloc(KNOWN_REQUEST_MAX_BODY_BYTES + 1))).toBeUndefined();
  });
});
