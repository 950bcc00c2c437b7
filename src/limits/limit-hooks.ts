/**
 * Budgets and rate limits on the routes Fastify serves (the cached routes ask in their pipeline):
 * every authenticated request is counted for its user and refused past the user's requests per
 * minute; a forwarded request that carries a body (audio, images: paid by the provider) is refused
 * while a budget is spent. Model lists and reads of files cost nothing and pass.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Maybe } from './counters.js';
import type { Admission, Limits } from './limits.js';

export function registerLimitHooks(app: FastifyInstance, limits: Limits): void {
  // Callback style: no promise on the way of a request that nothing needs to wait for.
  app.addHook('onRequest', (request, _reply, done) => {
    const user = request.gw?.user;
    if (user === undefined) return done();
    answerAdmission(limits.admitRequest(user), done);
  });
  // After the passthrough's preValidation chose the provider, before anything is sent to it.
  app.addHook('preHandler', (request: FastifyRequest, _reply: FastifyReply, done) => {
    const user = request.gw?.user;
    if (user === undefined || request.gw.endpoint !== 'passthrough' || request.method === 'GET' || request.method === 'HEAD') return done();
    answerAdmission(limits.admitPaidCall(user), done);
  });
}

/** Goes on with the request, or answers it with the refusal; a check that failed admits it. */
function answerAdmission(admitted: Maybe<Admission>, done: (error?: Error) => void): void {
  if (admitted instanceof Promise) {
    admitted.then(
      (refusal) => done(refusal),
      () => done(),
    );
    return;
  }
  done(admitted);
}
