/**
 * End to end: CACHE_SCOPE. `per-key`: two gateway client keys never share an entry (nor
 * an in-flight call); `per-user`: two X-OpenWebUI-User-Id values behind one key never share, the
 * same user does; `shared` (the default): everyone shares. Both backends.
 */
import { describe, expect, it } from 'vitest';
import { BACKENDS, chat, chatBody, unique, useGateway } from './helpers/cache-e2e.js';

const KEY_A = 'gw-scope-key-a-0123456789abcdef';
const KEY_B = 'gw-scope-key-b-fedcba9876543210';
const bearer = (key: string): Record<string, string> => ({ authorization: `Bearer ${key}` });

describe.each(BACKENDS)('CACHE_SCOPE=per-key (%s backend)', (backend) => {
  const setup = useGateway(backend, { env: { CACHE_SCOPE: 'per-key', GATEWAY_API_KEYS: `${KEY_A},${KEY_B}` } });

  it('keeps each client key’s entries to itself', async () => {
    const body = chatBody(unique());
    expect((await chat(setup.gateway, body, bearer(KEY_A))).xCache).toBe('MISS');
    expect((await chat(setup.gateway, body, bearer(KEY_A))).xCache).toBe('HIT');
    expect((await chat(setup.gateway, body, bearer(KEY_B))).xCache).toBe('MISS');
    expect((await chat(setup.gateway, { ...body, stream: true }, bearer(KEY_B))).xCache).toBe('HIT');
    expect(setup.fake.completionCalls()).toHaveLength(2);
    // The client's key never goes upstream; the provider key does.
    for (const call of setup.fake.completionCalls()) expect([KEY_A, KEY_B]).not.toContain(call.key);
  });

  it('does not coalesce identical requests from different keys', async () => {
    setup.fake.options.latencyMs = 300;
    try {
      const body = chatBody(unique());
      const answers = await Promise.all([chat(setup.gateway, body, bearer(KEY_A)), chat(setup.gateway, body, bearer(KEY_B))]);
      expect(answers.map((a) => a.xCache)).toEqual(['MISS', 'MISS']);
      expect(setup.fake.completionCalls()).toHaveLength(2);
    } finally {
      setup.fake.options.latencyMs = 0;
    }
  });

  it('ignores X-OpenWebUI-User-Id in per-key mode', async () => {
    const body = chatBody(unique());
    await chat(setup.gateway, body, { ...bearer(KEY_A), 'x-openwebui-user-id': 'u1' });
    expect((await chat(setup.gateway, body, { ...bearer(KEY_A), 'x-openwebui-user-id': 'u2' })).xCache).toBe('HIT');
  });
});

describe.each(BACKENDS)('CACHE_SCOPE=per-user (%s backend)', (backend) => {
  const setup = useGateway(backend, { env: { CACHE_SCOPE: 'per-user', GATEWAY_API_KEYS: KEY_A } });
  const asUser = (user: string): Record<string, string> => ({ ...bearer(KEY_A), 'x-openwebui-user-id': user });

  it('keeps two users behind one key apart, and lets the same user share', async () => {
    const body = chatBody(unique());
    const alice = unique('alice');
    const bob = unique('bob');
    expect((await chat(setup.gateway, body, asUser(alice))).xCache).toBe('MISS');
    expect((await chat(setup.gateway, body, asUser(bob))).xCache).toBe('MISS');
    expect((await chat(setup.gateway, body, asUser(alice))).xCache).toBe('HIT');
    expect((await chat(setup.gateway, { ...body, stream: true }, asUser(bob))).xCache).toBe('HIT');
    expect(setup.fake.completionCalls()).toHaveLength(2);
  });

  it('falls back to the client key when the user header is absent', async () => {
    const body = chatBody(unique());
    expect((await chat(setup.gateway, body, bearer(KEY_A))).xCache).toBe('MISS');
    expect((await chat(setup.gateway, body, bearer(KEY_A))).xCache).toBe('HIT');
    expect((await chat(setup.gateway, body, asUser(unique('carol')))).xCache).toBe('MISS');
    expect(setup.fake.completionCalls()).toHaveLength(2);
  });
});

describe('CACHE_SCOPE=shared (the default)', () => {
  const setup = useGateway('memory', { env: { GATEWAY_API_KEYS: `${KEY_A},${KEY_B}` } });

  it('shares entries across client keys and users', async () => {
    const body = chatBody(unique());
    expect((await chat(setup.gateway, body, { ...bearer(KEY_A), 'x-openwebui-user-id': 'u1' })).xCache).toBe('MISS');
    expect((await chat(setup.gateway, body, { ...bearer(KEY_B), 'x-openwebui-user-id': 'u2' })).xCache).toBe('HIT');
    expect(setup.fake.completionCalls()).toHaveLength(1);
  });
});
