/**
 * The one writer of a gateway error straight to a node:http response, for every request the
 * gateway refuses outside Fastify's routes: a cached-route request refused before any answer of a
 * provider or the cache (bad key, bad body, unknown model...), a request arriving while the
 * gateway shuts down, and the HTTP edge's refusals (too many header fields, no Host, an Expect
 * other than 100-continue). Written as Fastify's error handler writes every other route's
 * errors, so a client sees one error head whatever it called: x-request-id, `connection: close`
 * when the connection is not kept, what the error adds (x-should-retry, retry-after), then the
 * content headers.
 */
import type { ServerResponse } from 'node:http';
import type { GatewayError } from '../errors.js';

/** Fastify's content type for the JSON it serialises, kept so an error reads the same on every route. */
export const ERROR_CONTENT_TYPE = 'application/json; charset=utf-8';

/** Writes the refusal whole; the number of body bytes written. */
export function writeRefusal(response: ServerResponse, requestId: string, error: GatewayError, closeConnection: boolean): number {
  const body = Buffer.from(JSON.stringify(error.toBody()));
  const head = closeConnection ? ['x-request-id', requestId, 'connection', 'close'] : ['x-request-id', requestId];
  for (const name in error.headers) head.push(name, error.headers[name]!);
  head.push('content-type', ERROR_CONTENT_TYPE, 'content-length', String(body.byteLength));
  response.writeHead(error.statusCode, head);
  response.end(body);
  return body.byteLength;
}
