/**
 * What the fuzzer sends and what the oracle needs to know about it. A case is one or more
 * exchanges sent in order on one connection; each exchange is the exact bytes of a request
 * plus what the client meant by them (route, JSON body), so the oracle can tell a correct
 * answer from a wrong one without knowing which mutation was applied.
 */
import type { Json } from './json-text.js';

export type Family = 'json' | 'bytes' | 'framing' | 'large';
export const FAMILIES: readonly Family[] = ['json', 'bytes', 'framing', 'large'];

export type RouteKind =
  | 'chat'
  | 'completions'
  | 'embeddings'
  | 'responses'
  | 'models'
  | 'model'
  | 'transcription'
  | 'passthrough'
  | 'healthz'
  | 'readyz'
  | 'metrics';

export interface Exchange {
  /** The request head as sent (request line and headers). */
  head: Buffer;
  /** Sent right after the head (a 26 MiB body is written without copying it into the head). */
  body?: Buffer;
  /** The method as the client meant it: a HEAD answer has no body. */
  method: string;
  /** The request target as sent, for the oracle's idea of which route answers. */
  target: string;
  /**
   * The body as the client meant it, where the wire carries it otherwise (chunk-encoded, gzip):
   * the request the cache knows it by. Unset: `body` is that.
   */
  plainBody?: Buffer;
  /** The body's JSON.parse result when the body is valid JSON text, else undefined. */
  json?: unknown;
  /** The body is not valid JSON (undefined: no JSON body was meant). */
  invalidJson?: boolean;
  /**
   * The request is incomplete on purpose (a body shorter than its Content-Length, a chunked
   * body without its last chunk): the client half-closes after this many ms, and the server
   * may then answer or close without answering (there is nobody to wait for).
   */
  halfCloseAfterMs?: number;
  /**
   * Closing without an answer is acceptable: the request is cut short (above), or it is one
   * Node hands to a handler the gateway does not have (CONNECT), which Node answers by closing.
   */
  mayClose?: boolean;
  /** The client hangs up this many ms after sending: there is no answer to judge. */
  abortAfterMs?: number;
}

export interface FuzzCase {
  index: number;
  family: Family;
  /** What was done to the request, short: the statistics and failure reports group by it. */
  label: string;
  exchanges: Exchange[];
  /** Needs a connection of its own (framing cases can leave a connection in any state). */
  freshConnection: boolean;
  /**
   * Indices of exchanges that must get the same status: the same odd request sent once when the
   * cache holds its answer (the hit fast path sees it) and once when it does not (Fastify does).
   */
  agree?: [number, number];
  /** Every request is written at once, before any answer is read (HTTP/1.1 pipelining). */
  pipelined?: boolean;
}

export interface FuzzContext {
  port: number;
  /** A key from GATEWAY_API_KEYS: valid requests carry it. */
  clientKey: string;
  seed: number;
}

/** A JSON request body, for mutation before it is encoded. */
export type JsonBody = Json;
