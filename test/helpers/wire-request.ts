/**
 * Requests written exactly as given. wireRequest (node:http): the request target is not parsed
 * or normalised (`/v1/./x`, `//v1/x`, absolute-form all go out as written), any header may be
 * set (`Expect`, `Connection`, hop-by-hop ones), one connection per request. rawExchange (a
 * plain socket): bytes in, bytes out, and whether the server closed the connection.
 */
import { request } from 'node:http';
import { connect } from 'node:net';

export interface WireResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  /** The raw response header lines (name, value, name, value…), to see repeated fields. */
  rawHeaders: string[];
}

export interface WireOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: Buffer | string;
  /** Send the headers with `Expect: 100-continue` and the body only after the 100 Continue. */
  expectContinue?: boolean;
  /** Send the body with Transfer-Encoding: chunked instead of a Content-Length. */
  chunked?: boolean;
}

export function wireRequest(baseUrl: string, target: string, options: WireOptions = {}): Promise<WireResponse> {
  const { hostname, port } = new URL(baseUrl);
  const body = typeof options.body === 'string' ? Buffer.from(options.body) : options.body;
  const headers: Record<string, string> = { ...options.headers };
  if (body !== undefined && !options.chunked) headers['content-length'] = String(body.length);
  if (options.expectContinue) headers.expect = '100-continue';
  return new Promise((resolve, reject) => {
    // agent: false: a connection of its own, closed once the answer is read.
    const req = request({ host: hostname, port, method: options.method ?? 'POST', path: target, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, headers: res.headers, rawHeaders: res.rawHeaders, body: Buffer.concat(chunks) });
        req.destroy();
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    if (options.expectContinue) req.once('continue', () => req.end(body));
    else req.end(body);
  });
}

export interface RawExchange {
  /** Everything the server sent, latin1. */
  text: string;
  /** The server ended the connection within `waitMs`. */
  serverClosed: boolean;
}

/** Writes `bytes` on a new connection and reads until the server closes it or `waitMs` pass. */
export function rawExchange(baseUrl: string, bytes: string | Buffer, waitMs = 3_000): Promise<RawExchange> {
  const { hostname, port } = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    let text = '';
    const finish = (serverClosed: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ text, serverClosed });
    };
    const timer = setTimeout(() => finish(false), waitMs);
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    socket.once('end', () => finish(true));
    socket.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.write(bytes);
  });
}
