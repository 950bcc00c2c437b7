/**
 * What the gateway learns about a request Fastify answers (the passthrough, the model lists,
 * every error Fastify writes) on its way through; request-log.ts makes its outcome from it when
 * the response ends. The cached routes' pipeline keeps none: its outcome is a value
 * (request-outcome.ts) made by whatever wrote the answer.
 */
import type { GatewayError } from './errors.js';
import type { Endpoint } from './endpoints.js';
import type { ProviderName } from './providers/provider-name.js';

export interface RequestContext {
  endpoint: Endpoint | undefined;
  provider: ProviderName | undefined;
  model: string | undefined;
  /** '' for the shared cache, else a hash of the client key (per-user: of the key and the user). */
  cacheScope: string;
  /** Who the request is counted for (limits/user-id.ts); undefined on open paths and before auth. */
  user: string | undefined;
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
    cacheScope: '',
    user: undefined,
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
