/**
 * Writes one client's answer: a JSON body or an SSE stream, from a live flight or from a
 * cache entry. It owns the raw response once a stream starts (Fastify is told via hijack),
 * so bytes leave the moment they arrive, without Web stream conversions.
 */
import type { FastifyReply } from 'fastify';
import type { OutgoingHttpHeaders } from 'node:http';
import type { GatewayError } from '../errors.js';
import type { FlightHead } from './flight.js';

export const SSE_HEADERS: OutgoingHttpHeaders = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache',
  connection: 'keep-alive',
  // Tells Nginx not to buffer this response (streams must flow chunk by chunk).
  'x-accel-buffering': 'no',
};

export const DONE_EVENT = 'data: [DONE]\n\n';

export class ClientWriter {
  private streaming = false;
  private firstByteAt: number | undefined;
  bytes = 0;

  constructor(private readonly reply: FastifyReply) {}

  get started(): boolean {
    return this.streaming || this.reply.sent;
  }

  get timeToFirstByte(): number | undefined {
    return this.firstByteAt;
  }

  startStream(head: FlightHead | undefined): void {
    if (this.started) return;
    this.streaming = true;
    this.reply.hijack();
    const headers: OutgoingHttpHeaders = { ...(this.reply.getHeaders() as OutgoingHttpHeaders), ...head?.headers, ...SSE_HEADERS };
    this.reply.raw.writeHead(200, headers);
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

  sendJson(statusCode: number, body: Buffer | string, headers: Record<string, string> = {}): void {
    if (this.started) return;
    this.markFirstByte();
    this.bytes += typeof body === 'string' ? Buffer.byteLength(body) : body.length;
    void this.reply.code(statusCode).headers(headers).type('application/json').send(body);
  }

  sendError(error: GatewayError): void {
    this.sendJson(error.statusCode, JSON.stringify(error.toBody()), { ...error.headers });
  }

  private markFirstByte(): void {
    this.firstByteAt ??= performance.now();
  }
}
