/**
 * One cached-route request, in one direction: authenticate → read the body → parse and validate
 * it once (or recall it: known-requests.ts) → route → cache policy → key → lookup → a hit written
 * by writeCachedAnswer | a flight joined | a flight started (follow-flight.ts) → one record
 * (metrics and log line, request-log.ts's recordRequest). That record takes the request's outcome
 * as one value (request-outcome.ts) from what wrote the answer: writeCachedAnswer returns a hit's,
 * a refusal makes its own here, and every other answer's is owned by its ClientWriter, which the
 * modules following a flight tell what they learn; no module writes the outcome of another.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import secureJson from 'secure-json-parse';
import { PARSE_OPTIONS } from '../json-body.js';
import { cacheScopeOf } from '../auth.js';
import { userOf } from '../limits/user-id.js';
import { cacheKey } from '../cache/key.js';
import { isFreshEnough, parseCachePolicy, type CachePolicy } from '../cache/policy.js';
import { applyBodyCacheControls } from '../cache/litellm-cache-field.js';
import { readStore, type StoreRead } from '../cache/store-read.js';
import { isBackgroundTaskRequest } from '../cache/task-prompts.js';
import type { CacheEntry } from '../cache/entry.js';
import type { CachedEndpoint } from '../endpoints.js';
import { errors, toGatewayError, type GatewayError } from '../errors.js';
import { closesConnection } from '../http/client-errors.js';
import { isJsonContentType } from '../http/json-content-type.js';
import { requestIdOf } from '../http/request-id.js';
import { writeRefusal } from '../http/write-refusal.js';
import { CLIENT_CLOSED_STATUS, recordRequest } from '../request-log.js';
import type { RequestOutcome } from '../request-outcome.js';
import { decodeCachedAnswer } from './cache-answers.js';
import { ClientWriter } from './client-writer.js';
import { answerEmbeddingBatch, embeddingBatchInputs } from './embedding-batch.js';
import { headerValue, joinFlight, startFlight, type Follower } from './follow-flight.js';
import { flyAcrossReplicas, type PaidCallGate } from './remote-flight.js';
import type { Flight } from './flight.js';
import type { HitRequest, KnownRequests } from './known-requests.js';
import { overlongOpenWebUiHeader } from './openwebui-headers.js';
import type { PipelineDeps } from './pipeline-deps.js';
import { prepareRequest, prepareRequestNow, type PreparedRequest } from './prepare.js';
import { readBody, type BodyError } from './read-body.js';
import { cachedPayload, writeCachedAnswer } from './write-hit.js';

export interface CachedRoute {
  endpoint: CachedEndpoint;
  /** The path it answers on: the route of its log line. */
  path: string;
}

/** What every request of the pipeline shares. */
export interface PipelineState {
  readonly deps: PipelineDeps;
  readonly knownRequests: KnownRequests;
}

/** Where a refusal happens, which decides whether its connection is kept. */
enum Stage {
  /** Before the body is read (bad key, content type): kept only when the body is all in. */
  Head,
  /** Reading or parsing the body: never kept (what the client sends next cannot be trusted). */
  Body,
  /** After it: kept (but after a 401). */
  Request,
}

/** The request as it will be answered: worked out from its body now, or recalled. */
interface Decided {
  request: HitRequest;
  /** The body's bytes (a recalled request that goes upstream after all is parsed from them). */
  body: Buffer | undefined;
  /** Set when worked out from the body (the flight needs the upstream body). */
  prepared: PreparedRequest | undefined;
  /** The cache key, when recalled. */
  knownKey: string | undefined;
  /** Where to remember it once answered from the cache. */
  memoKey: string | undefined;
  generation: number;
}

export class CachedRequest {
  private readonly startedAt = performance.now();
  private readonly id: string;
  private scope = '';
  /** Who the request is counted for (limits/user-id.ts), once authenticated. */
  private user: string | undefined;
  /** The request as routed, once known: who was to answer it, for a record made before any answer. */
  private asked: HitRequest | undefined;
  /** Set once answered or gone: the record is written once. */
  private recorded = false;
  /** Writes (and owns the outcome of) any answer but a hit or a refusal, once one is on its way. */
  private writer: ClientWriter | undefined;

  constructor(
    private readonly state: PipelineState,
    private readonly request: IncomingMessage,
    private readonly response: ServerResponse,
    private readonly route: CachedRoute,
  ) {
    this.id = requestIdOf(request);
  }

  start(): void {
    const { deps } = this.state;
    const headers = this.request.headers;
    this.response.on('close', this.onClose);
    const { ok, key } = deps.auth.check(headers.authorization);
    if (!ok) {
      this.refuse(errors.invalidApiKey(), Stage.Head);
      return;
    }
    // Before the ids are hashed, remembered or counted for their user (as on every other route).
    const overlong = overlongOpenWebUiHeader(headers);
    if (overlong) {
      this.refuse(overlong, Stage.Head);
      return;
    }
    this.scope = cacheScopeOf(deps.config.cacheScope, headers, key);
    this.user = userOf(headers, key);
    // Counted for its user (limits/limits.ts); refused past the user's requests per minute.
    const admitted = deps.limits.admitRequest(this.user);
    if (admitted instanceof Promise) {
      admitted.then((refusal) => (refusal ? this.refuse(refusal, Stage.Head) : this.readRequest())).catch((error: unknown) => this.failed(error));
      return;
    }
    if (admitted) {
      this.refuse(admitted, Stage.Head);
      return;
    }
    this.readRequest();
  }

  private readRequest(): void {
    if (this.recorded) return;
    const { deps } = this.state;
    const headers = this.request.headers;
    const contentType = headers['content-type'];
    const contentLength = headers['content-length'];
    if (contentType === undefined) {
      // No body at all: nothing to parse, the validation says what is missing (once the request
      // is complete, so its connection is kept).
      if (headers['transfer-encoding'] === undefined && (contentLength === undefined || contentLength === '0')) {
        readBody(this.request, Number(contentLength), deps.config.bodyLimitBytes, this.onNoBody);
        return;
      }
      this.refuseBody({ code: 'FST_ERR_CTP_INVALID_MEDIA_TYPE' }, Stage.Head);
      return;
    }
    if (!isJsonContentType(contentType)) {
      this.refuseBody({ code: 'FST_ERR_CTP_INVALID_MEDIA_TYPE' }, Stage.Head);
      return;
    }
    readBody(this.request, Number(contentLength), deps.config.bodyLimitBytes, this.onBody);
  }

  private readonly onBody = (error: BodyError | undefined, body: Buffer): void => {
    if (this.recorded) return;
    if (error) {
      this.refuseBody(error, Stage.Body);
      return;
    }
    if (body.byteLength === 0) {
      this.refuseBody({ code: 'FST_ERR_CTP_EMPTY_JSON_BODY' }, Stage.Body);
      return;
    }
    this.decide(body);
  };

  private readonly onNoBody = (error: BodyError | undefined): void => {
    if (this.recorded) return;
    if (error) {
      this.refuseBody(error, Stage.Body);
      return;
    }
    this.decide(undefined);
  };

  /**
   * The answer a writer wrote is complete, or the client left before it was (a 499, whatever it
   * had reached).
   */
  private readonly onClose = (): void => {
    if (this.recorded) return;
    if (this.writer) {
      this.record(this.writer.outcome());
      return;
    }
    const status = this.response.writableFinished ? this.response.statusCode : CLIENT_CLOSED_STATUS;
    this.record(this.unanswered(status, undefined, 0, undefined));
  };

  /** Parse (or recall) and validate the body, then route it; `body` undefined: none was sent. */
  private decide(body: Buffer | undefined): void {
    const { deps, knownRequests } = this.state;
    const generation = deps.router.generation;
    const memoKey = body === undefined ? undefined : knownRequests.memoKeyOf(this.route.endpoint, this.scope, body);
    const known = memoKey === undefined ? undefined : knownRequests.get(memoKey, generation);
    let parsed: unknown;
    if (!known && body !== undefined) {
      try {
        parsed = secureJson.parse(body.toString('utf8'), undefined, PARSE_OPTIONS);
      } catch (error) {
        this.refuseBody(error, Stage.Body);
        return;
      }
    }
    if (known) {
      this.lookUp({ request: known.request, body, prepared: undefined, knownKey: known.key, memoKey: undefined, generation });
      return;
    }
    let prepared: PreparedRequest | null;
    try {
      prepared = prepareRequestNow(this.route.endpoint, parsed, deps.router);
    } catch (error) {
      this.refuse(toGatewayError(error, deps.config.bodyLimitBytes), Stage.Request);
      return;
    }
    if (prepared) {
      this.lookUp({ request: prepared, body, prepared, knownKey: undefined, memoKey, generation });
      return;
    }
    // Routing needs the model lists first (their first fetch).
    prepareRequest(this.route.endpoint, parsed, deps.router).then(
      (ready) => this.lookUp({ request: ready, body, prepared: ready, knownKey: undefined, memoKey, generation }),
      (error: unknown) => this.refuse(toGatewayError(error, deps.config.bodyLimitBytes), Stage.Request),
    );
  }

  /** Cache policy, key, regeneration, then the one store read (or none). */
  private lookUp(decided: Decided): void {
    if (this.recorded) return;
    try {
      this.lookUpNow(decided);
    } catch (error) {
      this.failed(error);
    }
  }

  private lookUpNow(decided: Decided): void {
    const { deps } = this.state;
    const { request } = decided;
    this.asked = request;
    const headers = this.request.headers;
    const policy: CachePolicy = deps.config.cacheEnabled
      ? parseCachePolicy(headers, { ttlSeconds: deps.config.cacheTtlSeconds })
      : { lookup: false, store: false, ttlSeconds: deps.config.cacheTtlSeconds };
    if (request.cacheControls) applyBodyCacheControls(policy, request.cacheControls);
    // An embeddings batch is cached input by input (embedding-batch.ts); never a recalled request.
    const batchInputs = embeddingBatchInputs(decided.prepared);
    if (batchInputs && deps.store && (policy.lookup || policy.store)) {
      const { prepared } = decided as { prepared: PreparedRequest };
      this.writer = answerEmbeddingBatch(
        { response: this.response, requestId: this.id, headers, prepared, inputs: batchInputs, scope: this.scope, policy, user: this.user },
        deps,
        deps.store,
      );
      return;
    }
    const key = policy.lookup || policy.store ? (decided.knownKey ?? this.keyOf(decided.prepared!)) : '';
    const chatId = headerValue(headers['x-openwebui-chat-id']);
    // The same request again from the same chat is a regeneration: the user wants a new answer.
    // Not so Open WebUI's background tasks, which it re-runs after a regeneration (task-prompts.ts).
    if (
      key &&
      chatId !== undefined &&
      deps.regenerations.checkAndRemember(chatId, key) &&
      !isBackgroundTaskRequest(decided.prepared?.body, decided.body, deps.config.openWebUiTaskMarkers)
    ) {
      policy.lookup = false;
      policy.bypassReason = 'no-cache';
    }
    if (!policy.lookup || !deps.store) {
      this.goUpstream(decided, key, policy, deps.store !== undefined);
      return;
    }
    // A flight that has answered but whose entry is still being written holds the newest answer
    // for this key (a no-cache refresh may be replacing an older entry): it wins over the store.
    const answered = answeredEntry(deps.flights.get(key), policy);
    if (answered && this.answerFromCache(decided, answered)) return;
    const read = readStore(deps.store, key);
    if (read instanceof Promise) {
      void read.then((settled) => this.afterRead(decided, key, policy, settled));
      return;
    }
    // A read that answered at once is answered after this loop turn's I/O, as a promised one is:
    // hits that arrived together leave together, which under load saves the kernel and the
    // clients wake-ups (-5 µs CPU per hit, +14% throughput in bench/README.md's runs); a lone hit
    // waits one loop turn.
    setImmediate(() => this.afterRead(decided, key, policy, read));
  }

  private keyOf(prepared: PreparedRequest): string {
    return cacheKey({ scope: this.scope, provider: prepared.provider, endpoint: prepared.endpoint, body: prepared.body });
  }

  private afterRead(decided: Decided, key: string, policy: CachePolicy, read: StoreRead): void {
    // The client left while the store was read: its 499 is already recorded.
    if (this.recorded) return;
    try {
      if (!read.failed && read.value !== undefined) {
        const entry = decodeCachedAnswer(read.value, key);
        if (!entry) this.state.deps.log.warn({ key: key.slice(0, 16) }, 'unreadable cache entry ignored');
        else if (isFreshEnough(policy, entry.storedAt) && this.answerFromCache(decided, entry, key)) return;
      }
      this.goUpstream(decided, key, policy, !read.failed);
    } catch (error) {
      this.failed(error);
    }
  }

  /**
   * A hit: the entry as this request must receive it, written by writeCachedAnswer like every
   * hit; false when the entry cannot serve this request (the upstream then answers it).
   * `key`: given for a stored entry, whose request is then remembered by its bytes.
   */
  private answerFromCache(decided: Decided, entry: CacheEntry, key?: string): boolean {
    const { deps, knownRequests } = this.state;
    const payload = cachedPayload(entry, decided.request);
    if (!payload) return false;
    this.response.off('close', this.onClose);
    const outcome = writeCachedAnswer(this.response, this.id, decided.request, entry, payload, deps);
    if (key !== undefined && decided.prepared && decided.memoKey !== undefined)
      knownRequests.remember(decided.memoKey, key, decided.prepared, decided.generation);
    this.record(outcome);
    return true;
  }

  /**
   * The cache did not answer. A recalled request (its entry expired or was evicted since) is
   * parsed now, once: the memo holds no parsed bodies, and the flight sends the body upstream.
   */
  private goUpstream(decided: Decided, key: string, policy: CachePolicy, cacheAvailable: boolean): void {
    if (decided.prepared) {
      this.joinOrFly(decided, decided.prepared, key, policy, cacheAvailable);
      return;
    }
    const { deps } = this.state;
    const parsed: unknown = secureJson.parse(decided.body!.toString('utf8'), undefined, PARSE_OPTIONS);
    const prepared = prepareRequestNow(this.route.endpoint, parsed, deps.router);
    if (prepared) {
      this.joinOrFly(decided, prepared, key, policy, cacheAvailable);
      return;
    }
    prepareRequest(this.route.endpoint, parsed, deps.router).then(
      (ready) => {
        if (!this.recorded) this.joinOrFly(decided, ready, key, policy, cacheAvailable);
      },
      (error: unknown) => this.refuse(toGatewayError(error, deps.config.bodyLimitBytes), Stage.Request),
    );
  }

  /** Joins the flight under way for the key, or starts this request's own upstream call. */
  private joinOrFly(decided: Decided, prepared: PreparedRequest, key: string, policy: CachePolicy, cacheAvailable: boolean, admitted = false): void {
    const { deps } = this.state;
    // Whichever flight answers, this writer writes the answer and owns its outcome.
    this.writer ??= new ClientWriter(this.response, this.id, prepared);
    const follower: Follower = {
      response: this.response,
      requestId: this.id,
      headers: this.request.headers,
      prepared,
      writer: this.writer,
      user: this.user,
      scope: this.scope,
    };
    const joinable = policy.lookup ? deps.flights.get(key) : undefined;
    if (joinable && !joinable.result) {
      joinFlight(joinable, follower, deps);
      return;
    }
    // The flight may have answered while the lookup ran (not when the cache is down: then every
    // answer is a BYPASS from upstream, or COALESCED with one).
    const answeredMeanwhile = cacheAvailable && policy.lookup ? answeredEntry(joinable, policy) : undefined;
    if (answeredMeanwhile && this.answerFromCache(decided, answeredMeanwhile)) return;
    // On a Redis other replicas share, a miss first looks for the same call on another replica
    // (remote-flight.ts); a budget is asked only if this replica is to call upstream itself.
    if (deps.replicaFlights?.presence.othersPresent && policy.lookup && policy.store && cacheAvailable && key) {
      flyAcrossReplicas(deps.replicaFlights, follower, key, policy, deps, () => this.recorded, this.paidCallGate());
      return;
    }
    // A paid upstream call (never a hit or a coalesced answer) is refused while a budget is spent;
    // admitted after a round trip, it looks for a flight to join again first.
    if (!admitted) {
      const refusal = deps.limits.admitPaidCall(this.user!);
      if (refusal instanceof Promise) {
        refusal
          .then((refused) => {
            if (this.recorded) return;
            if (refused) this.refuse(refused, Stage.Request);
            else this.joinOrFly(decided, prepared, key, policy, cacheAvailable, true);
          })
          .catch((error: unknown) => this.failed(error));
        return;
      }
      if (refusal) {
        this.refuse(refusal, Stage.Request);
        return;
      }
    }
    // Counted as a miss (request-log.ts, cacheOutcomeOf) only once its upstream call is sent.
    this.writer.reached(policy.lookup && cacheAvailable ? 'MISS' : 'BYPASS');
    startFlight(follower, key, policy, policy.store && cacheAvailable, deps);
  }

  /** The budget check of a paid call that another module starts later (flyAcrossReplicas). */
  private paidCallGate(): PaidCallGate {
    return (start, refused) => {
      const decide = (refusal: GatewayError | undefined): void => {
        if (this.recorded || refusal) refused();
        if (this.recorded) return;
        if (refusal) this.refuse(refusal, Stage.Request);
        else start();
      };
      const admission = this.state.deps.limits.admitPaidCall(this.user!);
      if (admission instanceof Promise) admission.then(decide).catch((error: unknown) => this.failed(error));
      else decide(admission);
    };
  }

  private refuseBody(error: unknown, stage: Stage): void {
    const headers = this.request.headers;
    this.refuse(toGatewayError(error, this.state.deps.config.bodyLimitBytes, headers['content-type'], headers['content-encoding']), stage);
  }

  /** Answers with the gateway's error, as every route's errors are written (refusal.ts). */
  private refuse(error: GatewayError, stage: Stage): void {
    if (this.recorded || this.response.headersSent) return;
    if (error.statusCode >= 500) this.state.deps.log.error({ err: error }, 'request failed');
    const close = stage === Stage.Body || closesConnection(error.statusCode, this.request);
    this.response.off('close', this.onClose);
    const sentAt = performance.now();
    const bytes = writeRefusal(this.response, this.id, error, close);
    this.record(this.unanswered(error.statusCode, error, bytes, sentAt));
  }

  /** A defect of the pipeline: the client gets a 500 (if nothing was written yet), never a hang. */
  private failed(error: unknown): void {
    this.refuse(errors.internal(error), Stage.Request);
  }

  /**
   * The outcome of a request no writer answered (refused, or gone before any answer): no cache
   * outcome reached (a BYPASS), the model it asked for when routing got that far.
   */
  private unanswered(status: number, error: GatewayError | undefined, bytes: number, firstByteAt: number | undefined): RequestOutcome {
    const asked = this.asked;
    return { cache: undefined, upstreamCalled: false, provider: asked?.provider, model: asked?.model, error, status, bytes, firstByteAt };
  }

  /** The request's one record: its metrics and its log line. */
  private record(outcome: RequestOutcome): void {
    if (this.recorded) return;
    this.recorded = true;
    const { deps } = this.state;
    const seconds = (performance.now() - this.startedAt) / 1000;
    const firstByte = outcome.firstByteAt;
    recordRequest(
      {
        id: this.id,
        method: 'POST',
        route: this.route.path,
        endpoint: this.route.endpoint,
        outcome,
        seconds,
        ttfbSeconds: firstByte === undefined ? seconds : (firstByte - this.startedAt) / 1000,
      },
      deps.metrics,
      deps.accounting,
      deps.requestLog,
    );
  }
}

/** A registered flight that has answered with a cacheable entry the policy accepts. */
function answeredEntry(flight: Flight | undefined, policy: CachePolicy): CacheEntry | undefined {
  const outcome = flight?.result;
  // A fallback's answer is stored under the fallback's key: it never answers the model asked for.
  if (outcome?.kind !== 'completed' || !outcome.entry || flight!.fellBack || !isFreshEnough(policy, outcome.entry.storedAt)) return undefined;
  return outcome.entry;
}
