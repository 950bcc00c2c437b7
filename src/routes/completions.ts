/** The three cached routes, under OpenAI's layout (/v1) and Groq's (/openai/v1). */
import type { FastifyInstance } from 'fastify';
import { handleCachedRoute, type CompletionDeps } from '../completions/handler.js';
import { CACHED_ROUTE_PATHS, type CachedRoute } from '../completions/prepare.js';

export function registerCompletionRoutes(app: FastifyInstance, deps: CompletionDeps): void {
  for (const prefix of ['/v1', '/openai/v1']) {
    for (const [route, path] of Object.entries(CACHED_ROUTE_PATHS) as Array<[CachedRoute, string]>) {
      app.post(prefix + path, async (request, reply) => {
        request.gw.endpoint = route;
        await handleCachedRoute(route, request, reply, deps);
        return reply;
      });
    }
  }
}
