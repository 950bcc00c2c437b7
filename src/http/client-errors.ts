/**
 * Answers to what never reaches Fastify's routes: requests Node's HTTP parser refuses
 * ('clientError': bad framing, oversize headers, a NUL in a header, a bad method...), requests
 * not received in time (Node's headersTimeout / requestTimeout), an `Expect` other than
 * 100-continue, CONNECT, and an HTTP/1.1 request without Host. Node's own answers to these have
 * empty bodies and Fastify's are not in OpenAI's shape; Fastify also logs the parser error at
 * trace level with `rawPacket`, the raw request bytes, client key included.
 *
 * Each kind gets a fixed message: nothing the client sent is echoed or logged, and the
 * connection is closed (the parser state after such an error cannot be trusted).
 */
import { randomUUID } from 'node:crypto';
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { GatewayError } from '../errors.js';
import { ERROR_CONTENT_TYPE, writeRefusal } from './write-refusal.js';

export interface EdgeRefusal {
  status: number;
  code: string;
  message: string;
}

const TIMEOUT: EdgeRefusal = { status: 408, code: 'request_timeout', message: 'The request (headers and body) was not received in time.' };
const HEADERS_TOO_LARGE: EdgeRefusal = { status: 431, code: 'request_headers_too_large', message: 'The request headers are too large.' };
const URL_TOO_LONG: EdgeRefusal = { status: 414, code: 'request_url_too_long', message: 'The request URL is too long.' };
const FRAMING = 'The request framing is invalid: send one Content-Length or Transfer-Encoding: chunked, not both, never twice.';
const MALFORMED: EdgeRefusal = { status: 400, code: 'malformed_request', message: 'The request is not valid HTTP/1.1.' };

/** Node's parser (llhttp) error codes and ERR_HTTP_REQUEST_TIMEOUT, to the answer each deserves. */
const BY_CODE: ReadonlyMap<string, EdgeRefusal> = new Map([
  ['ERR_HTTP_REQUEST_TIMEOUT', TIMEOUT],
  ['HPE_HEADER_OVERFLOW', HEADERS_TOO_LARGE],
  ['HPE_CHUNK_EXTENSIONS_OVERFLOW', { status: 413, code: 'request_too_large', message: 'The chunk extensions of the request body are too large.' }],
  ['HPE_INVALID_METHOD', { status: 400, code: 'invalid_method', message: 'The request method is not valid.' }],
  ['HPE_INVALID_URL', { status: 400, code: 'invalid_url', message: 'The request URL is not valid.' }],
  ['HPE_INVALID_VERSION', { status: 400, code: 'unsupported_http_version', message: 'Only HTTP/1.0 and HTTP/1.1 are supported.' }],
  ['HPE_INVALID_CONSTANT', MALFORMED],
  ['HPE_UNEXPECTED_CONTENT_LENGTH', { status: 400, code: 'invalid_content_length', message: FRAMING }],
  ['HPE_INVALID_CONTENT_LENGTH', { status: 400, code: 'invalid_content_length', message: 'The Content-Length header is not valid.' }],
  ['HPE_INVALID_TRANSFER_ENCODING', { status: 400, code: 'invalid_transfer_encoding', message: FRAMING }],
  ['HPE_INVALID_CHUNK_SIZE', { status: 400, code: 'invalid_chunked_body', message: 'The chunked request body is malformed.' }],
  ['HPE_INVALID_HEADER_TOKEN', { status: 400, code: 'invalid_header', message: 'A request header has an invalid name or value.' }],
  ['HPE_LF_EXPECTED', MALFORMED],
  ['HPE_CR_EXPECTED', MALFORMED],
]);

/** Node counts the request line in its header size limit (16 KiB): a line that long is a long URL. */
const LONG_REQUEST_LINE = 8 * 1024;

/** The answer to a 'clientError': by the parser's error code, never by what the client sent. */
function refusalForClientError(error: { code?: string; rawPacket?: unknown }): EdgeRefusal {
  const refusal = (error.code !== undefined && BY_CODE.get(error.code)) || MALFORMED;
  if (refusal === HEADERS_TOO_LARGE && requestLineIsLong(error.rawPacket)) return URL_TOO_LONG;
  return refusal;
}

/**
 * Whether the bytes the parser choked on open with a request line longer than 8 KiB. Only the
 * last chunk read is known, so a URL sent slowly in many pieces is answered 431: still right
 * in substance, the headers section is what overflowed.
 */
function requestLineIsLong(rawPacket: unknown): boolean {
  if (!Buffer.isBuffer(rawPacket) || rawPacket.length <= LONG_REQUEST_LINE) return false;
  const lineEnd = rawPacket.indexOf(10);
  if (lineEnd !== -1 && lineEnd <= LONG_REQUEST_LINE) return false;
  // A method token then a space: the chunk starts a request, it is not the middle of a header.
  const space = rawPacket.indexOf(32);
  return space > 0 && space <= 20 && /^[A-Z]+$/.test(rawPacket.toString('latin1', 0, space));
}

/** Only a 408 may succeed when sent again; everything else is the client's mistake. */
function edgeError(refusal: EdgeRefusal): GatewayError {
  const retry: Record<string, string> = refusal.status === 408 ? {} : { 'x-should-retry': 'false' };
  return new GatewayError(refusal.status, 'invalid_request_error', refusal.code, refusal.message, retry);
}

/** The whole response, written straight to a socket Node's HTTP layer gave up on. */
function rawResponse(refusal: EdgeRefusal): string {
  const error = edgeError(refusal);
  const body = JSON.stringify(error.toBody());
  const retry = Object.entries(error.headers)
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join('');
  return (
    `HTTP/1.1 ${refusal.status} ${STATUS_CODES[refusal.status] ?? 'Error'}\r\n` +
    `x-request-id: ${randomUUID()}\r\n${retry}` +
    `content-type: ${ERROR_CONTENT_TYPE}\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`
  );
}

/** The response Node has begun on this connection, if any (a pipelined request's, a stream...). */
function responseInProgress(socket: Duplex): boolean {
  const current = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } | null })._httpMessage;
  return current?.headersSent === true;
}

/**
 * Fastify's `clientErrorHandler`: answers in OpenAI's shape when nothing has been written on the
 * connection yet, then closes it, as Node's own handler does. Logged at debug, by code only:
 * the error carries the raw bytes (`rawPacket`), which hold the client's Authorization header.
 */
export function clientErrorHandler(log: Logger): (error: Error & { code?: string; rawPacket?: unknown }, socket: Duplex) => void {
  return (error, socket) => {
    // A reset connection has no one to answer.
    if (error.code === 'ECONNRESET' || socket.destroyed) return;
    const refusal = refusalForClientError(error);
    log.debug({ code: error.code, status: refusal.status }, 'client error');
    // Written in one piece while the connection is fresh: the kernel takes it before the close.
    if (socket.writable && !responseInProgress(socket)) socket.write(rawResponse(refusal));
    socket.destroy();
  };
}

/** Answers a request through its ServerResponse, closing the connection after it. */
export function refuseRequest(response: ServerResponse, refusal: EdgeRefusal, requestId: string): void {
  writeRefusal(response, requestId, edgeError(refusal), true);
}

export const EDGE_REFUSALS = {
  expectationFailed: {
    status: 417,
    code: 'expectation_failed',
    message: 'The Expect header is not supported: only "Expect: 100-continue" is.',
  },
  tooManyHeaders: { status: 431, code: 'request_headers_too_large', message: 'The request carries too many header fields.' },
  missingHost: { status: 400, code: 'missing_host', message: 'HTTP/1.1 requests must carry a Host header.' },
  connectRefused: { status: 405, code: 'method_not_allowed', message: 'CONNECT is not supported: this is not a proxy.' },
} as const satisfies Record<string, EdgeRefusal>;

/** A CONNECT never becomes a request: its socket is handed over raw, so the answer is written raw. */
export function refuseConnect(socket: Duplex): void {
  if (socket.writable) socket.write(rawResponse(EDGE_REFUSALS.connectRefused));
  socket.destroy();
}

/**
 * Whether an error answer closes its connection: always after a 401 (a client without a valid
 * key is not kept), and after any error answered before the request's body was all received:
 * on a kept connection Node reads the rest of that body first, for as long as the client
 * dribbles it.
 */
export function closesConnection(status: number, request: IncomingMessage): boolean {
  return status === 401 || (status >= 400 && !request.complete);
}
