/**
 * buildServer(config, deps?) wires the gateway together and registers every route; it never
 * listens. Dependencies (logger destination, cache store) can be passed in so tests swap them.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply } from 'fastify';
import type { DestinationStream } from 'pino';
import type { Dispatcher } from 'undici';
import { Accounting } from './accounting.js';
import { ClientAuth, cacheScopeOf } from './auth.js';
import { createCacheStore } from './cache/create-store.js';
import { regenerationsFor } from './cache/shared-regenerations.js';
import { SingleFlight } from './cache/single-flight.js';
import type { CacheStore } from './cache/store.js';
import type { Config } from './config.js';
import { endpointOf } from './endpoints.js';
import { errors, toGatewayError } from './errors.js';
import { clientErrorHandler, closesConnection } from './http/client-errors.js';
import { createGatewayHttpServer } from './http/http-server.js';
import { requestIdOf } from './http/request-id.js';
import { writeRefusal } from './http/write-refusal.js';
import { normaliseRequestTarget, targetRefusalOf } from './http/request-target.js';
import { loadProviderKeys, startKeyReloading } from './keys/lifecycle.js';
import { createKeyPools, keyStateSamples } from './keys/pools.js';
import { registerJsonBodyParser } from './json-body.js';
import { createLogger, requestLineLogger } from './logger.js';
import { GatewayMetrics } from './metrics.js';
import { loadPrices } from './pricing/prices.js';
import { providersFromConfig } from './providers/index.js';
import { PROVIDER_NAMES, type ProviderName } from './providers/provider-name.js';
import { ModelLists } from './providers/model-lists.js';
import { CachedRequests } from './pipeline/cached-requests.js';
import type { Flight } from './pipeline/flight.js';
import { overlongOpenWebUiHeader } from './pipeline/openwebui-headers.js';
import { replicaFlightsOf } from './pipeline/replica-flights-of.js';
import { registerReplicasGauge } from './pipeline/replica-presence.js';
import { newRequestContext } from './request-context.js';
import { observeRequest, observeRequests } from './request-log.js';
import { ModelRouter } from './routing.js';
import { loadModelPolicy, startModelPolicyReloading } from './models-policy/lifecycle.js';
import type { FileChangeTiming } from './reload/file-changes.js';
import { type BreakerOptions, ProviderHealth } from './upstream/circuit-breaker.js';
import { registerCachedRouteGuard } from './routes/cached-route-guard.js';
import { registerHealthRoutes } from './routes/health.js';
import { registerMetricsRoute } from './routes/metrics.js';
import { ADMIN_USAGE_PATH, registerAdminUsageRoute } from './routes/admin-usage.js';
import { createLimits } from './limits/create-limits.js';
import { registerLimitHooks } from './limits/limit-hooks.js';
import { userOf } from './limits/user-id.js';
import { registerModelRoutes } from './routes/models.js';
import { registerPassthrough } from './routes/passthrough.js';
import { UpstreamClient } from './upstream/client.js';
import { createProviderDispatcher, createUpstreamPool } from './upstream/pool.js';
import type { UpstreamObserver } from './upstream/upstream-policy.js';

export interface ServerDeps {
  /** Where log lines go (tests capture them); stdout by default. */
  logDestination?: DestinationStream;
  /** A ready cache store; by default one is made from the config. */
  store?: CacheStore;
  /** The providers' circuit breakers' thresholds and times (tests shorten them). */
  breaker?: BreakerOptions;
  /** How MODELS_FILE is watched (tests poll faster). */
  modelsFileWatch?: FileChangeTiming;
  /** The clock budgets and rate limits count periods by (ms since the epoch); Date.now by default. */
  clock?: () => number;
}

const OPEN_PATHS = new Set(['/healthz', '/readyz', '/metrics', ADMIN_USAGE_PATH]);

/**
 * A request that arrives on an open connection while the server closes: 503 in OpenAI's shape
 * (Fastify's own would be {"error":"Service Unavailable",…}), retry-after 1 s, connection closed.
 */
function refuseWhileClosing(request: IncomingMessage, response: ServerResponse): void {
  writeRefusal(response, requestIdOf(request), errors.shuttingDown(), true);
}

export async function buildServer(config: Config, deps: ServerDeps = {}): Promise<FastifyInstance> {
  // First: a bad PRICES_FILE must stop start-up before anything is opened (Redis, watchers).
  const prices = loadPrices(config.pricesFile);
  const modelPolicies = loadModelPolicy(config.modelsFile);
  const log = createLogger(config.logLevel, deps.logDestination);
  const requestLog = requestLineLogger(log);
  const keys = await loadProviderKeys(config);
  const pools = createKeyPools(keys, { defaultCooldownMs: config.keyCooldownMs, log });
  const metrics = new GatewayMetrics(() => keyStateSamples(pools));
  // Before the cache store is opened: a bad LIMITS_FILE stops start-up with nothing left open.
  const { limits, close: closeLimits } = await createLimits(config, metrics.registry, log, deps.clock);
  const store = deps.store ?? (config.cacheEnabled ? await createCacheStore(config, metrics, log) : undefined);
  const providers = providersFromConfig(config);
  const upstreamPools = PROVIDER_NAMES.map((name) => createUpstreamPool(providers[name].origin, config));
  // Every attempt of every upstream call (cached routes, model lists, passthrough) lands here once.
  const observer: UpstreamObserver = {
    attempt(provider, status, seconds) {
      metrics.upstreamDuration.observe({ provider }, seconds);
      if (status === 0 || status >= 400) metrics.upstreamErrors.inc({ provider, status: String(status) });
    },
  };
  const dispatchers = Object.fromEntries(
    PROVIDER_NAMES.map((name, index) => [
      name,
      createProviderDispatcher(upstreamPools[index]!, { provider: name, keys: pools[name], maxRetries: config.upstreamMaxRetries, log, observer }),
    ]),
  ) as Record<ProviderName, Dispatcher>;
  const clients = Object.fromEntries(
    PROVIDER_NAMES.map((name) => [name, new UpstreamClient(providers[name], dispatchers[name], config.upstreamMaxRetries, log)]),
  ) as Record<ProviderName, UpstreamClient>;
  const lists = new ModelLists(clients, (provider) => pools[provider].size > 0, config.modelsCacheSeconds * 1000, log);
  const router = new ModelRouter(providers, lists, modelPolicies);
  const health = new ProviderHealth(deps.breaker, (provider, up) => metrics.providerUp.set({ provider }, up ? 1 : 0));
  const accounting = new Accounting(metrics, prices, (model) => lists.isKnown(model), log);
  accounting.onPaidCall = (payer, costUsd, usage) => limits.charge(payer ?? 'unknown', costUsd, usage);
  const auth = new ClientAuth(config.gatewayApiKeys);
  // Shared with the other replicas through Redis when the cache is there.
  const regenerations = regenerationsFor(store);
  // Coalescing across replicas shares the store's Redis; a replica knows who else is there first.
  const replicaFlights = replicaFlightsOf(store, config.redisCommandTimeoutMs);
  await replicaFlights?.presence.ready;
  registerReplicasGauge(metrics.registry, replicaFlights?.presence);
  const cachedRequests = new CachedRequests({
    config,
    auth,
    router,
    clients,
    health,
    store,
    flights: new SingleFlight<Flight>(),
    replicaFlights,
    regenerations: regenerations.tracker,
    metrics,
    accounting,
    limits,
    log,
    requestLog,
  });
  /** Set as the server starts closing: requests still arriving on open connections get a 503. */
  let closing = false;

  const app = Fastify({
    loggerInstance: log as FastifyBaseLogger,
    // One line per request is written by request-log.ts, not Fastify's two.
    logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: 'id' }),
    bodyLimit: config.bodyLimitBytes,
    genReqId: requestIdOf,
    // The cached routes' POSTs are served by their own pipeline (pipeline/cached-requests.ts),
    // hit or miss, without Fastify's lifecycle; every other request goes through Fastify.
    serverFactory: (handler) =>
      createGatewayHttpServer(config, (request, response) => {
        if (closing) return refuseWhileClosing(request, response);
        normaliseRequestTarget(request);
        if (!cachedRequests.offer(request, response)) handler(request, response);
      }),
    // Node's parser errors and request timeouts, in OpenAI's shape; Fastify's own handler logs
    // the raw request bytes (the client's key with them) at trace level.
    clientErrorHandler: clientErrorHandler(log),
    // Requests through inject() only: those from the server are refused above, in OpenAI's shape.
    return503OnClosing: true,
    // A URL that cannot be decoded never reaches the hooks or the error handler: answer it here
    // in OpenAI's shape, with the request id (Fastify's own body is {"error":"Bad Request",…}).
    frameworkErrors: (_error, request, reply) => {
      const mapped = errors.invalidRequest('The request URL is malformed (invalid percent-encoding).');
      request.gw = newRequestContext();
      request.gw.error = mapped;
      // No hook runs for it either: write its one log line here.
      reply.raw.once('finish', () => observeRequest(request, reply as FastifyReply, metrics, accounting, requestLog));
      if (closesConnection(mapped.statusCode, request.raw)) void reply.header('connection', 'close');
      void (reply as FastifyReply)
        .code(mapped.statusCode)
        .headers({ ...mapped.headers, 'x-request-id': request.id })
        .type('application/json')
        .send(mapped.toBody());
    },
  });

  app.decorateRequest('gw', null as never);
  // Callback style, not async: no extra promise ticks on every request (hot path).
  app.addHook('onRequest', (request, reply, done) => {
    request.gw = newRequestContext();
    void reply.header('x-request-id', request.id);
    const refusal = targetRefusalOf(request.raw);
    if (refusal) return done(refusal);
    const path = request.url.split('?')[0] ?? '';
    if (OPEN_PATHS.has(path)) return done();
    request.gw.endpoint = endpointOf(path);
    const { ok, key } = auth.check(request.headers.authorization);
    if (!ok) return done(errors.invalidApiKey());
    // Before the ids are hashed or counted for their user, as on the cached routes.
    const overlong = overlongOpenWebUiHeader(request.headers);
    if (overlong) return done(overlong);
    request.gw.cacheScope = cacheScopeOf(config.cacheScope, request.headers, key);
    request.gw.user = userOf(request.headers, key);
    done();
  });
  observeRequests(app, metrics, accounting, requestLog);
  registerLimitHooks(app, limits);
  app.setErrorHandler(async (error, request, reply) => {
    const mapped = toGatewayError(error, config.bodyLimitBytes, request.headers['content-type'], request.headers['content-encoding']);
    if (mapped.statusCode >= 500) request.log.error({ err: error }, 'request failed');
    request.gw ??= newRequestContext();
    request.gw.error = mapped;
    if (reply.sent || reply.raw.headersSent) return;
    if (closesConnection(mapped.statusCode, request.raw)) void reply.header('connection', 'close');
    return reply.code(mapped.statusCode).headers(mapped.headers).type('application/json').send(mapped.toBody());
  });
  app.setNotFoundHandler(async (request) => {
    throw errors.routeNotFound(request.method, request.url);
  });

  registerJsonBodyParser(app);
  registerHealthRoutes(app, store, pools, health);
  registerMetricsRoute(app, metrics, config.metricsToken);
  registerAdminUsageRoute(app, limits, config, config.metricsToken);
  registerModelRoutes(app, lists, modelPolicies);
  registerCachedRouteGuard(app);
  await registerPassthrough(app, { providers, dispatchers, pools, router });

  // Routing by exact id needs the live lists: fetch them before the first request asks.
  app.addHook('onReady', async () => {
    void lists.all();
  });
  // isUp() only changes with traffic; a periodic ping keeps gateway_cache_up true to a remote
  // backend's state when idle (an embedded store's ping answers at once and costs nothing).
  const cachePing = store ? setInterval(() => void store.ping(), 5_000).unref() : undefined;
  const keyReloading = startKeyReloading(config, pools, keys, log);
  const modelPolicyReloading = startModelPolicyReloading(config.modelsFile, modelPolicies, log, deps.modelsFileWatch);
  app.addHook('preClose', (done) => {
    closing = true;
    done();
  });
  app.addHook('onClose', async () => {
    clearInterval(cachePing);
    keyReloading.close();
    modelPolicyReloading.close();
    await Promise.all(upstreamPools.map((pool) => pool.close()));
    await replicaFlights?.close();
    if (!deps.store) await store?.close();
    await closeLimits();
    await regenerations.close();
  });
  return app;
}
