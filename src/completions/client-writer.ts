/**
 * Writes one client's answer on a cached route: a JSON body or an SSE stream, from a live flight
 * or from a cache entry. It owns the raw response from its first byte (Fastify is told via
 * hijack): every answer's head comes from answerHead (write-hit.ts), a hit is written by
 * writeCachedAnswer, and stream bytes leave the moment they arrive, without Web stream conversions.
 */
import type { FastifyReply } from 'fastify';
import type { GatewayError } from '../errors.js';
import type { RequestContext } from '../request-context.js';
import { cacheOutcomeOf } from '../request-log.js';
import type { CachedAnswer } from './cache-answers.js';
import type { FlightHead } from './flight.js';
import type { HitRequest } from './known-requests.js';
import { answerHead, writeCachedAnswer, type AnswerBody, type HitDeps } from './write-hit.js';

export const DONE_EVENT = 'data: [DONE]\n\n';

export class ClientWriter {
  private headSent = false;
  private firstByteAt: number | undefined;
  bytes = 0;

  constructor(
    private readonly reply: FastifyReply,
    private readonly requestId: string,
    private readonly provider: string,
    private readonly context: RequestContext,
  ) {}

  get started(): boolean {
    return this.headSent || this.reply.sent;
  }

  get timeToFirstByte(): number | undefined {
    return this.firstByteAt;
  }

  startStream(head: FlightHead | undefined): void {
    if (this.started) return;
    this.writeHead(200, head?.headers, 'sse');
  }

  write(text: string | Buffer): void {
    if (this.reply.raw.destroyed) return;
    this.markFirstByte();
    this.bytes += typeof text === 'string' ? Buffer.byteLength(text) : text.length;
    this.reply.raw.write(text);
  }

  endStream(text?: string | Buffer): void {
    if (this.reply.raw.destroyed) return;
    if (text) this.write(text);
    this.reply.raw.end();
  }

  /** Ends a started stream with an error event the OpenAI SDKs raise as an APIError. */
  failStream(error: GatewayError): void {
    this.endStream(`data: ${JSON.stringify(error.toBody())}\n\n`);
  }

  sendJson(statusCode: number, body: Buffer | string, headers?: Readonly<Record<string, string>>): void {
    if (this.started) return;
    const bytes = typeof body === 'string' ? Buffer.from(body) : body;
    this.writeHead(statusCode, headers, bytes.byteLength);
    this.markFirstByte();
    this.bytes += bytes.byteLength;
    this.reply.raw.end(bytes);
  }

  sendError(error: GatewayError): void {
    this.sendJson(error.statusCode, JSON.stringify(error.toBody()), error.headers);
  }

  /** A hit (a stored entry, or the entry of a flight that has answered): `payload` is cachedPayload's. */
  sendCached(request: HitRequest, entry: CachedAnswer, payload: Buffer, deps: HitDeps): void {
    if (this.started) return;
    this.headSent = true;
    this.reply.hijack();
    this.markFirstByte();
    this.bytes += payload.byteLength;
    writeCachedAnswer(this.reply.raw, this.requestId, request, entry, payload, this.context, deps);
  }

  /** The outcome in X-Cache is the one the request has reached when its answer starts. */
  private writeHead(statusCode: number, extra: Readonly<Record<string, string>> | undefined, body: AnswerBody): void {
    this.headSent = true;
    this.reply.hijack();
    const cache = cacheOutcomeOf(this.context);
    this.reply.raw.writeHead(statusCode, answerHead(this.requestId, this.provider, cache, undefined, extra, body));
  }

  private markFirstByte(): void {
    this.firstByteAt ??= performance.now();
  }
}
