/**
 * HTTP/1.1 over a bare socket, for a fuzzer that must send what no HTTP client would (bad
 * framing, raw bytes in headers, absolute-form targets) and see exactly what comes back:
 * request bytes are written as given, responses are parsed here (interim 1xx, Content-Length,
 * chunked, close-delimited), and a socket that closes without an answer is reported as such.
 */
import { connect, type Socket } from 'node:net';

export interface WireResponse {
  status: number;
  /** Lower-cased names; repeated headers keep every value. */
  headers: Map<string, string[]>;
  body: Buffer;
  /** Statuses of the 1xx answers that came first (100 Continue). */
  interim: number[];
}

export type ReadOutcome =
  | { kind: 'response'; response: WireResponse }
  /** The server closed (or reset) the connection before a complete answer. */
  | { kind: 'closed'; partial: number; error?: string }
  | { kind: 'timeout'; partial: number };

export function header(response: WireResponse, name: string): string | undefined {
  return response.headers.get(name)?.[0];
}

/** The bytes of a request head; values are sent as latin1, so any byte can be put in one. */
export function requestHead(method: string, target: string, headers: ReadonlyArray<readonly [string, string]>, version = 'HTTP/1.1'): Buffer {
  let text = `${method} ${target} ${version}\r\n`;
  for (const [name, value] of headers) text += `${name}: ${value}\r\n`;
  return Buffer.from(`${text}\r\n`, 'latin1');
}

const CRLFCRLF = Buffer.from('\r\n\r\n');

interface Parsed {
  response: WireResponse;
  consumed: number;
}

/**
 * One response from the front of `data`: null while incomplete. `ended`: the server closed,
 * so a close-delimited body is complete.
 */
export function parseResponse(data: Buffer, isHead: boolean, ended: boolean): Parsed | null {
  const interim: number[] = [];
  let offset = 0;
  for (;;) {
    const headEnd = data.indexOf(CRLFCRLF, offset);
    if (headEnd < 0) return null;
    const lines = data.subarray(offset, headEnd).toString('latin1').split('\r\n');
    const statusMatch = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '');
    if (!statusMatch) throw new Error(`not an HTTP response: ${JSON.stringify((lines[0] ?? '').slice(0, 80))}`);
    const status = Number(statusMatch[1]);
    const headers = new Map<string, string[]>();
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      if (colon <= 0) throw new Error(`malformed response header line: ${JSON.stringify(line.slice(0, 80))}`);
      const name = line.slice(0, colon).trim().toLowerCase();
      const values = headers.get(name) ?? [];
      values.push(line.slice(colon + 1).trim());
      headers.set(name, values);
    }
    let bodyStart = headEnd + 4;
    if (status >= 100 && status < 200) {
      interim.push(status);
      offset = bodyStart;
      continue;
    }
    const done = (body: Buffer, end: number): Parsed => ({ response: { status, headers, body, interim }, consumed: end });
    if (isHead || status === 204 || status === 304) return done(Buffer.alloc(0), bodyStart);
    const transferEncoding = headers.get('transfer-encoding')?.join(',').toLowerCase();
    if (transferEncoding?.includes('chunked')) {
      const parts: Buffer[] = [];
      for (;;) {
        const lineEnd = data.indexOf('\r\n', bodyStart);
        if (lineEnd < 0) return null;
        const size = parseInt(data.subarray(bodyStart, lineEnd).toString('latin1').split(';')[0] ?? '', 16);
        if (Number.isNaN(size)) throw new Error('malformed chunk size in the response');
        if (size === 0) {
          // Trailers (none expected) end with an empty line.
          const trailerEnd = data.indexOf(CRLFCRLF, lineEnd);
          const end = data.subarray(lineEnd, lineEnd + 4).equals(CRLFCRLF) ? lineEnd + 4 : trailerEnd < 0 ? -1 : trailerEnd + 4;
          if (end < 0) return null;
          return done(Buffer.concat(parts), end);
        }
        if (data.length < lineEnd + 2 + size + 2) return null;
        parts.push(data.subarray(lineEnd + 2, lineEnd + 2 + size));
        bodyStart = lineEnd + 2 + size + 2;
      }
    }
    const length = headers.get('content-length')?.[0];
    if (length !== undefined) {
      const size = Number(length);
      if (data.length < bodyStart + size) return null;
      return done(data.subarray(bodyStart, bodyStart + size), bodyStart + size);
    }
    // No framing: the body runs to the end of the connection.
    return ended ? done(data.subarray(bodyStart), data.length) : null;
  }
}

/** One client connection; answers are read one at a time, in order. */
export class WireConnection {
  private data: Buffer = Buffer.alloc(0);
  private ended = false;
  private error: Error | undefined;
  private wake: (() => void) | undefined;
  /** Bytes of answers read so far (a reused connection has some). */
  answered = 0;

  private constructor(private readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.data = this.data.length === 0 ? chunk : Buffer.concat([this.data, chunk]);
      this.wake?.();
    });
    socket.on('end', () => this.finish());
    socket.on('close', () => this.finish());
    // A server that answers early (413, 401) and closes makes our remaining writes fail: the
    // answer already read is what counts, so the error is kept, not thrown.
    socket.on('error', (error) => {
      this.error ??= error;
      this.finish();
    });
  }

  static open(port: number, host = '127.0.0.1', timeoutMs = 5_000): Promise<WireConnection> {
    return new Promise((resolve, reject) => {
      const socket = connect({ port, host, noDelay: true });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error('connect timeout'));
      }, timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        resolve(new WireConnection(socket));
      });
      socket.once('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
    });
  }

  get open(): boolean {
    return !this.ended && !this.socket.destroyed;
  }

  /** Bytes received that no parsed answer consumed yet. */
  get pending(): number {
    return this.data.length;
  }

  send(...parts: Buffer[]): void {
    for (const part of parts) if (this.open) this.socket.write(part);
  }

  /** Our side is done sending (the server then sees the end of the request stream). */
  halfClose(): void {
    if (this.open) this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }

  /** The next complete answer, or why there is none, by `deadline` (a Date.now() value). */
  async read(isHead: boolean, deadline: number): Promise<ReadOutcome> {
    for (;;) {
      const parsed = parseResponse(this.data, isHead, this.ended);
      if (parsed) {
        this.data = this.data.subarray(parsed.consumed);
        this.answered += parsed.consumed;
        return { kind: 'response', response: parsed.response };
      }
      if (this.ended)
        return {
          kind: 'closed',
          partial: this.data.length,
          ...(this.error ? { error: (this.error as NodeJS.ErrnoException).code ?? this.error.message } : {}),
        };
      const left = deadline - Date.now();
      if (left <= 0) return { kind: 'timeout', partial: this.data.length };
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, left);
        function done(): void {
          clearTimeout(timer);
          resolve();
        }
        this.wake = done;
      });
      this.wake = undefined;
    }
  }

  private finish(): void {
    this.ended = true;
    this.wake?.();
  }
}
