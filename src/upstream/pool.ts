/**
 * One undici Pool per provider origin, with keep-alive, so a hot gateway reuses warm TLS
 * connections instead of paying a handshake per request; composed with the upstream policy,
 * it is the only way the gateway reaches a provider.
 */
import { Pool, type Dispatcher } from 'undici';
import type { Config } from '../config.js';
import { upstreamPolicy, type UpstreamPolicyOptions } from './upstream-policy.js';

export function createUpstreamPool(origin: string, config: Config): Pool {
  return new Pool(origin, {
    connections: 256,
    pipelining: 1,
    keepAliveTimeout: 30_000,
    keepAliveMaxTimeout: 300_000,
    connect: { timeout: config.upstreamConnectTimeoutMs },
    headersTimeout: config.upstreamHeadersTimeoutMs,
    // undici's bodyTimeout is the idle time between two body chunks: exactly the SSE idle timeout.
    bodyTimeout: config.upstreamIdleTimeoutMs,
  });
}

/** A provider's Pool behind its policy. Closing stays the Pool's job (its owner's). */
export function createProviderDispatcher(pool: Pool, policy: UpstreamPolicyOptions): Dispatcher {
  return pool.compose(upstreamPolicy(policy));
}
