/**
 * The cached routes' way in. Every POST to one of CACHED_PATHS (the query ignored, as Fastify's
 * router ignored it; the cache key never includes the URL) is owned here from its first byte to
 * its log line, hit or miss: nothing of it reaches Fastify. Every other request goes to Fastify.
 *
 * Owning the request at the HTTP server is what keeps a hit cheap (no request and reply objects,
 * child logger, hooks, router or serialiser: about what serving a constant costs) and a miss free
 * of a second parse and of a body replayed into Fastify.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { CACHED_PATHS } from '../endpoints.js';
import { CachedRequest, type CachedRoute, type PipelineState } from './cached-request.js';
import { KnownRequests } from './known-requests.js';
import type { PipelineDeps } from './pipeline-deps.js';

const ROUTES = new Map<string, CachedRoute>(CACHED_PATHS.map((route) => [route.path, route]));

export class CachedRequests implements PipelineState {
  readonly knownRequests = new KnownRequests();

  constructor(readonly deps: PipelineDeps) {}

  /** Takes (true) and answers a POST to a cached route; false: not one, for Fastify. */
  offer(request: IncomingMessage, response: ServerResponse): boolean {
    if (request.method !== 'POST') return false;
    const route = ROUTES.get(pathOf(request.url ?? ''));
    if (route === undefined) return false;
    new CachedRequest(this, request, response, route).start();
    return true;
  }
}

/** The path of a request target, without its query (or a fragment, which the router drops too). */
function pathOf(url: string): string {
  for (let i = 0; i < url.length; i++) {
    const c = url.charCodeAt(i);
    if (c === 0x3f || c === 0x23) return url.slice(0, i);
  }
  return url;
}
