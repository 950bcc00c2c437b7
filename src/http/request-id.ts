/**
 * The id of a request, in its X-Request-ID answer header and its log line: the client's own when
 * it is a sane token (so a client can follow its request through the gateway's logs), else a new
 * UUID. Fastify's genReqId and the cached routes' pipeline both take it from here.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

const REQUEST_ID = /^[\w.:@-]{1,128}$/;

export function requestIdOf(request: IncomingMessage): string {
  const sent = request.headers['x-request-id'];
  return typeof sent === 'string' && REQUEST_ID.test(sent) ? sent : randomUUID();
}
