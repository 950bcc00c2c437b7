/**
 * Writes one client's answer from a flight on a cached route: a JSON body or an SSE stream,
 * live or from the flight's entry. Every head comes from answerHead (write-hit.ts), so a miss, a
 * coalesced follower and an error read like a hit; stream bytes leave the moment they arrive,
 * without Web stream conversions.
 */
import type { ServerResponse } from 'node:http';
import type { CachedEndpoint } from '../endpoints.js';
import type { GatewayError } from '../errors.js';
import { responsesErrorEvent } from '../openai/responses-types.js';
import type { RequestContext } from '../request-context.js';
import { cacheOutcomeOf } from '../request-log.js';
import type { FlightHead } from './flight.js';
import { answerHead, type AnswerBody } from './write-hit.js';

export const DONE_EVENT = 'data: [DONE]\n\n';

export class ClientWriter {
  private firstByteAt: number | undefined;
  private model: string | undefined;
  private fallbackFrom: string | undefined;
  bytes = 0;

  constructor(
    private readonly response: ServerResponse,
    private readonly requestId: string,
    private provider: string,
    private readonly context: RequestContext,
  ) {}

  /**
   * Who answers, for the head (call before it is written): the provider and model id that
   * answered, and `fallbackFrom`, the model the client asked for, when another one answered.
   */
  answeredBy(provider: string, model: string, fallbackFrom: string | undefined): void {
    this.provider = provider;
    this.model = model;
    this.fallbackFrom = fallbackFrom;
  }

  get started(): boolean {
    return this.response.headersSent;
  }

  /** performance.now() when the first byte of the answer left; undefined before. */
  get timeToFirstByte(): number | undefined {
    return this.firstByteAt;
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
    this.sendJson(error.statusCode, JSON.stringify(error.toBody()), error.headers);
  }

  /** The outcome in X-Cache is the one the request has reached when its answer starts. */
  private writeHead(statusCode: number, extra: Readonly<Record<string, string>> | undefined, body: AnswerBody): void {
    const cache = cacheOutcomeOf(this.context);
    this.response.writeHead(statusCode, answerHead(this.requestId, this.provider, cache, undefined, extra, body, this.model, this.fallbackFrom));
  }

  private markFirstByte(): void {
    this.firstByteAt ??= performance.now();
  }
}
