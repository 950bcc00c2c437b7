/**
 * Every cache hit leaves through writeCachedAnswer, wherever the entry came from (the store, or a
 * flight that has answered while its entry is still being written): one place for the answer's
 * headers and their order, the HIT metric and the cost it saved. The head of every other answer on the cached
 * routes (a miss, a coalesced follower, an error) is made by the same answerHead, so a client
 * sees one header set in one order, whatever answered it.
 */
import { headerSafe } from '../http/header-value.js';
import type { ServerResponse } from 'node:http';
import type { Accounting } from '../accounting.js';
import { ageSeconds } from '../cache/policy.js';
import type { CacheOutcome, GatewayMetrics } from '../metrics.js';
import type { RequestOutcome } from '../request-outcome.js';
import { entryAsJson, entryAsSse, type CachedAnswer } from './cache-answers.js';
import type { HitRequest } from './known-requests.js';

/** What the body of an answer is: a JSON document of this many bytes, or an SSE stream. */
export type AnswerBody = number | 'sse';

/** Headers a stream goes out with; framing and length are left to Node (chunked). */
const SSE_HEADERS: Readonly<Record<string, string>> = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache',
  connection: 'keep-alive',
  // Tells Nginx not to buffer this response (streams must flow chunk by chunk).
  'x-accel-buffering': 'no',
};
const SSE_HEADER_PAIRS: readonly string[] = Object.entries(SSE_HEADERS).flat();

export interface HitDeps {
  metrics: GatewayMetrics;
  accounting: Accounting;
}

/**
 * The head of an answer on the cached routes, as Node's writeHead takes it (a flat name/value
 * array: no header object is built and none is copied). Always in this order: x-request-id,
 * x-gateway-provider, x-gateway-model (the model that answered), x-cache, age (a hit's only),
 * x-gateway-fallback (the model asked for, when another answered), what the provider or the
 * error adds, then the content headers.
 */
export function answerHead(
  requestId: string,
  provider: string,
  cache: CacheOutcome,
  age: string | undefined,
  extra: Readonly<Record<string, string>> | undefined,
  body: AnswerBody,
  model?: string,
  fallbackFrom?: string,
): string[] {
  const head =
    model === undefined
      ? ['x-request-id', requestId, 'x-gateway-provider', provider, 'x-cache', cache]
      : ['x-request-id', requestId, 'x-gateway-provider', provider, 'x-gateway-model', headerSafe(model), 'x-cache', cache];
  if (age !== undefined) head.push('age', age);
  if (fallbackFrom !== undefined) head.push('x-gateway-fallback', headerSafe(fallbackFrom));
  if (extra !== undefined) for (const name in extra) head.push(name, extra[name]!);
  if (body === 'sse') for (const part of SSE_HEADER_PAIRS) head.push(part);
  else head.push('content-type', 'application/json', 'content-length', String(body));
  return head;
}

/** A stored entry as this request must receive it (JSON or SSE); undefined when it cannot serve it. */
export function cachedPayload(entry: CachedAnswer, request: HitRequest): Buffer | undefined {
  return request.stream ? entryAsSse(entry, request.includeUsage) : entryAsJson(entry);
}

/**
 * Writes a hit: `payload` is cachedPayload(entry, request). The whole answer is handed to the
 * socket at once, so it is complete from here; the caller records the outcome it returns
 * (metrics and log line) as it records any other.
 */
export function writeCachedAnswer(
  response: ServerResponse,
  requestId: string,
  request: HitRequest,
  entry: CachedAnswer,
  payload: Buffer,
  deps: HitDeps,
): RequestOutcome {
  const sentAt = performance.now();
  deps.metrics.cacheHits.inc({ endpoint: request.endpoint });
  deps.accounting.record(request.provider, request.model, entry.usage, 'hit');
  const age = String(ageSeconds(entry.storedAt));
  response.writeHead(200, answerHead(requestId, request.provider, 'HIT', age, undefined, request.stream ? 'sse' : payload.byteLength, request.upstreamModel));
  response.end(payload);
  return {
    cache: 'HIT',
    upstreamCalled: false,
    provider: request.provider,
    model: request.model,
    error: undefined,
    status: 200,
    bytes: payload.byteLength,
    firstByteAt: sentAt,
  };
}
