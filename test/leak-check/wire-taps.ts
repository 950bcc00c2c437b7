/**
 * Taps on node:net sockets in a test worker, installed once per process. They only look; every
 * call goes on to Node's own method with the same arguments.
 * - Bytes a tracked in-process gateway's server writes to its connections: every response,
 *   whatever client read it (fetch, the openai and groq SDKs, node:http, raw sockets, nginx in
 *   front). Watching the server side changes nothing for the tests: no body is teed or drained,
 *   no stream is put into flowing mode, and raw-socket tests are covered as well as SDK ones.
 * - Bytes a client socket in the test process reads from a tracked gateway process's port.
 * - Authorization values written by client sockets (tests, SDKs, the gateway's own upstream
 *   calls): each is a secret the gateway must never echo.
 */
import { Socket, type Server } from 'node:net';
import { append, isRecording, leakState, openEntry, recordSent, registerSecret, type Entry, type Source } from './recorder.js';

interface TapState {
  installed: boolean;
  servers: WeakMap<Server, Source>;
  ports: Map<number, Source>;
  /** Every gateway's port (in-process and process): request bodies sent there are recorded. */
  gatewayPorts: Set<number>;
  sockets: WeakMap<Socket, Entry>;
}

const TAPS = Symbol.for('cachegate.leak-check.taps');
/** Request headers sit at the start of a write; bodies after them are not searched for them. */
const HEAD_BYTES = 16 * 1024;
const SENT_BYTES = 64 * 1024;
/** A request line and its headers, up to the blank line; then header-looking lines written on their own. */
const REQUEST_HEAD = /(?:^|\n)[A-Z]+ \S+ HTTP\/1\.[01]\r?\n[\s\S]*?\r?\n\r?\n/g;
const HEADER_LINE = /^[A-Za-z0-9-]+[ \t]*:[^\n]*$/gm;
const AUTH_HEADER = /(?:^|\n)(?:authorization|x-api-key|api-key)[ \t]*:[ \t]*([^\r\n]*)/gi;

function taps(): TapState {
  const holder = globalThis as { [TAPS]?: TapState };
  holder[TAPS] ??= { installed: false, servers: new WeakMap(), ports: new Map(), gatewayPorts: new Set(), sockets: new WeakMap() };
  return holder[TAPS];
}

/** Responses written on this server's connections belong to `source`. */
export function tapServer(server: Server, source: Source): void {
  taps().servers.set(server, source);
}

/** Request bodies written to this loopback port are recorded (until untapGatewayPort). */
export function tapGatewayPort(port: number): void {
  taps().gatewayPorts.add(port);
}

export function untapGatewayPort(port: number): void {
  taps().gatewayPorts.delete(port);
}

/** Bytes read from this loopback port belong to `source`, a gateway process (until untapPort). */
export function tapPort(port: number, source: Source): void {
  taps().ports.set(port, source);
  tapGatewayPort(port);
}

export function untapPort(port: number): void {
  taps().ports.delete(port);
  untapGatewayPort(port);
}

function textOf(chunk: unknown, encoding: unknown): string | undefined {
  if (typeof chunk === 'string') {
    return typeof encoding === 'string' && (encoding === 'hex' || encoding === 'base64') ? Buffer.from(chunk, encoding).toString('latin1') : chunk;
  }
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength).toString('latin1');
  return undefined;
}

/** Node writes a chunked body's framing (length line, CRLF) apart from the data: skip it, so a key split over two writes is joined. */
function isChunkFraming(text: string): boolean {
  return text === '\r\n' || (text.length <= 8 && /^[0-9a-fA-F]+$/.test(text));
}

/** This connection's entry for the running test (one per connection and test). */
function entryOf(socket: Socket, channel: 'response' | 'process-response', source: Source): Entry {
  const state = leakState();
  const current = taps().sockets.get(socket);
  if (current?.open && current.test === state.test && current.source === source.label) return current;
  const entry = openEntry(channel, source.label);
  taps().sockets.set(socket, entry);
  return entry;
}

function looksLikeKey(value: string): boolean {
  return /^[\x21-\x7e]{12,512}$/.test(value) && new Set(value).size >= 6;
}

function observeWrite(socket: Socket, chunk: unknown, encoding: unknown): void {
  if (!isRecording()) return;
  const server = (socket as Socket & { server?: Server }).server;
  if (server) {
    const source = taps().servers.get(server);
    const text = source && textOf(chunk, encoding);
    if (!source || text === undefined || isChunkFraming(text)) return;
    const figures = leakState().figures;
    if (text.startsWith('HTTP/1.')) figures.responses++;
    figures.responseBytes += text.length;
    append(entryOf(socket, 'response', source), text);
    return;
  }
  if (taps().gatewayPorts.has(socket.remotePort ?? -1)) {
    // Prompts echoed back are short: the start of each write is enough, and bounds the cost of 26 MiB bodies.
    const start = chunk instanceof Uint8Array ? chunk.subarray(0, SENT_BYTES) : typeof chunk === 'string' ? chunk.slice(0, SENT_BYTES) : chunk;
    const body = textOf(start, encoding)?.replace(REQUEST_HEAD, '').replace(HEADER_LINE, '');
    if (body) recordSent(body);
  }
  const head = textOf(chunk instanceof Uint8Array ? chunk.subarray(0, HEAD_BYTES) : chunk, encoding)?.slice(0, HEAD_BYTES);
  if (head === undefined || !/authorization|api-key/i.test(head)) return;
  for (const match of head.matchAll(AUTH_HEADER)) {
    const value = (match[1] ?? '').trim().replace(/^(?:bearer|basic|token)\s+/i, '');
    if (looksLikeKey(value)) registerSecret(value, 'an Authorization value sent by the test process');
  }
}

function observeRead(socket: Socket, chunk: unknown): void {
  const ports = taps().ports;
  if (ports.size === 0 || !isRecording() || (socket as Socket & { server?: Server }).server) return;
  const source = ports.get(socket.remotePort ?? -1);
  const text = source && textOf(chunk, undefined);
  if (!source || text === undefined) return;
  const figures = leakState().figures;
  figures.responses += text.match(/(?:^|\n)HTTP\/1\.[01] \d{3} /g)?.length ?? 0;
  figures.responseBytes += text.length;
  append(entryOf(socket, 'process-response', source), text);
}

type Method = (this: Socket, ...args: unknown[]) => unknown;

export function installWireTaps(): void {
  const state = taps();
  if (state.installed) return;
  state.installed = true;
  const proto = Socket.prototype as unknown as Record<'write' | 'end' | 'push', Method>;
  const { write, end, push } = proto;
  const quietly = (observe: () => void) => {
    try {
      observe();
    } catch {
      // A tap must never break the test it watches.
    }
  };
  proto.write = function (this: Socket, ...args: unknown[]) {
    quietly(() => observeWrite(this, args[0], args[1]));
    return write.apply(this, args);
  };
  proto.end = function (this: Socket, ...args: unknown[]) {
    if (args[0] != null && typeof args[0] !== 'function') quietly(() => observeWrite(this, args[0], args[1]));
    return end.apply(this, args);
  };
  proto.push = function (this: Socket, ...args: unknown[]) {
    if (args[0] != null) quietly(() => observeRead(this, args[0]));
    return push.apply(this, args);
  };
}
