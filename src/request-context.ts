/**
 * What the gateway learns about a request on its way through, for the one log line and the
 * metrics written when the response ends.
 */
import type { GatewayError } from './errors.js';
import type { Endpoint } from './endpoints.js';
import type { CacheOutcome } from './metrics.js';
import type { ProviderName } from './providers/provider-name.js';

export interface RequestContext {
  endpoint: Endpoint | undefined;
  provider: ProviderName | undefined;
  model: string | undefined;
  cache: CacheOutcome | undefined;
  /** '' for the shared cache, else a hash of the client key (per-user: of the key and the user). */
  cacheScope: string;
  /** Who the request is counted for (limits/user-id.ts); undefined on open paths and before auth. */
  user: string | undefined;
  /** An upstream call was sent for this request (by the flight it started). */
  upstreamCalled: boolean;
  error: GatewayError | undefined;
  /** When a reply Fastify sends itself started leaving (performance.now()). */
  sendingAt: number | undefined;
  /** Metrics and the log line were written (exactly once per request). */
  observed: boolean;
}

export function newRequestContext(): RequestContext {
  return {
    endpoint: undefined,
    provider: undefined,
    model: undefined,
    cache: undefined,
    cacheScope: '',
    user: undefined,
    upstreamCalled: false,
    error: undefined,
    sendingAt: undefined,
    observed: false,
  };
}

declare module 'fastify' {
  interface FastifyRequest {
    gw: RequestContext;
  }
}
