/** The three cached routes, under OpenAI's layout (/v1) and Groq's (/openai/v1). */
import type { FastifyInstance, FastifyReply, FastifyRequest, RequestPayload } from 'fastify';
import { handleCachedRoute, type CompletionDeps } from '../completions/handler.js';
import { handoffOf, replayBody } from '../completions/handoff.js';
import { CACHED_ROUTE_URLS } from '../completions/prepare.js';

/** A request the hit fast path read but handed on: its body comes from the handoff. */
function replayFastPathBody(request: FastifyRequest, _reply: FastifyReply, payload: RequestPayload, done: (error: Error | null, payload?: RequestPayload) => void): void {
  const handoff = handoffOf(request.raw);
  done(null, handoff ? replayBody(handoff) : payload);
}

export function registerCompletionRoutes(app: FastifyInstance, deps: CompletionDeps): void {
  for (const { route, url } of CACHED_ROUTE_URLS) {
    app.post(url, { preParsing: replayFastPathBody }, async (request, reply) => {
      request.gw.endpoint = route;
      await handleCachedRoute(route, request, reply, deps);
      return reply;
    });
  }
}
