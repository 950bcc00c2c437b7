/**
 * Fallbacks between models (MODELS_FILE's `fallbacks`) and the providers' health: one chain per
 * flight. When the provider asked cannot answer (unreachable, a timeout, a 5xx after the policy's
 * retries, a broken answer, or every key cooling or rejected) and nothing has reached any client,
 * the same request goes to the next model of the list, on either provider. Never after a stream's
 * first event, never for the provider's answer to a bad request (a 4xx): another model would
 * refuse it too, or worse, answer what the client did not ask.
 *
 * The chain also keeps each provider's circuit breaker (upstream/circuit-breaker.ts) told of every
 * attempt, and asks it first: a request whose provider is known to be down starts with its first
 * fallback at once instead of waiting for a timeout. A request with nowhere else to go is still
 * sent as asked: the breaker only ever chooses between places to go.
 */
import type { Logger } from 'pino';
import { cacheKey } from '../cache/key.js';
import type { GatewayMetrics } from '../metrics.js';
import type { ProviderName } from '../providers/provider-name.js';
import type { ModelRouter, ProviderTarget } from '../routing.js';
import type { ProviderHealth } from '../upstream/circuit-breaker.js';
import type { UpstreamClient } from '../upstream/client.js';
import type { ClientWriter } from './client-writer.js';
import type { Flight, FlightFallback, FlightOutcome, FlightTarget } from './flight.js';
import type { PreparedRequest } from './prepare.js';

export interface FallbackDeps {
  router: ModelRouter;
  clients: Readonly<Record<ProviderName, UpstreamClient>>;
  health: ProviderHealth;
  metrics: GatewayMetrics;
  log: Logger;
}

/** The provider did not answer at all: its health suffers, and another model may answer. */
const PROVIDER_DOWN = new Set(['upstream_unreachable', 'upstream_timeout', 'upstream_bad_response']);
/** The gateway has no key the provider takes now: another provider may answer; the provider itself is fine. */
const NO_USABLE_KEY = new Set(['rate_limit_exceeded', 'provider_keys_rejected', 'provider_key_rejected', 'no_provider_keys']);

/** Why an attempt's outcome calls for another model; undefined when it does not. */
export function fallbackReason(outcome: FlightOutcome, afterHead: boolean): string | undefined {
  if (afterHead) return undefined;
  if (outcome.kind === 'upstream-error') return outcome.head.statusCode >= 500 ? `status ${outcome.head.statusCode}` : undefined;
  if (outcome.kind === 'failed' && (PROVIDER_DOWN.has(outcome.error.code) || NO_USABLE_KEY.has(outcome.error.code))) return outcome.error.code;
  return undefined;
}

export function fallbackChain(asked: PreparedRequest, requestId: string, deps: FallbackDeps): FlightFallback {
  return new FallbackChain(asked, requestId, deps);
}

class FallbackChain implements FlightFallback {
  /** Fallback ids not tried yet, in the operator's order. */
  private readonly remaining: string[];
  /** provider/model pairs already asked: a list naming one twice (or the asked model) asks it once. */
  private readonly tried = new Set<string>();

  constructor(
    private readonly asked: PreparedRequest,
    private readonly requestId: string,
    private readonly deps: FallbackDeps,
  ) {
    // Never for embeddings: another model's vectors live in another space, and mixed into a
    // vector store with the asked model's they would silently spoil every search.
    this.remaining = asked.endpoint === 'embeddings' ? [] : deps.router.policies.current.fallbacksOf(asked.asked, asked.model);
    this.tried.add(`${asked.provider}/${asked.upstreamModel}`);
  }

  first(request: PreparedRequest): FlightTarget | undefined {
    if (this.remaining.length === 0 || this.deps.health.breakers[request.provider].tryPass()) return undefined;
    const next = this.pick(request, 'circuit open', true);
    // A fallback that needs its model list fetched first is not worth the wait: go as asked.
    return next instanceof Promise ? undefined : next;
  }

  next(outcome: FlightOutcome, afterHead: boolean, request: PreparedRequest): FlightTarget | undefined | Promise<FlightTarget | undefined> {
    this.recordHealth(outcome, request.provider);
    if (this.remaining.length === 0) return undefined;
    const reason = fallbackReason(outcome, afterHead);
    return reason === undefined ? undefined : this.pick(request, reason, false);
  }

  private recordHealth(outcome: FlightOutcome, provider: ProviderName): void {
    const breaker = this.deps.health.breakers[provider];
    if (outcome.kind === 'completed') breaker.success();
    else if (outcome.kind === 'upstream-error') {
      if (outcome.head.statusCode >= 500) breaker.failure();
      else breaker.success();
    } else if (PROVIDER_DOWN.has(outcome.error.code)) breaker.failure();
  }

  /**
   * The next fallback whose provider may be asked now, as a target; undefined when none is left.
   * `syncOnly`: give up (a promise) rather than wait for a model list.
   */
  private pick(from: PreparedRequest, reason: string, syncOnly: boolean): FlightTarget | undefined | Promise<FlightTarget | undefined> {
    while (this.remaining.length > 0) {
      const id = this.remaining[0]!;
      const route = this.deps.router.routeOfNow(id);
      if (route === null) {
        if (syncOnly) return Promise.resolve(undefined);
        return this.deps.router.routeOf(id).then((awaited) => {
          this.remaining.shift();
          return this.accept(id, awaited, from, reason) ?? this.pick(from, reason, false);
        });
      }
      this.remaining.shift();
      const target = this.accept(id, route, from, reason);
      if (target) return target;
    }
    return undefined;
  }

  private accept(id: string, route: ProviderTarget | undefined, from: PreparedRequest, reason: string): FlightTarget | undefined {
    const { deps } = this;
    if (!route) {
      deps.log.warn({ id: this.requestId, fallback: id }, 'fallback model routes to no provider; skipped (check MODELS_FILE)');
      return undefined;
    }
    const pair = `${route.provider}/${route.upstreamModel}`;
    if (this.tried.has(pair) || !deps.health.breakers[route.provider].tryPass()) return undefined;
    this.tried.add(pair);
    const request: PreparedRequest = {
      ...this.asked,
      provider: route.provider,
      model: route.model,
      upstreamModel: route.upstreamModel,
      body: { ...this.asked.body, model: route.upstreamModel },
    };
    deps.metrics.fallbacks.inc({ provider: from.provider, to_provider: route.provider });
    deps.log.warn(
      { id: this.requestId, provider: from.provider, model: from.model, to_provider: route.provider, to_model: route.model, reason },
      'provider could not answer; falling back to another model',
    );
    return { client: deps.clients[route.provider], request };
  }
}

/**
 * The cache key a flight's answer is stored under: the request's own, or, once it fell back,
 * the request as the fallback got it, so the answer can only ever answer that request (asked
 * directly, or falling back the same way), never the model asked for.
 */
export function answerKey(flight: Flight, key: string, scope: string): string {
  if (!flight.fellBack) return key;
  const { provider, endpoint, body } = flight.current;
  return cacheKey({ scope, provider, endpoint, body });
}

/** Tells a client's writer (its head and its record) who answered it, before its answer's head is written. */
export function tellWhoAnswered(flight: Pick<Flight, 'current' | 'fellBack'>, asked: PreparedRequest, writer: ClientWriter): void {
  writer.answeredBy(flight.current, flight.fellBack ? asked.asked : undefined);
}
