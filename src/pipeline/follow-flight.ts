/**
 * A request the cache did not answer: it joins the flight already under way for its key
 * (COALESCED) or starts one (MISS, or BYPASS when the cache was skipped or is down), and its
 * client writer follows that flight to the end: the stream's events as they arrive, then the
 * answer, the provider's error or the gateway's. The flight itself tees the upstream's answer to
 * every client following it and, once complete, to the store.
 */
import type { ServerResponse } from 'node:http';
import { encodeEntryAsync } from '../cache/entry.js';
import type { CachePolicy } from '../cache/policy.js';
import type { CacheStore } from '../cache/store.js';
import { errors } from '../errors.js';
import { completionAsSse } from './cache-answers.js';
import { type ClientWriter, DONE_EVENT } from './client-writer.js';
import { Flight, type FlightOutcome, type FlightSubscriber } from './flight.js';
import type { PipelineDeps } from './pipeline-deps.js';
import type { PreparedRequest } from './prepare.js';
import { cachedPayload } from './write-hit.js';
import { answerKey, fallbackChain, tellWhoAnswered } from './fallback.js';

/** Client request headers that carry meaning for the provider and are safe to pass on. */
const FORWARDED_REQUEST_HEADERS = ['openai-organization', 'openai-project', 'openai-beta'];

export interface Follower {
  response: ServerResponse;
  requestId: string;
  headers: Record<string, string | string[] | undefined>;
  prepared: PreparedRequest;
  /** Writes this client's answer and owns its outcome: the flight's modules tell it what they learn. */
  writer: ClientWriter;
  /** Who the request is counted for (limits/user-id.ts). */
  user: string | undefined;
  /** The request's cache scope: a fallback's answer is stored under the fallback's key in it. */
  scope?: string;
}

/** What a client can follow: a flight of this process, or another replica's (remote-flight.ts). */
export type FollowableFlight = Pick<Flight, 'subscribe' | 'unsubscribe' | 'settled' | 'result' | 'current' | 'fellBack'>;

/** Joins a flight still running for this request's key; the follower's writer follows it. */
export function joinFlight(flight: FollowableFlight, follower: Follower, deps: PipelineDeps): void {
  follower.writer.reached('COALESCED');
  deps.metrics.cacheCoalesced.inc({ endpoint: follower.prepared.endpoint });
  follow(flight, follower, deps, 'hit');
}

/**
 * Starts this request's own upstream call. `key`: its cache key ('' when the policy neither
 * reads nor writes the cache); `canShare`: whether its answer is stored (and, until then,
 * served to identical requests from the flight).
 */
export function startFlight(follower: Follower, key: string, policy: CachePolicy, canShare: boolean, deps: PipelineDeps): void {
  const flight = launchFlight(follower, key, policy, canShare, deps);
  // Followed before it starts: a call refused at once (no usable key) fails synchronously.
  follow(flight, follower, deps, 'miss');
  flight.start();
}

/** startFlight's upstream call, registered, stored and accounted for, not yet started nor followed. */
export function launchFlight(follower: Follower, key: string, policy: CachePolicy, canShare: boolean, deps: PipelineDeps): Flight {
  const { prepared, writer } = follower;
  const flight = new Flight(
    deps.clients[prepared.provider],
    prepared,
    forwardedRequestHeaders(follower.headers),
    () => writer.upstreamSent(),
    fallbackChain(prepared, follower.requestId, deps),
  );
  // With a store write to wait for, the flight stays joinable until the entry can be read.
  let registered = false;
  // A flight replaced in the registry by a newer one (a no-cache refresh) must not write its
  // older answer over the newer one when its own write happens to finish last.
  const superseded = (): boolean => registered && deps.flights.get(key) !== flight;
  const storeKey = (): string => answerKey(flight, key, follower.scope ?? '');
  const stored = canShare && deps.store ? storeWhenSettled(deps.store, storeKey, flight, policy, superseded) : flight.settled;
  if (key && policy.store) registered = deps.flights.register(key, flight, stored);
  // What the upstream call cost is counted once, by the flight, not by the client that started
  // it: that client may leave while coalesced ones still receive (and the upstream bills) it all.
  void flight.settled.then((outcome) => {
    if (outcome.kind === 'completed') deps.accounting.record(flight.current.provider, flight.current.model, outcome.usage, 'miss', follower.user);
  });
  return flight;
}

/** Subscribes this client's writer to a flight; it leaves the flight when its client goes away. */
export function follow(flight: FollowableFlight, follower: Follower, deps: PipelineDeps, paid: 'hit' | 'miss'): void {
  const { prepared, response, writer } = follower;
  const subscriber: FlightSubscriber = {
    client: follower,
    onStreamStart: prepared.stream
      ? (head) => {
          tellWhoAnswered(flight, prepared, writer);
          writer.startStream(head);
        }
      : undefined,
    onEvent: prepared.stream
      ? (event) => {
          if (event.usageOnly && !prepared.includeUsage) return;
          writer.write(event.data);
        }
      : undefined,
    onDone: (outcome) => {
      // X-Cache is the outcome reached by now (client-writer.ts): a miss refused before any
      // upstream call (no usable key) was no miss, and its answer says so.
      tellWhoAnswered(flight, prepared, writer);
      try {
        answerFromOutcome(outcome, prepared, writer);
      } catch (error) {
        // A defect in writing this one answer: its client gets a 500 or a cut connection, never
        // a hang, and the flight's other clients are still answered.
        answerDefect(error, writer, response, deps);
        return;
      }
      // The upstream call's own cost is counted by its flight; answers that rode on it saved theirs.
      // (A follower of another replica that called upstream itself after all is a miss by now.)
      if (outcome.kind === 'completed' && paid === 'hit' && writer.cacheReached === 'COALESCED')
        deps.accounting.record(flight.current.provider, flight.current.model, outcome.usage, 'hit');
    },
  };
  // A client that leaves unsubscribes; the call goes on while anyone else still follows it.
  response.once('close', () => {
    if (!response.writableFinished) flight.unsubscribe(subscriber);
  });
  flight.subscribe(subscriber);
}

function answerDefect(error: unknown, writer: ClientWriter, response: ServerResponse, deps: PipelineDeps): void {
  const internal = errors.internal(error);
  deps.log.error({ err: error }, 'answer could not be written');
  writer.endsWith(internal);
  try {
    if (!writer.started) {
      writer.sendError(internal);
      return;
    }
  } catch {
    // Even the error cannot be written: only cutting the connection tells the client.
  }
  response.destroy();
}

function answerFromOutcome(outcome: FlightOutcome, prepared: PreparedRequest, writer: ClientWriter): void {
  switch (outcome.kind) {
    case 'completed': {
      // An answer not relayed as the upstream sent it (JSON, or a JSON flight's answer to a stream
      // request) is its entry's, in the bytes every later hit on that entry receives.
      const fromEntry = outcome.entry && !writer.started ? cachedPayload(outcome.entry, prepared) : undefined;
      if (!prepared.stream) {
        writer.sendJson(outcome.head.statusCode, fromEntry ?? outcome.json ?? JSON.stringify(outcome.completion ?? {}), outcome.head.headers);
      } else if (writer.started) {
        // A Responses stream ends with its last event, without [DONE].
        writer.endStream(prepared.endpoint === 'responses' ? undefined : DONE_EVENT);
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
      writer.sendJson(outcome.head.statusCode, outcome.body, outcome.head.headers);
      return;
    case 'failed':
      if (writer.started) writer.failStream(outcome.error, prepared.endpoint);
      else writer.sendError(outcome.error);
      return;
  }
}

function storeWhenSettled(store: CacheStore, key: () => string, flight: Flight, policy: CachePolicy, superseded: () => boolean): Promise<void> {
  // Encoded after this loop turn: the answer has left by then and the request's record is
  // written first, so an inline encode delays neither it nor the other connections ready now.
  // The flight stays joinable until the write ends, so requests arriving meanwhile lose nothing.
  return flight.settled.then((outcome) =>
    new Promise<void>((resolve) => setImmediate(resolve)).then(() => storeOutcome(store, key(), outcome, policy, superseded)),
  );
}

async function storeOutcome(store: CacheStore, key: string, outcome: FlightOutcome, policy: CachePolicy, superseded: () => boolean): Promise<void> {
  if (outcome.kind !== 'completed' || !outcome.entry) return;
  try {
    const encoded = await encodeEntryAsync(outcome.entry);
    if (superseded()) return;
    await store.set(key, encoded, policy.ttlSeconds);
  } catch {
    // Fail open: counted by the store; the answer was already served.
  }
}

export function forwardedRequestHeaders(headers: Follower['headers']): Record<string, string> {
  const forwarded: Record<string, string> = {};
  for (const name of FORWARDED_REQUEST_HEADERS) {
    const value = headerValue(headers[name]);
    if (value !== undefined) forwarded[name] = value;
  }
  return forwarded;
}

export function headerValue(value: string | string[] | undefined): string | undefined {
  const one = Array.isArray(value) ? value[0] : value;
  return one === undefined || one === '' ? undefined : one;
}
