/**
 * The hit fast path: a request to a cached endpoint that the cache can answer is answered here, at the
 * HTTP server, before Fastify's request lifecycle (request and reply objects, a child logger,
 * hooks, routing, body parser, serialisation). A cache hit then costs about what serving a
 * constant body costs. Everything else, and every doubt, goes to Fastify:
 *
 * - before the body is read (wrong method, path or content type, bad or missing key, chunked or
 *   encoded body, too large): untouched, as if the fast path did not exist;
 * - after it (invalid body, routing that needs I/O, a cache control that skips the lookup, a
 *   regeneration, an identical request in flight, a miss, a store error): handed off with the
 *   body, what was worked out from it and the store's answer (handoff.ts), so the store is read
 *   once and the body hashed once.
 *
 * A hit answered here has the same status, headers, body, metrics and log line as one answered
 * by the handler (test/cache-fast-path.test.ts compares them).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isJsonContentType } from '../http/json-content-type.js';
import { FastRequest, type FastPathState, type FastRoute, type HitFastPathDeps, type RequestHandler } from './fast-hit-request.js';
import { KnownRequests } from './known-requests.js';
import { CACHED_PATHS } from '../endpoints.js';

export { requestIdOf } from './fast-hit-request.js';

/** Exact request targets only: anything with a query string or an odd spelling goes to Fastify. */
const FAST_ROUTES = new Map<string, FastRoute>(CACHED_PATHS.map((target) => [target.path, target]));

export class HitFastPath implements FastPathState {
  readonly knownRequests = new KnownRequests();

  constructor(readonly deps: HitFastPathDeps) {}

  /**
   * Takes the request (true) when it may be a cache hit; it then either answers it or hands it
   * to `fallback` once its body is read. false: untouched, the caller passes it to Fastify.
   */
  offer(request: IncomingMessage, response: ServerResponse, fallback: RequestHandler): boolean {
    if (request.method !== 'POST') return false;
    const target = FAST_ROUTES.get(request.url ?? '');
    if (!target || !this.deps.config.cacheEnabled || !this.deps.store) return false;
    const headers = request.headers;
    if (headers['transfer-encoding'] !== undefined || headers['content-encoding'] !== undefined) return false;
    if (!isJsonContentType(headers['content-type'])) return false;
    const length = contentLength(headers['content-length']);
    if (length === undefined || length === 0 || length > this.deps.config.bodyLimitBytes) return false;
    const { ok, key } = this.deps.auth.check(headers.authorization);
    if (!ok) return false;
    new FastRequest(this, request, response, fallback, target, key, length).start();
    return true;
  }
}

function contentLength(value: string | undefined): number | undefined {
  if (value === undefined || !/^\d{1,10}$/.test(value)) return undefined;
  return Number(value);
}
