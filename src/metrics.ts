/**
 * The prom-client registry and every metric the gateway exports, present from start-up so
 * dashboards and alerts see zeros rather than gaps. Label values are bounded: `model` only takes
 * ids the gateway knows (price table or a provider's list), `endpoint` only the gateway's own
 * endpoint names (endpoints.ts).
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { CacheStoreOp } from './cache/store.js';
import { CACHED_ENDPOINTS, ENDPOINTS, type Endpoint } from './endpoints.js';
import { PROVIDER_NAMES } from './providers/provider-name.js';

const CACHE_OUTCOMES = ['HIT', 'MISS', 'BYPASS', 'COALESCED'] as const;
/** PARTIAL: an embeddings batch answered partly from the cache (only embeddings have it). */
export type CacheOutcome = (typeof CACHE_OUTCOMES)[number] | 'PARTIAL';
const EMBEDDING_OUTCOMES: readonly CacheOutcome[] = [...CACHE_OUTCOMES, 'PARTIAL'];
/** The cache backend operations whose failures are counted (CacheStoreOp plus the connection). */
const CACHE_OPS: readonly CacheStoreOp[] = ['get', 'set', 'delete', 'connect'];
const KEY_STATES = ['active', 'cooling', 'disabled'] as const;
/** Upstream answers worth alerting on from the first one: connection failures (0), rate limits, server errors. */
const WATCHED_UPSTREAM_STATUSES = ['0', '429', '500', '502', '503'] as const;

/** Uncached endpoints (models, passthrough) are always BYPASS. */
function outcomesOf(endpoint: Endpoint): readonly CacheOutcome[] {
  if (endpoint === 'embeddings') return EMBEDDING_OUTCOMES;
  return (CACHED_ENDPOINTS as readonly Endpoint[]).includes(endpoint) ? CACHE_OUTCOMES : ['BYPASS'];
}

const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

export type KeyStateReader = () => Array<{ provider: string; state: string; count: number }>;

export class GatewayMetrics {
  readonly registry = new Registry();
  readonly requests = new Counter({
    name: 'gateway_requests_total',
    help: 'Requests answered, by endpoint, provider, model, cache outcome and HTTP status.',
    labelNames: ['endpoint', 'provider', 'model', 'cache', 'status'] as const,
    registers: [this.registry],
  });
  readonly cacheHits = this.endpointCounter('gateway_cache_hits_total', 'Requests answered from the cache.');
  readonly cacheMisses = this.endpointCounter('gateway_cache_misses_total', 'Cache lookups that found nothing and went upstream.');
  readonly cacheCoalesced = this.endpointCounter(
    'gateway_cache_coalesced_total',
    'Requests that joined an identical request already in flight instead of going upstream.',
  );
  readonly requestDuration = new Histogram({
    name: 'gateway_request_duration_seconds',
    help: 'Time from request received to the last byte sent.',
    labelNames: ['endpoint', 'cache'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly timeToFirstByte = new Histogram({
    name: 'gateway_time_to_first_byte_seconds',
    help: 'Time from request received to the first body byte sent (streams: the first SSE event).',
    labelNames: ['endpoint', 'cache'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly upstreamDuration = new Histogram({
    name: 'gateway_upstream_duration_seconds',
    help: 'Time from sending an upstream request to its response headers.',
    labelNames: ['provider'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly upstreamErrors = new Counter({
    name: 'gateway_upstream_errors_total',
    help: 'Upstream attempts that failed: HTTP status >= 400, or 0 for a connection failure or timeout.',
    labelNames: ['provider', 'status'] as const,
    registers: [this.registry],
  });
  readonly tokens = new Counter({
    name: 'gateway_tokens_total',
    help: 'Tokens of answered requests, from the provider usage; cache=hit counts tokens that were not paid again.',
    labelNames: ['provider', 'model', 'type', 'cache'] as const,
    registers: [this.registry],
  });
  readonly cost = new Counter({
    name: 'gateway_cost_usd_total',
    help: 'USD spent upstream, from usage and the price table.',
    labelNames: ['provider', 'model'] as const,
    registers: [this.registry],
  });
  readonly costSaved = new Counter({
    name: 'gateway_cost_saved_usd_total',
    help: 'USD that cache hits and coalesced answers would have cost upstream.',
    labelNames: ['provider', 'model'] as const,
    registers: [this.registry],
  });
  readonly upstreamKeys: Gauge<'provider' | 'state'>;
  readonly cacheUp = new Gauge({
    name: 'gateway_cache_up',
    help: '1 when the cache backend answers (always 1 for the embedded cache).',
    registers: [this.registry],
  });
  readonly fallbacks = new Counter({
    name: 'gateway_fallbacks_total',
    help: 'Requests sent to a fallback model because the provider asked could not answer (MODELS_FILE fallbacks).',
    labelNames: ['provider', 'to_provider'] as const,
    registers: [this.registry],
  });
  readonly providerUp = new Gauge({
    name: 'gateway_provider_up',
    help: "1 while a provider's circuit breaker is closed; 0 while it is open or probing after repeated failures.",
    labelNames: ['provider'] as const,
    registers: [this.registry],
  });
  readonly cacheErrors = new Counter({
    name: 'gateway_cache_errors_total',
    help: 'Cache backend operations that failed (the request was still served).',
    labelNames: ['op'] as const,
    registers: [this.registry],
  });

  constructor(keyStates: KeyStateReader) {
    collectDefaultMetrics({ register: this.registry });
    this.upstreamKeys = new Gauge({
      name: 'gateway_upstream_keys',
      help: 'Provider keys by state.',
      labelNames: ['provider', 'state'] as const,
      registers: [this.registry],
      collect() {
        for (const sample of keyStates()) this.set({ provider: sample.provider, state: sample.state }, sample.count);
      },
    });
    // Zero series from start-up: every name present, zero-valued where nothing happened yet, so
    // rates and alerts work from the first scrape. Only label combinations the gateway really
    // produces are created.
    for (const endpoint of CACHED_ENDPOINTS) {
      this.cacheHits.inc({ endpoint }, 0);
      this.cacheMisses.inc({ endpoint }, 0);
      this.cacheCoalesced.inc({ endpoint }, 0);
    }
    for (const endpoint of ENDPOINTS) {
      // An unroutable model: the one answer every endpoint can give before any provider is chosen.
      this.requests.inc({ endpoint, provider: 'none', model: 'other', cache: 'BYPASS', status: '404' }, 0);
      for (const cache of outcomesOf(endpoint)) {
        this.requestDuration.zero({ endpoint, cache });
        this.timeToFirstByte.zero({ endpoint, cache });
      }
    }
    for (const op of CACHE_OPS) this.cacheErrors.inc({ op }, 0);
    for (const provider of PROVIDER_NAMES) {
      this.upstreamDuration.zero({ provider });
      for (const status of WATCHED_UPSTREAM_STATUSES) this.upstreamErrors.inc({ provider, status }, 0);
      for (const state of KEY_STATES) this.upstreamKeys.set({ provider, state }, 0);
      this.providerUp.set({ provider }, 1);
      for (const to_provider of PROVIDER_NAMES) this.fallbacks.inc({ provider, to_provider }, 0);
    }
    this.cacheUp.set(1);
  }

  private endpointCounter(name: string, help: string): Counter<'endpoint'> {
    return new Counter({ name, help, labelNames: ['endpoint'] as const, registers: [this.registry] });
  }
}
