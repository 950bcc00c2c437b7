/**
 * The cached routes' POSTs never reach Fastify: the HTTP server hands each to the pipeline
 * (pipeline/cached-requests.ts). Fastify still holds a route for them, so that a request that
 * reached it anyway (only inject(), which skips the HTTP server, can) is refused instead of
 * being matched by the passthrough and forwarded unvalidated and uncached.
 */
import type { FastifyInstance } from 'fastify';
import { CACHED_PATHS } from '../endpoints.js';
import { errors } from '../errors.js';

export function registerCachedRouteGuard(app: FastifyInstance): void {
  for (const { path } of CACHED_PATHS) {
    app.post(path, async () => {
      throw errors.internal(new Error('a cached route reached Fastify; it is served by the pipeline at the HTTP server'));
    });
  }
}
