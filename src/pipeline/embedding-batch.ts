/**
 * An embeddings batch answered input by input: each input is looked up under its own key (the
 * request holding only that input), the inputs not found go upstream in one call holding only
 * them, and the answer puts cached and fresh vectors back in the request's order. Each fresh
 * vector is then stored under its own key, with its share of the tokens billed for the call.
 *
 * X-Cache: HIT (every input cached), MISS (none), PARTIAL (some), BYPASS (the lookup skipped or
 * the cache down); X-Cache-Hits: <cached>/<inputs> on every answer that looked up. `usage` is
 * what this request was billed: the upstream call's, 0 when nothing went upstream.
 */
import type { ServerResponse } from 'node:http';
import { encodeEntryAsync, type CacheEntry } from '../cache/entry.js';
import {
  batchAnswer,
  batchInputsOf,
  embeddingUsage,
  parseEmbeddingAnswer,
  promptTokensOf,
  singleInputAnswer,
  singleInputBody,
  storedVectorOf,
  tokenShares,
  type EmbeddingInput,
} from '../cache/embedding-inputs.js';
import { cacheKey } from '../cache/key.js';
import { ageSeconds, isFreshEnough, type CachePolicy } from '../cache/policy.js';
import { readStore, type StoreRead } from '../cache/store-read.js';
import type { CacheStore } from '../cache/store.js';
import { errors } from '../errors.js';
import { decodeCachedAnswer } from './cache-answers.js';
import { ClientWriter } from './client-writer.js';
import { Flight, type FlightOutcome, type FlightSubscriber } from './flight.js';
import { forwardedRequestHeaders } from './follow-flight.js';
import type { PipelineDeps } from './pipeline-deps.js';
import type { PreparedRequest } from './prepare.js';

export interface EmbeddingBatch {
  response: ServerResponse;
  requestId: string;
  headers: Record<string, string | string[] | undefined>;
  prepared: PreparedRequest;
  inputs: EmbeddingInput[];
  scope: string;
  policy: CachePolicy;
  /** Who the request is counted for (limits/user-id.ts). */
  user: string | undefined;
}

/** One distinct input of the batch (a text sent twice is looked up, and paid, once). */
interface DistinctInput {
  input: EmbeddingInput;
  key: string;
  /** Where it stands in the request. */
  positions: number[];
  /** Its vector as JSON text, once known (from the cache, or from the upstream call). */
  cached?: { vector: string; entry: CacheEntry };
}

/** Answers the batch; the writer it returns owns the request's outcome (what left, when, and how). */
export function answerEmbeddingBatch(batch: EmbeddingBatch, deps: PipelineDeps, store: CacheStore): ClientWriter {
  const { prepared, response } = batch;
  const writer = new ClientWriter(response, batch.requestId, prepared);
  // Every cached-route answer names the model that answered (X-Gateway-Model).
  writer.answeredBy(prepared, undefined);
  const distinct = distinctInputs(batch);
  const reads = batch.policy.lookup ? distinct.map((one) => readStore(store, one.key)) : [];
  const settle = (settled: StoreRead[]): void => {
    try {
      const cacheUp = takeHits(distinct, settled, batch.policy);
      if (!response.destroyed) answerWithHits(batch, distinct, cacheUp, writer, deps, store);
    } catch (error) {
      writer.sendError(errors.internal(error));
    }
  };
  if (reads.some((read) => read instanceof Promise)) void Promise.all(reads).then(settle);
  else settle(reads as StoreRead[]);
  return writer;
}

function distinctInputs(batch: EmbeddingBatch): DistinctInput[] {
  const { prepared, scope } = batch;
  const byKey = new Map<string, DistinctInput>();
  batch.inputs.forEach((input, position) => {
    const key = cacheKey({ scope, provider: prepared.provider, endpoint: prepared.endpoint, body: singleInputBody(prepared.body, input) });
    const known = byKey.get(key);
    if (known) known.positions.push(position);
    else byKey.set(key, { input, key, positions: [position] });
  });
  return [...byKey.values()];
}

/** Fills `cached` from the reads; false when the cache could not be read (fail open: all go upstream). */
function takeHits(distinct: DistinctInput[], reads: StoreRead[], policy: CachePolicy): boolean {
  let cacheUp = true;
  reads.forEach((read, index) => {
    if (read.failed) {
      cacheUp = false;
      return;
    }
    const one = distinct[index]!;
    if (read.value === undefined) return;
    const entry = decodeCachedAnswer(read.value, one.key);
    if (entry?.form !== 'json' || !isFreshEnough(policy, entry.storedAt)) return;
    const vector = storedVectorOf(entry.body);
    if (vector !== undefined) one.cached = { vector, entry };
  });
  return cacheUp;
}

function answerWithHits(batch: EmbeddingBatch, distinct: DistinctInput[], cacheUp: boolean, writer: ClientWriter, deps: PipelineDeps, store: CacheStore): void {
  const { prepared } = batch;
  const missing = distinct.filter((one) => !one.cached);
  const total = batch.inputs.length;
  const cachedCount = total - missing.reduce((sum, one) => sum + one.positions.length, 0);
  const looked = batch.policy.lookup && cacheUp;
  const hitsHeader = looked ? { 'x-cache-hits': `${cachedCount}/${total}` } : undefined;
  if (missing.length === 0) {
    writer.reached('HIT');
    deps.metrics.cacheHits.inc({ endpoint: prepared.endpoint });
    recordSaved(deps, prepared, distinct);
    const oldest = Math.min(...distinct.map((one) => one.cached!.entry.storedAt));
    const model = distinct[0]!.cached!.entry.model;
    writer.sendJson(200, batchAnswer(vectorsInOrder(batch, distinct), model, 0), { age: String(ageSeconds(oldest)), ...hitsHeader });
    return;
  }
  // A paid call: refused while a budget of the user's or the gateway's is spent (limits/limits.ts).
  const admitted = deps.limits.admitPaidCall(batch.user ?? 'anonymous');
  if (admitted instanceof Promise) {
    void admitted.then((refusal) => {
      if (batch.response.destroyed) return;
      if (refusal) writer.sendError(refusal);
      else callForMissing(batch, distinct, missing, looked, writer, deps, store, hitsHeader);
    });
    return;
  }
  if (admitted) writer.sendError(admitted);
  else callForMissing(batch, distinct, missing, looked, writer, deps, store, hitsHeader);
}

/** The one upstream call for the inputs the cache did not hold. */
function callForMissing(
  batch: EmbeddingBatch,
  distinct: DistinctInput[],
  missing: DistinctInput[],
  looked: boolean,
  writer: ClientWriter,
  deps: PipelineDeps,
  store: CacheStore,
  hitsHeader: Record<string, string> | undefined,
): void {
  const { prepared } = batch;
  const total = batch.inputs.length;
  // Counted as a miss only once its call is sent (request-log.ts, cacheOutcomeOf); its errors are a miss's.
  writer.reached(looked ? 'MISS' : 'BYPASS');
  const sent = missing.map((one) => one.input);
  // Nothing cached and nothing sent twice: the call is the request itself, and its answer goes back as the provider sent it.
  const asSent = missing.length === distinct.length && distinct.length === total;
  const upstream: PreparedRequest = { ...prepared, stream: false, body: asSent ? prepared.body : { ...prepared.body, input: sent } };
  const flight = new Flight(deps.clients[prepared.provider], upstream, forwardedRequestHeaders(batch.headers), () => writer.upstreamSent());
  const subscriber: FlightSubscriber = {
    onDone: (outcome) => {
      try {
        finishWithUpstream(batch, distinct, missing, outcome, looked, writer, deps, store, asSent, hitsHeader);
      } catch (error) {
        writer.sendError(errors.internal(error));
      }
    },
  };
  // A client that leaves stops the call: nobody else waits on a batch's own call.
  batch.response.once('close', () => {
    if (!batch.response.writableFinished) flight.unsubscribe(subscriber);
  });
  flight.subscribe(subscriber);
  flight.start();
}

function finishWithUpstream(
  batch: EmbeddingBatch,
  distinct: DistinctInput[],
  missing: DistinctInput[],
  outcome: FlightOutcome,
  looked: boolean,
  writer: ClientWriter,
  deps: PipelineDeps,
  store: CacheStore,
  asSent: boolean,
  hitsHeader: Record<string, string> | undefined,
): void {
  const { prepared } = batch;
  if (outcome.kind === 'failed') {
    writer.sendError(outcome.error);
    return;
  }
  if (outcome.kind === 'upstream-error') {
    writer.sendJson(outcome.head.statusCode, outcome.body, outcome.head.headers);
    return;
  }
  deps.accounting.record(prepared.provider, prepared.model, outcome.usage, 'miss', batch.user);
  const json = outcome.json ?? Buffer.alloc(0);
  const answer = parseEmbeddingAnswer(json, missing.length);
  if (!answer) {
    // Not an answer the gateway can split: passed on as the provider sent it when it is the
    // answer to the very request, else the request cannot be answered.
    if (asSent) writer.sendJson(outcome.head.statusCode, json, { ...outcome.head.headers, ...hitsHeader });
    else writer.sendError(errors.upstreamBadResponse(prepared.provider));
    return;
  }
  const paid = promptTokensOf(answer.usage);
  const shares = tokenShares(
    missing.map((one) => one.input),
    paid,
  );
  const model = answer.model ?? prepared.model;
  const fresh: CacheEntry[] = missing.map((one, index) => {
    const entry: CacheEntry = {
      storedAt: Date.now(),
      form: 'json',
      endpoint: prepared.endpoint,
      provider: prepared.provider,
      model,
      body: singleInputAnswer(answer.vectors[index]!, model, shares[index]!),
      usage: embeddingUsage(shares[index]!),
    };
    one.cached = { vector: answer.vectors[index]!, entry };
    return entry;
  });
  const cachedBefore = distinct.length - missing.length;
  writer.reached(!looked ? 'BYPASS' : cachedBefore === 0 ? 'MISS' : 'PARTIAL');
  // Saved: the inputs that came from the cache, and the repeats of an input paid once.
  recordSaved(
    deps,
    prepared,
    distinct.filter((one) => !missing.includes(one)),
  );
  recordRepeatsSaved(deps, prepared, missing, shares);
  const headers = { ...outcome.head.headers, ...hitsHeader };
  if (asSent) writer.sendJson(outcome.head.statusCode, json, headers);
  else writer.sendJson(outcome.head.statusCode, batchAnswer(vectorsInOrder(batch, distinct), model, paid), headers);
  if (batch.policy.store) storeFresh(store, missing, fresh, batch.policy.ttlSeconds);
}

function vectorsInOrder(batch: EmbeddingBatch, distinct: DistinctInput[]): string[] {
  const vectors: string[] = new Array(batch.inputs.length);
  for (const one of distinct) for (const position of one.positions) vectors[position] = one.cached!.vector;
  return vectors;
}

/** What the cached inputs would have cost (each as often as the request holds it). */
function recordSaved(deps: PipelineDeps, prepared: PreparedRequest, cached: DistinctInput[]): void {
  let tokens = 0;
  for (const one of cached) tokens += promptTokensOf(one.cached!.entry.usage) * one.positions.length;
  if (tokens > 0) deps.accounting.record(prepared.provider, prepared.model, embeddingUsage(tokens), 'hit');
}

function recordRepeatsSaved(deps: PipelineDeps, prepared: PreparedRequest, paidFor: DistinctInput[], shares: number[]): void {
  let tokens = 0;
  paidFor.forEach((one, index) => {
    tokens += shares[index]! * (one.positions.length - 1);
  });
  if (tokens > 0) deps.accounting.record(prepared.provider, prepared.model, embeddingUsage(tokens), 'hit');
}

/** After the answer has left: each fresh vector under its own key (fail open, as every store write). */
function storeFresh(store: CacheStore, missing: DistinctInput[], fresh: CacheEntry[], ttlSeconds: number): void {
  setImmediate(() => {
    missing.forEach((one, index) => {
      encodeEntryAsync(fresh[index]!)
        .then((encoded) => store.set(one.key, encoded, ttlSeconds))
        .catch(() => {
          // Counted by the store; the answer was already served.
        });
    });
  });
}

/** The inputs of an embeddings request to be answered input by input; undefined for any other request. */
export function embeddingBatchInputs(prepared: PreparedRequest | undefined): EmbeddingInput[] | undefined {
  return prepared?.endpoint === 'embeddings' ? batchInputsOf(prepared.body.input) : undefined;
}
