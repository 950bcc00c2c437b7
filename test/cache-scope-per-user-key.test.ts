/**
 * CACHE_SCOPE=per-user isolates entries per (client key, user): X-OpenWebUI-User-Id is whatever
 * the holder of a gateway key sends, so a client with key B naming user u1 must not read the
 * entries key A's u1 filled (it did when the scope was the user alone). The same key and user
 * still share, through the hit fast path and the handler alike; both backends.
 */
import { describe, expect, it } from 'vitest';
import { BACKENDS, chat, chatBody, unique, untilStored, useGateway } from './helpers/cache-e2e.js';

const KEY_A = 'gw-peruser-key-a-0123456789abcdef';
const KEY_B = 'gw-peruser-key-b-fedcba9876543210';
const as = (key: string, user: string): Record<string, string> => ({ authorization: `Bearer ${key}`, 'x-openwebui-user-id': user });

describe.each(BACKENDS)('CACHE_SCOPE=per-user scopes by client key and user (%s backend)', (backend) => {
  const setup = useGateway(backend, { env: { CACHE_SCOPE: 'per-user', GATEWAY_API_KEYS: `${KEY_A},${KEY_B}` } });

  it('key B naming key A’s user does not read A’s entry; each pair hits its own', async () => {
    const body = chatBody(unique());
    const user = unique('u1');
    expect((await chat(setup.gateway, body, as(KEY_A, user))).xCache).toBe('MISS');
    expect((await untilStored(() => chat(setup.gateway, body, as(KEY_A, user)))).xCache).toBe('HIT');
    expect((await chat(setup.gateway, body, as(KEY_B, user))).xCache).toBe('MISS');
    expect((await untilStored(() => chat(setup.gateway, body, as(KEY_B, user)))).xCache).toBe('HIT');
    expect((await chat(setup.gateway, { ...body, stream: true }, as(KEY_A, user))).xCache).toBe('HIT');
    expect(setup.fake.completionCalls()).toHaveLength(2);
  });

  it('the same key and user still share; another user behind the same key does not', async () => {
    const body = chatBody(unique());
    const alice = unique('alice');
    expect((await chat(setup.gateway, body, as(KEY_A, alice))).xCache).toBe('MISS');
    expect((await untilStored(() => chat(setup.gateway, body, as(KEY_A, alice)))).xCache).toBe('HIT');
    expect((await chat(setup.gateway, body, as(KEY_A, unique('bob')))).xCache).toBe('MISS');
    expect(setup.fake.completionCalls()).toHaveLength(2);
  });
});
