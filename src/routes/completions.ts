/** The Fastify routes of the three cached endpoints, under OpenAI's layout (/v1) and Groq's (/openai/v1). */
import type { FastifyInstance, FastifyReply, FastifyRequest, RequestPayload } from 'fastify';
import { handleCachedRoute, type CompletionDeps } from '../completions/handler.js';
import { handoffOf, replayBody } from '../completions/handoff.js';
import { CACHED_PATHS } from '../endpoints.js';

/** A request the hit fast path read but handed on: its body comes from the handoff. */
function replayFastPathBody(request: FastifyRequest, _reply: FastifyReply, payload: RequestPayload, done: (error: Error | null, payload?: RequestPayload) => void): void {
  const handoff = handoffOf(request.raw);
  done(null, handoff ? replayBody(handoff) : payload);
}

export function registerCompletionRoutes(app: FastifyInstance, deps: CompletionDeps): void {
  for (const { endpoint, path } of CACHED_PATHS) {
    app.post(path, { preParsing: replayFastPathBody }, async (request, reply) => {
      request.gw.endpoint = endpoint;
      await handleCachedRoute(endpoint, request, reply, deps);
      return reply;
    });
  }
}
