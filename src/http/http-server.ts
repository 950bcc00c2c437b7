/**
 * The gateway's node:http server: how long a client may take to send a request, how long an
 * idle connection is kept, how many connections may be open, and the OpenAI-shaped answers to
 * what Node would otherwise answer itself with an empty body (an unsupported Expect, CONNECT,
 * a missing Host). Parser errors and timeouts are answered by client-errors.ts, installed as
 * Fastify's clientErrorHandler (Fastify adds its own 'clientError' listener otherwise).
 */
import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from 'node:http';
import type { Config } from '../config.js';
import { requestIdOf } from './request-id.js';
import { EDGE_REFUSALS, refuseConnect, refuseRequest } from './client-errors.js';

/**
 * Most header fields a request may carry (clients send a few dozen). Node keeps the first 2,000
 * and silently drops the rest, and so does the provider's server: a request padded past that
 * pushed the provider key the passthrough adds out of the forwarded headers, and the provider's
 * 401 then disabled every key of the pool. Refused outright instead.
 */
export const MAX_HEADER_FIELDS = 100;

export type ClientLimits = Pick<Config, 'requestHeadersTimeoutMs' | 'requestTimeoutMs' | 'keepAliveTimeoutMs' | 'maxConnections'>;

/**
 * How often Node looks for requests past their timeout (its default, 30 s, would let a 1 s
 * timeout run to 31 s). The check walks the connections still receiving a request, in C++.
 */
function checkingIntervalMs(limits: ClientLimits): number {
  return Math.min(1_000, Math.max(50, Math.floor(limits.requestHeadersTimeoutMs / 4)));
}

export function createGatewayHttpServer(limits: ClientLimits, onRequest: RequestListener): Server {
  const server = createServer(
    {
      // Node's requestTimeout runs from a request's first byte until its last one is received,
      // never while the answer is written: a long stream is not cut by it.
      requestTimeout: limits.requestTimeoutMs,
      headersTimeout: limits.requestHeadersTimeoutMs,
      // The SDKs and Open WebUI keep connections open; more than Node's 5 s default, and more
      // than a proxy's usual 60 s upstream keep-alive, so the proxy closes first (no race).
      keepAliveTimeout: limits.keepAliveTimeoutMs,
      connectionsCheckingInterval: checkingIntervalMs(limits),
      // Node would answer 400 with an empty body: answered below in OpenAI's shape.
      requireHostHeader: false,
    },
    (request, response) => {
      if (request.rawHeaders.length > MAX_HEADER_FIELDS * 2) {
        return refuseRequest(response, EDGE_REFUSALS.tooManyHeaders, requestIdOf(request));
      }
      if (request.headers.host === undefined && request.httpVersionMajor === 1 && request.httpVersionMinor === 1) {
        return refuseRequest(response, EDGE_REFUSALS.missingHost, requestIdOf(request));
      }
      onRequest(request, response);
    },
  );
  // No inactivity timeout on the socket: a stream may be silent for as long as its upstream is
  // (UPSTREAM_IDLE_TIMEOUT_MS bounds that); receiving the request is bounded above.
  server.setTimeout(0);
  if (limits.maxConnections > 0) server.maxConnections = limits.maxConnections;
  // Without a listener Node answers 417 with an empty body. 100-continue is not affected: Node
  // sends "100 Continue" itself and the request goes on as usual (the cached routes' pipeline relies on it).
  server.on('checkExpectation', (request: IncomingMessage, response: ServerResponse) => {
    refuseRequest(response, EDGE_REFUSALS.expectationFailed, requestIdOf(request));
  });
  // Without a listener Node closes the socket without a word.
  server.on('connect', (_request: IncomingMessage, socket) => refuseConnect(socket));
  return server;
}
