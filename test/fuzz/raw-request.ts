/**
 * The parts of the framing and header cases: a valid request of some route, made into an
 * exchange with any head and wire bytes, chunk encoding, and the three-exchange differential
 * that checks the hit fast path and Fastify answer an odd request alike.
 */
import type { Exchange, FuzzCase, FuzzContext } from './cases.js';
import { requestHead } from './http-wire.js';
import { JsonObject } from './json-text.js';
import type { Rng } from './prng.js';
import { baseRequest, bodyOf, jsonFacts, pickRoute, standardHeaders, type BaseRequest, type RouteChoice } from './requests.js';

export type Headers = Array<[string, string]>;

export const CACHED: ReadonlyArray<readonly [number, RouteChoice]> = [
  [5, 'chat'],
  [2, 'completions'],
  [2, 'embeddings'],
];
export const ANY: ReadonlyArray<readonly [number, RouteChoice]> = [
  [10, 'chat'],
  [3, 'completions'],
  [3, 'embeddings'],
  [2, 'models'],
  [2, 'model'],
  [3, 'transcription'],
  [3, 'passthrough'],
  [1, 'files'],
  [2, 'open'],
];

export function set(headers: Headers, name: string, value: string): Headers {
  const out = headers.filter(([n]) => n.toLowerCase() !== name.toLowerCase());
  out.push([name, value]);
  return out;
}

export function without(headers: Headers, name: string): Headers {
  return headers.filter(([n]) => n.toLowerCase() !== name.toLowerCase());
}

export interface Built {
  base: BaseRequest;
  body: Buffer | undefined;
  contentType: string | undefined;
  headers: Headers;
}

export function build(rng: Rng, ctx: FuzzContext, index: number, routes = ANY): Built {
  const base = baseRequest(rng, ctx, index, pickRoute(rng, routes));
  const { body, contentType } = bodyOf(base);
  return { base, body, contentType, headers: standardHeaders(ctx, contentType, body) };
}

/** An exchange from explicit parts; `body` is the bytes on the wire (maybe chunk-encoded). */
export function exchange(
  built: Built,
  parts: { method?: string; target?: string; version?: string; headers?: Headers; wire?: Buffer; halfClose?: boolean; mayClose?: boolean },
): Exchange {
  const method = parts.method ?? built.base.method;
  const target = parts.target ?? built.base.target;
  const wire = parts.wire ?? built.body;
  return {
    head: requestHead(method, target, parts.headers ?? built.headers, parts.version),
    ...(wire && wire.length > 0 ? { body: wire } : {}),
    ...(built.body && wire !== built.body ? { plainBody: built.body } : {}),
    method,
    target,
    ...jsonFacts(built.body, built.base.json !== undefined),
    ...(parts.halfClose ? { halfCloseAfterMs: 300, mayClose: true } : {}),
    ...(parts.mayClose ? { mayClose: true } : {}),
  };
}

export function chunked(body: Buffer, rng: Rng, extensions = false): Buffer {
  const parts: Buffer[] = [];
  let offset = 0;
  while (offset < body.length) {
    const size = Math.min(body.length - offset, rng.int(1, Math.max(1, Math.ceil(body.length / 3))));
    parts.push(Buffer.from(`${size.toString(16)}${extensions ? ';fuzz=1' : ''}\r\n`), body.subarray(offset, offset + size), Buffer.from('\r\n'));
    offset += size;
  }
  parts.push(Buffer.from('0\r\n\r\n'));
  return Buffer.concat(parts);
}

export type FramingMutation = (rng: Rng, ctx: FuzzContext, index: number) => Omit<FuzzCase, 'index' | 'family' | 'freshConnection'>;

export const withBody = (b: Built): b is Built & { body: Buffer } => b.body !== undefined && b.body.length > 0;

/** A built request with a body (body-less routes are redrawn as chat). */
export function buildWithBody(rng: Rng, ctx: FuzzContext, index: number): Built & { body: Buffer } {
  const b = build(rng, ctx, index);
  if (withBody(b)) return b;
  const again = build(rng, ctx, index, CACHED);
  if (!withBody(again)) throw new Error('a cached route without a body');
  return again;
}

/**
 * Three exchanges: a valid request (its answer is stored), then the variant of it (the cache
 * can answer it: the fast path sees it), then the variant with a new prompt (it cannot).
 */
export function differential(
  rng: Rng,
  ctx: FuzzContext,
  index: number,
  label: string,
  vary: (headers: Headers) => Headers,
): Omit<FuzzCase, 'index' | 'family' | 'freshConnection'> {
  const b = build(rng, ctx, index, CACHED);
  const json = b.base.json as JsonObject;
  // No stream: the two answers then differ in nothing but how they were found.
  json.delete('stream');
  const first = { ...b, ...bodyOf(b.base) };
  first.headers = standardHeaders(ctx, first.contentType, first.body);
  const field = b.base.route === 'chat' ? 'messages' : b.base.route === 'completions' ? 'prompt' : 'input';
  const fresh = `fuzz ${ctx.seed}-${index} unseen ${rng.int(0, 1e9)}`;
  json.set(field, field === 'messages' ? [JsonObject.of({ role: 'user', content: fresh })] : fresh);
  const second = { ...b, ...bodyOf(b.base) };
  second.headers = standardHeaders(ctx, second.contentType, second.body);
  return {
    label: `agree: ${label}`,
    exchanges: [exchange(first, {}), exchange(first, { headers: vary(first.headers) }), exchange(second, { headers: vary(second.headers) })],
    agree: [1, 2],
  };
}

export function latin1Junk(rng: Rng, length: number): string {
  let text = '';
  for (let i = 0; i < length; i++) text += String.fromCharCode(rng.int(0x80, 0xff));
  return text;
}
