/**
 * What the hit fast path learned about a request it read but did not answer, handed to the
 * ordinary (Fastify) path on the raw request: the body it already consumed, when the request
 * started, what it worked out from the body, and the store's answer for the cache key, so a miss
 * never reads the store twice nor hashes its body twice.
 */
import type { IncomingMessage } from 'node:http';
import { PassThrough, type Readable } from 'node:stream';
import type { StoreRead } from '../cache/store-read.js';
import type { PreparedRequest } from './prepare.js';

export interface Handoff {
  /** The request body, read in full (its length matched content-length). */
  body: Buffer;
  /** performance.now() when the request arrived, before the fast path read it. */
  startedAt: number;
  /**
   * The request as the fast path prepared it (validated, routed) and its cache key: the same
   * values the handler would work out from the same body and headers, which for a long chat
   * history is most of a miss's own CPU (canonical form and hash of every message).
   */
  workedOut?: { prepared: PreparedRequest; key: string };
  /** What reading the store for `key` came to (a failure already counted by the store). */
  lookup?: { key: string; read: StoreRead };
}

const HANDOFF = Symbol('cachegate.handoff');
type WithHandoff = IncomingMessage & { [HANDOFF]?: Handoff };

export function handOff(request: IncomingMessage, handoff: Handoff): void {
  (request as WithHandoff)[HANDOFF] = handoff;
}

export function handoffOf(request: IncomingMessage): Handoff | undefined {
  return (request as WithHandoff)[HANDOFF];
}

/** The consumed body again, as the stream Fastify's body parser reads (a preParsing hook). */
export function replayBody(handoff: Handoff): Readable {
  const stream = new PassThrough();
  stream.end(handoff.body);
  return stream;
}

/** The store read the fast path made for `key`, at most once; undefined when it did not read. */
export function takeStoreRead(request: IncomingMessage, key: string): StoreRead | undefined {
  const handoff = handoffOf(request);
  const lookup = handoff?.lookup;
  if (!lookup || lookup.key !== key) return undefined;
  handoff.lookup = undefined;
  return lookup.read;
}

/** What the fast path worked out for this request to this endpoint, if it did. */
export function workedOutFor(request: IncomingMessage, endpoint: string): Handoff['workedOut'] {
  const workedOut = handoffOf(request)?.workedOut;
  return workedOut?.prepared.endpoint === endpoint ? workedOut : undefined;
}
