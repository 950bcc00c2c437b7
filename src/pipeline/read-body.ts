/**
 * Reads a cached-route request's body in full, bounded by BODY_LIMIT_BYTES, with Fastify's
 * rules for it (the cached routes' answers did not change when they stopped going through
 * Fastify): a Content-Length over the limit is refused before any byte is read, bytes received
 * over it (a chunked body) the moment they pass it, and a body that ends short of its
 * Content-Length is refused. Node has already undone the chunked framing. Errors are Fastify's
 * codes, which toGatewayError maps to OpenAI-shaped answers.
 */
import type { IncomingMessage } from 'node:http';

/** What went wrong reading a body, in the codes toGatewayError knows (Fastify's). */
export interface BodyError {
  code?: string;
  statusCode?: number;
  message?: string;
}

export type BodyDone = (error: BodyError | undefined, body: Buffer) => void;

const EMPTY = Buffer.alloc(0);

/** `length`: the Content-Length as a number (NaN without one). `done` is called exactly once, unless the request ends neither way (the client left: its response's 'close' tells). */
export function readBody(request: IncomingMessage, length: number, limit: number, done: BodyDone): void {
  if (length > limit) {
    done({ code: 'FST_ERR_CTP_BODY_TOO_LARGE' }, EMPTY);
    return;
  }
  let chunks: Buffer[] = [];
  let received = 0;
  const stop = (): void => {
    request.off('data', onData);
    request.off('end', onEnd);
    request.off('error', onError);
  };
  const onData = (chunk: Buffer): void => {
    received += chunk.length;
    if (received > limit) {
      stop();
      chunks = [];
      done({ code: 'FST_ERR_CTP_BODY_TOO_LARGE' }, EMPTY);
      return;
    }
    chunks.push(chunk);
  };
  const onEnd = (): void => {
    stop();
    if (!Number.isNaN(length) && received !== length) {
      done({ code: 'FST_ERR_CTP_INVALID_CONTENT_LENGTH' }, EMPTY);
      return;
    }
    done(undefined, chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, received));
  };
  // A stream error while reading (Node's "aborted"): a 400 naming it, as Fastify answered.
  const onError = (error: Error & BodyError): void => {
    stop();
    done(
      { code: error.code, statusCode: typeof error.statusCode === 'number' && error.statusCode >= 400 ? error.statusCode : 400, message: error.message },
      EMPTY,
    );
  };
  request.on('data', onData);
  request.on('end', onEnd);
  request.on('error', onError);
}
