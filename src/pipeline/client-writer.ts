/**
 * Writes one client's answer from a flight on a cached route: a JSON body or an SSE stream,
 * live or from the flight's entry. Every head comes from answerHead (write-hit.ts), so a miss, a
 * coalesced follower and an error read like a hit; stream bytes leave the moment they arrive,
 * without Web stream conversions.
 *
 * It is also the one owner of that answer's outcome (request-outcome.ts): the modules that
 * follow the flight tell it what they learned (who answered, the cache outcome reached, an
 * upstream call sent, the gateway's error), and the request's record takes outcome() once.
 */
import type { ServerResponse } from 'node:http';
import type { CachedEndpoint } from '../endpoints.js';
import type { GatewayError } from '../errors.js';
import { responsesErrorEvent } from '../openai/responses-types.js';
import type { CacheOutcome } from '../metrics.js';
import type { RequestOutcome } from '../request-outcome.js';
import { CLIENT_CLOSED_STATUS, cacheOutcomeOf } from '../request-log.js';
import type { FlightHead } from './flight.js';
import type { PreparedRequest } from './prepare.js';
import { answerHead, type AnswerBody } from './write-hit.js';

export const DONE_EVENT = 'data: [DONE]\n\n';

/** Who answers a request: its provider, its model for labels and logs, the model id that answered. */
export type Answerer = Pick<PreparedRequest, 'provider' | 'model' | 'upstreamModel'>;

export class ClientWriter {
  private firstByteAt: number | undefined;
  /** The head names the model that answered (X-Gateway-Model) once answeredBy said who it is. */
  private modelNamed = false;
  private fallbackFrom: string | undefined;
  private bytes = 0;
  private cache: CacheOutcome | undefined;
  private upstreamCalled = false;
  private error: GatewayError | undefined;

  /** `answerer`: the request as asked, who answers it until answeredBy says otherwise. */
  constructor(
    private readonly response: ServerResponse,
    private readonly requestId: string,
    private answerer: Answerer,
  ) {}

  /**
   * Who answers, for the head (call before it is written) and the record: the provider and
   * model that answered, and `fallbackFrom`, the model the client asked for, when another one did.
   */
  answeredBy(answerer: Answerer, fallbackFrom: string | undefined): void {
    this.answerer = answerer;
    this.modelNamed = true;
    this.fallbackFrom = fallbackFrom;
  }

  /** The cache outcome the request has reached (COALESCED, MISS, BYPASS, …); a later one replaces it. */
  reached(cache: CacheOutcome): void {
    this.cache = cache;
  }

  /** The cache outcome reached so far, before cacheOutcomeOf's rule. */
  get cacheReached(): CacheOutcome | undefined {
    return this.cache;
  }

  /** An upstream call was sent for this request (by the flight it follows). */
  upstreamSent(): void {
    this.upstreamCalled = true;
  }

  /**
   * The gateway's own error this request ends with, for its record (sendError and failStream
   * tell it themselves: every error the gateway writes is in the log line).
   */
  endsWith(error: GatewayError): void {
    this.error = error;
  }

  /** The request's outcome as it stands: a client gone before its answer was complete is a 499. */
  outcome(): RequestOutcome {
    const { response, answerer } = this;
    return {
      cache: this.cache,
      upstreamCalled: this.upstreamCalled,
      provider: answerer.provider,
      model: answerer.model,
      error: this.error,
      status: response.writableFinished ? response.statusCode : CLIENT_CLOSED_STATUS,
      bytes: this.bytes,
      firstByteAt: this.firstByteAt,
    };
  }

  get started(): boolean {
    return this.response.headersSent;
  }

  startStream(head: FlightHead | undefined): void {
    if (this.started) return;
    this.writeHead(200, head?.headers, 'sse');
  }

  write(text: string | Buffer): void {
    if (this.response.destroyed) return;
    this.markFirstByte();
    this.bytes += typeof text === 'string' ? Buffer.byteLength(text) : text.length;
    this.response.write(text);
  }

  endStream(text?: string | Buffer): void {
    if (this.response.destroyed) return;
    if (text) this.write(text);
    this.response.end();
  }

  /** Ends a started stream with an error event the OpenAI SDKs raise as an APIError (in the Responses API's own form there). */
  failStream(error: GatewayError, endpoint?: CachedEndpoint): void {
    this.error = error;
    this.endStream(endpoint === 'responses' ? responsesErrorEvent(error.toBody().error) : `data: ${JSON.stringify(error.toBody())}\n\n`);
  }

  sendJson(statusCode: number, body: Buffer | string, headers?: Readonly<Record<string, string>>): void {
    if (this.started || this.response.destroyed) return;
    const bytes = typeof body === 'string' ? Buffer.from(body) : body;
    this.writeHead(statusCode, headers, bytes.byteLength);
    this.markFirstByte();
    this.bytes += bytes.byteLength;
    this.response.end(bytes);
  }

  sendError(error: GatewayError): void {
    this.error = error;
    this.sendJson(error.statusCode, JSON.stringify(error.toBody()), error.headers);
  }

  /** The outcome in X-Cache is the one the request has reached when its answer starts. */
  private writeHead(statusCode: number, extra: Readonly<Record<string, string>> | undefined, body: AnswerBody): void {
    const cache = cacheOutcomeOf(this.cache, this.upstreamCalled);
    const { provider, upstreamModel } = this.answerer;
    const model = this.modelNamed ? upstreamModel : undefined;
    this.response.writeHead(statusCode, answerHead(this.requestId, provider, cache, undefined, extra, body, model, this.fallbackFrom));
  }

  private markFirstByte(): void {
    this.firstByteAt ??= performance.now();
  }
}
