/**
 * One request on the hit fast path (hit-fast-path.ts), from its first body byte to its answer
 * or its hand-off: read the body, work out (or recall) its cache key, read the store, then write
 * the stored answer with the contract's headers, metrics and log line, or hand the request to
 * Fastify with everything learnt on the way (handoff.ts).
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import secureJson from 'secure-json-parse';
import type { ClientAuth } from '../auth.js';
import { cacheScopeOf } from '../auth.js';
import { cacheKey } from '../cache/key.js';
import { readStore, type StoreRead } from '../cache/store-read.js';
import type { CachedEndpoint } from '../endpoints.js';
import { isFreshEnough, type CachePolicy } from '../cache/policy.js';
import { newRequestContext, type RequestContext } from '../request-context.js';
import { CLIENT_CLOSED_STATUS, recordRequest } from '../request-log.js';
import { decodeCachedAnswer } from './cache-answers.js';
import { cachePolicyFor, headerValue, type CompletionDeps } from './handler.js';
import { handOff, type Handoff } from './handoff.js';
import { overlongOpenWebUiHeader } from './openwebui-headers.js';
import type { HitRequest, KnownRequests } from './known-requests.js';
import { prepareRequestNow, type PreparedRequest } from './prepare.js';
import { cachedPayload, writeCachedAnswer } from './write-hit.js';

export interface HitFastPathDeps extends CompletionDeps {
  auth: ClientAuth;
  /** Where the one line per request goes (logger.ts's requestLineLogger). */
  requestLog: Logger;
}

export type RequestHandler = (request: IncomingMessage, response: ServerResponse) => void;

export interface FastRoute {
  endpoint: CachedEndpoint;
  /** The path it answers on (what Fastify logs as the route of the request). */
  path: string;
}

/** What every request on the fast path shares. */
export interface FastPathState {
  readonly deps: HitFastPathDeps;
  readonly knownRequests: KnownRequests;
}

const REQUEST_ID = /^[\w.:@-]{1,128}$/;
/** Fastify's defaults, which its own JSON parser applies: such bodies are refused there. */
const PARSE_OPTIONS = { protoAction: 'error', constructorAction: 'error' } as const;

const enum Phase {
  Reading,
  Deciding,
  Answered,
  HandedOff,
  Gone,
}

/** What the store read is for. */
interface Lookup {
  body: Buffer;
  policy: CachePolicy;
  key: string;
  request: HitRequest;
  /** The regeneration tracker's key of (chat id, cache key), when the request names its chat. */
  chatPair: string | undefined;
  /** Set for a request worked out from its body here (not remembered): handed on, or remembered once a hit. */
  prepared?: PreparedRequest;
  /** Where to remember it. */
  memo?: { memoKey: string; generation: number };
}

/** One request on the fast path, from its first body byte to its log line. */
export class FastRequest {
  private readonly startedAt = performance.now();
  private phase = Phase.Reading;
  private chunks: Buffer[] = [];
  private received = 0;
  private readonly context: RequestContext = newRequestContext();
  private id = '';
  private sentAt = 0;
  private bytes = 0;

  constructor(
    private readonly path: FastPathState,
    private readonly request: IncomingMessage,
    private readonly response: ServerResponse,
    private readonly fallback: RequestHandler,
    private readonly target: FastRoute,
    private readonly clientKey: string | undefined,
    private readonly length: number,
  ) {}

  start(): void {
    this.context.endpoint = this.target.endpoint;
    this.request.on('data', this.onData);
    this.request.once('end', this.onEnd);
    this.response.on('close', this.onClose);
  }

  private readonly onData = (chunk: Buffer): void => {
    this.received += chunk.length;
    this.chunks.push(chunk);
  };

  private readonly onEnd = (): void => {
    if (this.phase !== Phase.Reading) return;
    this.phase = Phase.Deciding;
    this.request.off('data', this.onData);
    const body = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.received);
    this.chunks = [];
    // Node's parser enforces content-length; if it ever did not, Fastify refuses the mismatch.
    if (this.received !== this.length) return this.handOffNow(body);
    try {
      this.decide(body);
    } catch (error) {
      this.failed(error, body);
    }
  };

  /** The client left before its answer: a 499, like any request. */
  private readonly onClose = (): void => {
    if (this.phase === Phase.HandedOff || this.phase === Phase.Answered) return;
    this.phase = Phase.Gone;
    this.request.off('data', this.onData);
    this.record(CLIENT_CLOSED_STATUS);
  };

  /** Everything up to the store read, without waiting; the read itself waits only for Redis. */
  private decide(body: Buffer): void {
    const { deps, knownRequests } = this.path;
    // An over-long Open WebUI id: the handler answers its 400.
    if (overlongOpenWebUiHeader(this.request.headers)) return this.handOffNow(body);
    const policy = cachePolicyFor(this.request.headers, deps.config);
    if (!policy.lookup) return this.handOffNow(body);
    const scope = cacheScopeOf(deps.config.cacheScope, this.request.headers, this.clientKey);
    const generation = deps.router.generation;
    const memoKey = knownRequests.memoKeyOf(this.target.endpoint, scope, body);
    const known = memoKey === undefined ? undefined : knownRequests.get(memoKey, generation);
    let prepared: PreparedRequest | undefined;
    let key: string;
    if (known) {
      key = known.key;
    } else {
      prepared = this.prepare(body);
      if (!prepared) return this.handOffNow(body);
      key = cacheKey({ scope, provider: prepared.provider, endpoint: prepared.endpoint, body: prepared.body });
    }
    const chatId = headerValue(this.request.headers['x-openwebui-chat-id']);
    const chatPair = chatId === undefined ? undefined : deps.regenerations.pairOf(chatId, key);
    // A regeneration or an identical request in flight: the handler's business.
    if ((chatPair !== undefined && deps.regenerations.seenPair(chatPair)) || deps.flights.get(key)) {
      return this.handOffNow(body, prepared && { prepared, key });
    }
    const lookup: Lookup = { body, policy, key, request: known?.request ?? prepared!, chatPair, prepared };
    if (prepared && memoKey !== undefined) lookup.memo = { memoKey, generation };
    const read = readStore(deps.store!, key);
    if (read instanceof Promise) {
      void read.then((settled) => this.answerOrFail(lookup, settled));
      return;
    }
    // A read that answered at once is answered after this loop turn's I/O, as a promised one is:
    // hits that arrived together leave together, which under load saves the kernel and the
    // clients wake-ups (-5 µs CPU per hit, +14% throughput in bench/README.md's runs); a lone hit
    // waits one loop turn.
    setImmediate(() => this.answerOrFail(lookup, read));
  }

  private answerOrFail(lookup: Lookup, read: StoreRead): void {
    try {
      this.answerOrHandOff(lookup, read);
    } catch (error) {
      this.failed(error, lookup.body);
    }
  }

  private answerOrHandOff(lookup: Lookup, read: StoreRead): void {
    // The client left while the store was read: its 499 is already recorded.
    if (this.phase !== Phase.Deciding) return;
    const { key, prepared, memo } = lookup;
    if (read.failed || read.value === undefined || !this.answer(lookup, read.value)) {
      return this.handOffNow(lookup.body, prepared && { prepared, key }, { key, read });
    }
    if (prepared && memo) this.path.knownRequests.remember(memo.memoKey, key, prepared, memo.generation);
  }

  /** A defect here must cost the fast path, never the request: unless its answer has begun, the ordinary path answers it. */
  private failed(error: unknown, body: Buffer): void {
    this.path.deps.log.error({ err: error }, 'cache hit fast path failed; answering through the ordinary path');
    if ((this.phase === Phase.Deciding || this.phase === Phase.Answered) && !this.response.headersSent) this.handOffNow(body);
  }

  /** The request as the handler would prepare it; undefined when the handler must decide. */
  private prepare(body: Buffer): PreparedRequest | undefined {
    try {
      const parsed: unknown = secureJson.parse(body.toString('utf8'), undefined, PARSE_OPTIONS);
      return prepareRequestNow(this.target.endpoint, parsed, this.path.deps.router) ?? undefined;
    } catch {
      // Invalid JSON or an invalid request: the ordinary path gives the exact error.
      return undefined;
    }
  }

  /** Answers from a stored entry when it serves this request; false leaves it to the handler. */
  private answer(lookup: Lookup, raw: Buffer): boolean {
    const { deps } = this.path;
    const { request: prepared, policy, key, chatPair } = lookup;
    const entry = decodeCachedAnswer(raw, key);
    if (!entry || !isFreshEnough(policy, entry.storedAt)) return false;
    const payload = cachedPayload(entry, prepared);
    if (!payload) return false;
    if (chatPair !== undefined) deps.regenerations.rememberPair(chatPair);
    this.id = requestIdOf(this.request);
    this.phase = Phase.Answered;
    this.response.off('close', this.onClose);
    this.bytes = payload.byteLength;
    this.sentAt = performance.now();
    writeCachedAnswer(this.response, this.id, prepared, entry, payload, this.context, deps);
    this.record(200);
    return true;
  }

  private handOffNow(body: Buffer, workedOut?: Handoff['workedOut'], lookup?: Handoff['lookup']): void {
    this.phase = Phase.HandedOff;
    this.response.off('close', this.onClose);
    handOff(this.request, { body, startedAt: this.startedAt, workedOut, lookup });
    this.fallback(this.request, this.response);
  }

  private record(status: number): void {
    const now = performance.now();
    const seconds = (now - this.startedAt) / 1000;
    recordRequest(
      {
        id: this.id || requestIdOf(this.request),
        method: 'POST',
        route: this.target.path,
        context: this.context,
        status,
        seconds,
        ttfbSeconds: this.sentAt === 0 ? seconds : (this.sentAt - this.startedAt) / 1000,
        bytes: this.bytes,
      },
      this.path.deps.metrics,
      this.path.deps.accounting,
      this.path.deps.requestLog,
    );
  }
}

/** The client's X-Request-ID when it is a sane token, else a new one (as Fastify's genReqId). */
export function requestIdOf(request: IncomingMessage): string {
  const sent = request.headers['x-request-id'];
  return typeof sent === 'string' && REQUEST_ID.test(sent) ? sent : randomUUID();
}
