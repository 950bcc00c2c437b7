/**
 * On the way out of every request: the metrics of the contract and one log line (id, route,
 * provider, model, status, cache, duration, bytes). No prompt text, no header, no key.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { Accounting } from './accounting.js';
import type { CacheOutcome, GatewayMetrics } from './metrics.js';
import type { Endpoint } from './endpoints.js';
import type { RequestOutcome } from './request-outcome.js';

/**
 * Status label and log status of a request whose client went away before its answer was
 * complete (a stopped stream, a closed tab): nginx's "client closed request".
 */
export const CLIENT_CLOSED_STATUS = 499;

/**
 * Observes every request exactly once. Fastify runs onResponse hooks only for responses that
 * finished; a client that leaves mid-stream would otherwise vanish from metrics and logs.
 */
export function observeRequests(app: FastifyInstance, metrics: GatewayMetrics, accounting: Accounting, log: Logger): void {
  const once = (request: FastifyRequest, reply: FastifyReply, clientClosed: boolean): void => {
    const context = request.gw;
    if (!context || context.observed) return;
    context.observed = true;
    observeRequest(request, reply, metrics, accounting, log, clientClosed, context.sendingAt);
  };
  // Hooks in callback style, not async: no extra promise ticks on every request (hot path).
  app.addHook('onRequest', (request, reply, done) => {
    reply.raw.once('close', () => {
      if (!reply.raw.writableFinished) once(request, reply, true);
    });
    done();
  });
  // Replies Fastify sends itself (JSON, errors, proxied bodies) start leaving here; for a proxied
  // stream that is when the upstream's headers came, long before its last byte.
  app.addHook('onSend', (request, _reply, payload, done) => {
    if (request.gw && request.gw.sendingAt === undefined) request.gw.sendingAt = performance.now();
    done(null, payload);
  });
  app.addHook('onResponse', (request, reply, done) => {
    once(request, reply, false);
    done();
  });
}

export function observeRequest(
  request: FastifyRequest,
  reply: FastifyReply,
  metrics: GatewayMetrics,
  accounting: Accounting,
  log: Logger,
  clientClosed = false,
  sendingAt?: number,
): void {
  const context = request.gw;
  if (!context) return;
  const seconds = reply.elapsedTime / 1000;
  // The first-byte stamp is performance.now(): the first byte is placed by how long before now it left.
  const firstByte = sendingAt;
  const ttfb = firstByte === undefined ? seconds : Math.min(seconds, Math.max(0, seconds - (performance.now() - firstByte) / 1000));
  // The routes Fastify answers never look up the cache: their outcome is what the context learned.
  const outcome: RequestOutcome = {
    cache: undefined,
    upstreamCalled: false,
    provider: context.provider,
    model: context.model,
    error: context.error,
    status: clientClosed ? CLIENT_CLOSED_STATUS : reply.raw.statusCode,
    bytes: Number(reply.getHeader('content-length') ?? 0),
    firstByteAt: firstByte,
  };
  recordRequest(
    {
      id: request.id,
      method: request.method,
      route: request.routeOptions.url ?? request.url.split('?')[0] ?? '',
      endpoint: context.endpoint,
      outcome,
      seconds,
      ttfbSeconds: ttfb,
    },
    metrics,
    accounting,
    log,
  );
}

/** One finished request, however it was answered (through Fastify or the cached routes' pipeline). */
export interface FinishedRequest {
  id: string;
  method: string;
  /** The route pattern (the path for unrouted requests). */
  route: string;
  /** undefined for paths outside the contract's metrics (/healthz, /metrics, unrouted). */
  endpoint: Endpoint | undefined;
  outcome: RequestOutcome;
  seconds: number;
  ttfbSeconds: number;
}

/**
 * The cache outcome of a request: one value for its X-Cache header, the `cache` label of its
 * metrics and the `cache` field of its log line. Only X-Cache's own values are used:
 * - HIT: answered from a stored entry (or from a finished call whose entry is being stored);
 * - COALESCED: joined an identical request's upstream call;
 * - MISS: looked up, found nothing, and its own upstream call was sent. Only these are counted
 *   in gateway_cache_misses_total, so the hit ratio measures the cache, not the key pool: a
 *   request refused before any upstream call (every key cooling or rejected) is no miss. A
 *   client that leaves (499) keeps the outcome it had reached: after its call was sent, a miss;
 * - BYPASS: everything else: the cache was skipped (no-cache, no-store, regeneration, cache off
 *   or down), or the request ended before the cache decision (bad input, unknown model, a
 *   refused key, a client gone while its body or the store was read) or before any upstream call.
 */
export function cacheOutcomeOf(reached: CacheOutcome | undefined, upstreamCalled: boolean): CacheOutcome {
  if (reached === undefined || (reached === 'MISS' && !upstreamCalled)) return 'BYPASS';
  return reached;
}

/**
 * The metrics of the contract and the one log line of a request (`log`: logger.ts's
 * requestLineLogger). The id comes first after the base fields, where a Fastify request logger
 * would have bound it.
 */
export function recordRequest(finished: FinishedRequest, metrics: GatewayMetrics, accounting: Accounting, log: Logger): void {
  const { outcome, endpoint, seconds } = finished;
  const status = outcome.status;
  const cache = cacheOutcomeOf(outcome.cache, outcome.upstreamCalled);
  // Bounded like every model label; worked out once for the metric and the line.
  const model = accounting.modelLabel(outcome.provider, outcome.model);
  if (endpoint !== undefined) {
    metrics.requests.inc({
      endpoint,
      provider: outcome.provider ?? 'none',
      model,
      cache,
      status: String(status),
    });
    if (cache === 'MISS') metrics.cacheMisses.inc({ endpoint });
    metrics.requestDuration.observe({ endpoint, cache }, seconds);
    metrics.timeToFirstByte.observe({ endpoint, cache }, finished.ttfbSeconds);
  }
  if (!log.isLevelEnabled('info')) return;
  const line = {
    id: finished.id,
    method: finished.method,
    route: finished.route,
    provider: outcome.provider,
    model: outcome.model === undefined ? undefined : model,
    status,
    // The metrics' label, on every line that has metrics (none for /healthz, /metrics, …).
    cache: endpoint === undefined ? undefined : cache,
    durationMs: Math.round(seconds * 10_000) / 10,
    bytes: outcome.bytes,
    error: outcome.error?.code,
  };
  log.info(line, 'request');
}
