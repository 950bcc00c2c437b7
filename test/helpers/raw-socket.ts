/**
 * A raw TCP client for wire-level tests: writes exactly the bytes given (broken framing, NUL
 * bytes, a header sent one byte at a time), records everything received and when the server
 * closed the connection.
 */
import { connect, type Socket } from 'node:net';

export interface RawConnection {
  socket: Socket;
  /** Everything received so far, as latin1 text. */
  received(): string;
  /** Resolves with performance.now() when the connection is closed (by either side). */
  closed: Promise<number>;
  isClosed(): boolean;
}

export async function openRaw(url: string): Promise<RawConnection> {
  const { hostname, port } = new URL(url);
  const socket = connect(Number(port), hostname);
  let text = '';
  let done = false;
  socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
  // A reset after the answer is expected when the server closes on unread bytes.
  socket.on('error', () => undefined);
  const closed = new Promise<number>((resolve) =>
    socket.once('close', () => {
      done = true;
      resolve(performance.now());
    }),
  );
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return { socket, received: () => text, closed, isClosed: () => done };
}

/** Sends `bytes` and waits for the server to close the connection (bounded by `timeoutMs`). */
export async function sendRaw(url: string, bytes: string | Buffer, timeoutMs = 5_000): Promise<{ text: string; closedByServer: boolean }> {
  const connection = await openRaw(url);
  connection.socket.write(bytes);
  const timer = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), timeoutMs).unref());
  const outcome = await Promise.race([connection.closed, timer]);
  connection.socket.destroy();
  return { text: connection.received(), closedByServer: outcome !== 'timeout' };
}

export interface ParsedResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** The first HTTP response in `text` (interim 1xx answers skipped); undefined when incomplete. */
export function firstResponse(text: string): ParsedResponse | undefined {
  let rest = text;
  for (;;) {
    const headEnd = rest.indexOf('\r\n\r\n');
    if (headEnd === -1) return undefined;
    const [statusLine = '', ...lines] = rest.slice(0, headEnd).split('\r\n');
    const status = Number(statusLine.split(' ')[1]);
    const headers: Record<string, string> = {};
    for (const line of lines) {
      const colon = line.indexOf(':');
      headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    rest = rest.slice(headEnd + 4);
    if (status >= 100 && status < 200) continue;
    const length = headers['content-length'];
    if (length !== undefined) {
      const body = Buffer.from(rest, 'latin1');
      if (body.length < Number(length)) return undefined;
      return { status, headers, body: body.subarray(0, Number(length)).toString('utf8') };
    }
    return { status, headers, body: rest };
  }
}

/** Resolves true as soon as `check` holds, false after `timeoutMs`. */
export async function until(check: () => boolean, timeoutMs: number, stepMs = 10): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if (check()) return true;
    await new Promise((resolve) => setTimeout(resolve, stepMs));
  }
  return check();
}
