/**
 * The cached routes (chat completions, completions, embeddings), top to bottom:
 * validate → route → cache policy → lookup → coalesce → upstream → answer → store.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { Accounting } from '../accounting.js';
import { cacheKey } from '../cache/key.js';
import { isFreshEnough, parseCachePolicy, type CachePolicy, type RequestHeaders } from '../cache/policy.js';
import type { RegenerationTracker } from '../cache/regeneration.js';
import type { SingleFlight } from '../cache/single-flight.js';
import type { CacheStore } from '../cache/store.js';
import { readStore, type StoreRead } from '../cache/store-read.js';
import type { Config } from '../config.js';
import type { CachedEndpoint } from '../endpoints.js';
import type { GatewayMetrics } from '../metrics.js';
import type { ProviderName } from '../providers/provider-name.js';
import type { RequestContext } from '../request-context.js';
import type { ModelRouter } from '../routing.js';
import type { UpstreamClient } from '../upstream/client.js';
import { encodeEntryAsync, type CacheEntry } from '../cache/entry.js';
import { errors } from '../errors.js';
import { decodeCachedAnswer, completionAsSse, type CachedAnswer } from './cache-answers.js';
import { ClientWriter, DONE_EVENT } from './client-writer.js';
import { Flight, type FlightOutcome, type FlightSubscriber } from './flight.js';
import { takeStoreRead, workedOutFor } from './handoff.js';
import { overlongOpenWebUiHeader } from './openwebui-headers.js';
import { prepareRequest, type PreparedRequest } from './prepare.js';
import { cachedPayload } from './write-hit.js';

export interface CompletionDeps {
  config: Config;
  router: ModelRouter;
  clients: Readonly<Record<ProviderName, UpstreamClient>>;
  store: CacheStore | undefined;
  flights: SingleFlight<Flight>;
  regenerations: RegenerationTracker;
  metrics: GatewayMetrics;
  accounting: Accounting;
  log: Logger;
}

/** Client request headers that carry meaning for the provider and are safe to pass on. */
const FORWARDED_REQUEST_HEADERS = ['openai-organization', 'openai-project', 'openai-beta'];

export async function handleCachedRoute(
  endpoint: CachedEndpoint,
  request: FastifyRequest,
  reply: FastifyReply,
  deps: CompletionDeps,
): Promise<void> {
  const context = request.gw;
  const overlong = overlongOpenWebUiHeader(request.headers);
  if (overlong) throw overlong;
  const workedOut = workedOutFor(request.raw, endpoint);
  const prepared = workedOut?.prepared ?? (await prepareRequest(endpoint, request.body, deps.router));
  context.provider = prepared.provider;
  context.model = prepared.model;
  reply.header('x-gateway-provider', prepared.provider);
  const writer = new ClientWriter(reply, request.id, prepared.provider, context);
  context.writer = writer;

  const policy = cachePolicyFor(request.headers, deps.config);
  const key =
    policy.lookup || policy.store ? (workedOut?.key ?? cacheKey({ scope: context.cacheScope, provider: prepared.provider, endpoint, body: prepared.body })) : '';
  const chatId = headerValue(request.headers['x-openwebui-chat-id']);
  if (key && chatId) {
    // The same request again from the same chat is a regeneration: the user wants a new answer.
    if (deps.regenerations.checkAndRemember(chatId, key)) {
      policy.lookup = false;
      policy.bypassReason = 'no-cache';
    }
  }

  // A flight that has answered but whose entry is still being written holds the newest answer
  // for this key (a no-cache refresh may be replacing an older entry): it wins over the store.
  const answered = policy.lookup ? answeredFlight(deps.flights.get(key), policy) : undefined;
  if (answered && followAnswered(answered, prepared, writer, deps)) return;

  let cacheAvailable = deps.store !== undefined;
  if (policy.lookup && deps.store) {
    const read = await lookup(deps.store, key, deps, takeStoreRead(request.raw, key));
    const found = read.failed ? undefined : read.value;
    if (read.failed) {
      cacheAvailable = false;
    } else if (found && isFreshEnough(policy, found.storedAt)) {
      const payload = cachedPayload(found, prepared);
      if (payload) {
        writer.sendCached(prepared, found, payload, deps);
        return;
      }
    }
  }

  const canShare = policy.store && cacheAvailable;
  const joinable = policy.lookup ? deps.flights.get(key) : undefined;
  if (joinable && !joinable.result) {
    context.cache = 'COALESCED';
    deps.metrics.cacheCoalesced.inc({ endpoint });
    await follow(joinable, prepared, writer, reply, context, deps, 'hit');
    return;
  }
  // The flight may have answered while the lookup ran (not when the cache is down: then every
  // answer is a BYPASS from upstream, or COALESCED with one).
  const answeredMeanwhile = cacheAvailable ? answeredFlight(joinable, policy) : undefined;
  if (answeredMeanwhile && followAnswered(answeredMeanwhile, prepared, writer, deps)) return;
  // Counted as a miss (request-log.ts, cacheOutcomeOf) only once its upstream call is sent.
  context.cache = policy.lookup && cacheAvailable ? 'MISS' : 'BYPASS';
  const flight = new Flight(deps.clients[prepared.provider], prepared, forwardedRequestHeaders(request), () => {
    context.upstreamCalled = true;
  });
  // With a store write to wait for, the flight stays joinable until the entry can be read.
  let registered = false;
  // A flight replaced in the registry by a newer one (a no-cache refresh) must not write its
  // older answer over the newer one when its own write happens to finish last.
  const superseded = (): boolean => registered && deps.flights.get(key) !== flight;
  const stored = canShare && deps.store ? storeWhenSettled(deps.store, key, flight, policy, superseded) : flight.settled;
  if (key && policy.store) registered = deps.flights.register(key, flight, stored);
  // What the upstream call cost is counted once, by the flight, not by the client that started
  // it: that client may leave while coalesced ones still receive (and the upstream bills) it all.
  void flight.settled.then((outcome) => {
    if (outcome.kind === 'completed') deps.accounting.record(prepared.provider, prepared.model, outcome.usage, 'miss');
  });
  flight.start();
  await follow(flight, prepared, writer, reply, context, deps, 'miss');
}

export function cachePolicyFor(headers: RequestHeaders, config: Config): CachePolicy {
  if (!config.cacheEnabled) return { lookup: false, store: false, ttlSeconds: config.cacheTtlSeconds };
  return parseCachePolicy(headers, { ttlSeconds: config.cacheTtlSeconds });
}

/**
 * The stored answer for `key`, decoded; failed when the store could not be read (fail open: the
 * request goes upstream). `asked`: the read the hit fast path already made for this key (no
 * second round trip).
 */
async function lookup(store: CacheStore, key: string, deps: CompletionDeps, asked: StoreRead | undefined): Promise<StoreRead<CachedAnswer>> {
  const read = asked ?? (await readStore(store, key));
  if (read.failed) return read;
  if (read.value === undefined) return { failed: false, value: undefined };
  const answer = decodeCachedAnswer(read.value, key);
  if (!answer) deps.log.warn({ key: key.slice(0, 16) }, 'unreadable cache entry ignored');
  return { failed: false, value: answer };
}

/** A registered flight that has answered with a cacheable entry the policy accepts. */
function answeredFlight(flight: Flight | undefined, policy: CachePolicy): CacheEntry | undefined {
  const outcome = flight?.result;
  if (!flight || outcome?.kind !== 'completed' || !outcome.entry || !isFreshEnough(policy, outcome.entry.storedAt)) return undefined;
  return outcome.entry;
}

/**
 * Answers from a flight that already completed and is being stored: for the client this is a
 * hit on that entry (the store simply has not finished writing it), not an upstream call, and it
 * is written as one. false when the entry cannot serve this request (as a stored one could not).
 */
function followAnswered(entry: CacheEntry, prepared: PreparedRequest, writer: ClientWriter, deps: CompletionDeps): boolean {
  const payload = cachedPayload(entry, prepared);
  if (!payload) return false;
  writer.sendCached(prepared, entry, payload, deps);
  return true;
}

/** Subscribes this client to a flight and resolves when its answer has been written. */
function follow(
  flight: Flight,
  prepared: PreparedRequest,
  writer: ClientWriter,
  reply: FastifyReply,
  context: RequestContext,
  deps: CompletionDeps,
  paid: 'hit' | 'miss',
): Promise<void> {
  return new Promise<void>((resolve) => {
    const subscriber: FlightSubscriber = {
      onStreamStart: prepared.stream ? (head) => writer.startStream(head) : undefined,
      onEvent: prepared.stream
        ? (event) => {
            if (event.usageOnly && !prepared.includeUsage) return;
            writer.write(event.data);
          }
        : undefined,
      onDone: (outcome) => {
        // X-Cache is the outcome reached by now (client-writer.ts): a miss refused before any
        // upstream call (no usable key) was no miss, and its answer says so.
        answerFromOutcome(outcome, prepared, writer, context);
        // The upstream call's own cost is counted by its flight; answers that rode on it saved theirs.
        if (outcome.kind === 'completed' && paid === 'hit') deps.accounting.record(prepared.provider, prepared.model, outcome.usage, 'hit');
        resolve();
      },
    };
    reply.raw.on('close', () => {
      if (!reply.raw.writableFinished) {
        flight.unsubscribe(subscriber);
        resolve();
      }
    });
    flight.subscribe(subscriber);
  });
}

function answerFromOutcome(outcome: FlightOutcome, prepared: PreparedRequest, writer: ClientWriter, context: RequestContext): void {
  switch (outcome.kind) {
    case 'completed': {
      // An answer not relayed as the upstream sent it (JSON, or a JSON flight's answer to a stream
      // request) is its entry's, in the bytes every later hit on that entry receives.
      const fromEntry = outcome.entry && !writer.started ? cachedPayload(outcome.entry, prepared) : undefined;
      if (!prepared.stream) {
        writer.sendJson(outcome.head.statusCode, fromEntry ?? outcome.json ?? JSON.stringify(outcome.completion ?? {}), outcome.head.headers);
      } else if (writer.started) {
        writer.endStream(DONE_EVENT);
      } else if (fromEntry) {
        writer.startStream(outcome.head);
        writer.endStream(fromEntry);
      } else if (outcome.completion) {
        // A JSON flight answering a stream request: render the completion as a proper stream.
        writer.startStream(outcome.head);
        writer.endStream(completionAsSse(outcome.completion, prepared));
      } else {
        writer.sendError(errors.upstreamBadResponse(prepared.provider));
      }
      return;
    }
    case 'upstream-error':
      context.upstreamStatus = outcome.head.statusCode;
      writer.sendJson(outcome.head.statusCode, outcome.body, outcome.head.headers);
      return;
    case 'failed':
      context.error = outcome.error;
      if (writer.started) writer.failStream(outcome.error);
      else writer.sendError(outcome.error);
      return;
  }
}

function storeWhenSettled(
  store: CacheStore,
  key: string,
  flight: Flight,
  policy: CachePolicy,
  superseded: () => boolean,
): Promise<void> {
  return flight.settled.then((outcome) => storeOutcome(store, key, outcome, policy, superseded));
}

async function storeOutcome(
  store: CacheStore,
  key: string,
  outcome: FlightOutcome,
  policy: CachePolicy,
  superseded: () => boolean,
): Promise<void> {
  if (outcome.kind !== 'completed' || !outcome.entry) return;
  try {
    const encoded = await encodeEntryAsync(outcome.entry);
    if (superseded()) return;
    await store.set(key, encoded, policy.ttlSeconds);
  } catch {
    // Fail open: counted by the store; the answer was already served.
  }
}

function forwardedRequestHeaders(request: FastifyRequest): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const name of FORWARDED_REQUEST_HEADERS) {
    const value = headerValue(request.headers[name]);
    if (value !== undefined) headers[name] = value;
  }
  return headers;
}

export function headerValue(value: string | string[] | undefined): string | undefined {
  const one = Array.isArray(value) ? value[0] : value;
  return one === undefined || one === '' ? undefined : one;
}
