/**
 * The JSON body parser of every route Fastify parses (the cached routes have their own pipeline,
 * pipeline/cached-request.ts, with the same rules; the passthrough keeps its own, which forwards
 * bytes). It parses as Fastify's default does, with secure-json-parse
 * refusing `__proto__` and `constructor.prototype` keys, but keeps the reason a body was refused:
 * Fastify's own parser turns every failure into one "not valid JSON" error, so a client whose
 * JSON was fine but carried such a key was told its JSON was broken. toGatewayError (errors.ts)
 * says what is actually wrong.
 */
import { errorCodes, type FastifyInstance } from 'fastify';
import secureJson from 'secure-json-parse';

/**
 * Fastify's defaults (onProtoPoisoning, onConstructorPoisoning): such keys are refused, not
 * removed. The cached routes' pipeline parses with the same options.
 */
export const PARSE_OPTIONS = { protoAction: 'error', constructorAction: 'error' } as const;

export function registerJsonBodyParser(app: FastifyInstance): void {
  // Registered under the very same media type, so the same Content-Type values reach it.
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => {
    if (body === '') return done(new errorCodes.FST_ERR_CTP_EMPTY_JSON_BODY(), undefined);
    try {
      done(null, secureJson.parse(body as string, undefined, PARSE_OPTIONS));
    } catch (error) {
      done(error as Error, undefined);
    }
  });
}
