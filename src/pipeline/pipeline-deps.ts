/** What the cached routes' pipeline is built on, made once by buildServer. */
import type { Logger } from 'pino';
import type { Accounting } from '../accounting.js';
import type { ClientAuth } from '../auth.js';
import type { RegenerationTracker } from '../cache/regeneration.js';
import type { SingleFlight } from '../cache/single-flight.js';
import type { CacheStore } from '../cache/store.js';
import type { Config } from '../config.js';
import type { GatewayMetrics } from '../metrics.js';
import type { ProviderName } from '../providers/provider-name.js';
import type { Limits } from '../limits/limits.js';
import type { ModelRouter } from '../routing.js';
import type { ProviderHealth } from '../upstream/circuit-breaker.js';
import type { UpstreamClient } from '../upstream/client.js';
import type { Flight } from './flight.js';
import type { ReplicaFlights } from './replica-flights.js';

export interface PipelineDeps {
  config: Config;
  auth: ClientAuth;
  router: ModelRouter;
  clients: Readonly<Record<ProviderName, UpstreamClient>>;
  /** Each provider's circuit breaker, kept by the flights' fallback chains. */
  health: ProviderHealth;
  store: CacheStore | undefined;
  flights: SingleFlight<Flight>;
  /** Coalescing across replicas: set only when the cache is on Redis. */
  replicaFlights?: ReplicaFlights;
  regenerations: RegenerationTracker;
  metrics: GatewayMetrics;
  accounting: Accounting;
  /** Budgets and rate limits: asked before a request is read and before a paid upstream call. */
  limits: Limits;
  log: Logger;
  /** Where the one line per request goes (logger.ts's requestLineLogger). */
  requestLog: Logger;
}
