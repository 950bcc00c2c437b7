/**
 * Family "framing": well-formed bodies sent with broken or unusual HTTP around them, over a
 * connection of their own: Content-Length and Transfer-Encoding abuse, header injection, huge
 * and numerous headers, odd methods, versions, request targets and paths, Expect, content
 * types and encodings, cache controls, X-Cache-TTL, Open WebUI's headers, Authorization.
 * Header variants on the cached routes are sent twice (once when the cache holds the answer,
 * once when it does not) and the two answers must agree: the hit fast path and Fastify must
 * treat every input alike.
 */
import { gzipSync } from 'node:zlib';
import type { Exchange, FuzzCase, FuzzContext } from './cases.js';
import { requestHead } from './http-wire.js';
import type { Rng } from './prng.js';
import { baseRequest, bodyOf, jsonFacts, pickRoute, standardHeaders, tinyWav, formBody, type BaseRequest, type RouteChoice } from './requests.js';
import { JsonObject } from './json-text.js';

type Headers = Array<[string, string]>;

const CACHED: ReadonlyArray<readonly [number, RouteChoice]> = [
  [5, 'chat'],
  [2, 'completions'],
  [2, 'embeddings'],
];
const ANY: ReadonlyArray<readonly [number, RouteChoice]> = [
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

function set(headers: Headers, name: string, value: string): Headers {
  const out = headers.filter(([n]) => n.toLowerCase() !== name.toLowerCase());
  out.push([name, value]);
  return out;
}

function without(headers: Headers, name: string): Headers {
  return headers.filter(([n]) => n.toLowerCase() !== name.toLowerCase());
}

interface Built {
  base: BaseRequest;
  body: Buffer | undefined;
  contentType: string | undefined;
  headers: Headers;
}

function build(rng: Rng, ctx: FuzzContext, index: number, routes = ANY): Built {
  const base = baseRequest(rng, ctx, index, pickRoute(rng, routes));
  const { body, contentType } = bodyOf(base);
  return { base, body, contentType, headers: standardHeaders(ctx, contentType, body) };
}

/** An exchange from explicit parts; `body` is the bytes on the wire (maybe chunk-encoded). */
function exchange(built: Built, parts: { method?: string; target?: string; version?: string; headers?: Headers; wire?: Buffer; halfClose?: boolean; mayClose?: boolean }): Exchange {
  const method = parts.method ?? built.base.method;
  const target = parts.target ?? built.base.target;
  const wire = parts.wire ?? built.body;
  return {
    head: requestHead(method, target, parts.headers ?? built.headers, parts.version),
    ...(wire && wire.length > 0 ? { body: wire } : {}),
    method,
    target,
    ...jsonFacts(built.body, built.base.json !== undefined),
    ...(parts.halfClose ? { halfCloseAfterMs: 300, mayClose: true } : {}),
    ...(parts.mayClose ? { mayClose: true } : {}),
  };
}

function chunked(body: Buffer, rng: Rng, extensions = false): Buffer {
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

const ODD_PATHS = (prefix: string, path: string): string[] => [
  `${prefix}/.${path}`,
  `/${prefix}${path}`,
  `${prefix}${path}/`,
  `${prefix}${path}//`,
  `${prefix}/x/..${path}`,
  `${prefix}${path.replace('/', '%2F')}`,
  `${prefix}${path.replace(/\//g, '%2f')}`,
  `${prefix.toUpperCase()}${path}`,
  `${prefix}${path.toUpperCase()}`,
  `${prefix}${path}?x=1&x=2`,
  `${prefix}${path}?`,
  `${prefix}${path}#frag`,
  `${prefix}${path};param`,
  `${prefix}${path}%00`,
  `${prefix}${path}%`,
  `${prefix}${path}/..`,
  `${prefix}/./.${path}`,
  `${prefix}\\${path.slice(1)}`,
  `${prefix}${path}?${'q'.repeat(8_000)}`,
  `/${'a'.repeat(10_000)}`,
  `${prefix}/%2e${path}`,
  `${prefix}/%2e%2e${prefix}${path}`,
  `${prefix}/ü${path}`,
];

/** What a JSON request can carry as Content-Type, and what no JSON parser should accept. */
const CONTENT_TYPES = [
  'application/json; charset=utf-8',
  'application/json;charset=UTF-8',
  'APPLICATION/JSON',
  'application/json garbage',
  'application/json, text/plain',
  'application/jsonx',
  'application/json-patch+json',
  'application/vnd.api+json',
  'text/plain',
  'text/json',
  'application/x-www-form-urlencoded',
  'multipart/form-data',
  'application/octet-stream',
  '',
  ' application/json',
  'application/json; charset=latin1',
  'application/json; boundary=x; charset=utf-16',
  '*/*',
  'application/*',
];

const CACHE_CONTROLS = ['no-cache', 'no-store', 'max-age=0', 'max-age=-1', 'max-age=abc', 'max-age=99999999999', 'no-cache, no-store', 'NO-CACHE', 'max-age="5"', '', ',,,', 'private, max-age=10', 'no-transform', 'x'.repeat(4_000)];
const TTLS = ['0', '-1', 'abc', '1e10', '99999999999999', '', ' 5 ', '5, 6', '3600', '0x10', '１２'];
const AUTHS = (key: string) => ['', 'Bearer', 'Bearer ', `bearer ${key}`, `Bearer  ${key}`, `Bearer ${key} extra`, `Basic ${Buffer.from(`u:${key}`).toString('base64')}`, 'Bearer wrong-key', `Bearer ${'k'.repeat(10_000)}`, `Token ${key}`, `Bearer ${key}\t`, `Bearer ${key.slice(0, -1)}`];

function latin1Junk(rng: Rng, length: number): string {
  let text = '';
  for (let i = 0; i < length; i++) text += String.fromCharCode(rng.int(0x80, 0xff));
  return text;
}

type FramingMutation = (rng: Rng, ctx: FuzzContext, index: number) => Omit<FuzzCase, 'index' | 'family' | 'freshConnection'>;

const withBody = (b: Built): b is Built & { body: Buffer } => b.body !== undefined && b.body.length > 0;

/** A built request with a body (body-less routes are redrawn as chat). */
function buildWithBody(rng: Rng, ctx: FuzzContext, index: number): Built & { body: Buffer } {
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
function differential(rng: Rng, ctx: FuzzContext, index: number, label: string, vary: (headers: Headers) => Headers): Omit<FuzzCase, 'index' | 'family' | 'freshConnection'> {
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

const MUTATIONS: ReadonlyArray<readonly [number, FramingMutation]> = [
  [3, (rng, ctx, index) => {
    const b = buildWithBody(rng, ctx, index);
    return { label: 'Content-Length larger than the body', exchanges: [exchange(b, { headers: set(b.headers, 'Content-Length', String(b.body.length + rng.int(1, 1000))), halfClose: true })] };
  }],
  [3, (rng, ctx, index) => {
    const b = buildWithBody(rng, ctx, index);
    return { label: 'Content-Length smaller than the body', exchanges: [exchange(b, { headers: set(b.headers, 'Content-Length', String(rng.int(0, b.body.length - 1))) })] };
  }],
  [2, (rng, ctx, index) => {
    const b = buildWithBody(rng, ctx, index);
    const same = rng.chance(0.5);
    const headers: Headers = [...b.headers, ['Content-Length', same ? String(b.body.length) : String(b.body.length + 5)]];
    return { label: `duplicate Content-Length (${same ? 'same' : 'different'})`, exchanges: [exchange(b, { headers, halfClose: !same })] };
  }],
  [3, (rng, ctx, index) => {
    const b = buildWithBody(rng, ctx, index);
    const n = b.body.length;
    const value = rng.pick([`+${n}`, ` ${n} `, `${n}, ${n}`, `0x${n.toString(16)}`, '-1', '99999999999999999999', 'abc', '', `${n}.0`, `0${n}`, `${n}\u0000`]);
    return { label: `Content-Length ${JSON.stringify(value.replace(String(n), 'N'))}`, exchanges: [exchange(b, { headers: set(b.headers, 'Content-Length', value), halfClose: true })] };
  }],
  [3, (rng, ctx, index) => {
    const b = buildWithBody(rng, ctx, index);
    const ext = rng.chance(0.3);
    return { label: `chunked body${ext ? ' with extensions' : ''}`, exchanges: [exchange(b, { headers: set(without(b.headers, 'Content-Length'), 'Transfer-Encoding', 'chunked'), wire: chunked(b.body, rng, ext) })] };
  }],
  [2, (rng, ctx, index) => {
    const b = buildWithBody(rng, ctx, index);
    const wire = Buffer.concat([chunked(b.body, rng).subarray(0, -2), Buffer.from('X-Trailer: 1\r\n\r\n')]);
    return { label: 'chunked body with trailers', exchanges: [exchange(b, { headers: set(without(b.headers, 'Content-Length'), 'Transfer-Encoding', 'chunked'), wire })] };
  }],
  [3, (rng, ctx, index) => {
    const b = buildWithBody(rng, ctx, index);
    return { label: 'Content-Length and Transfer-Encoding', exchanges: [exchange(b, { headers: [...b.headers, ['Transfer-Encoding', 'chunked']], wire: chunked(b.body, rng), halfClose: true })] };
  }],
  [4, (rng, ctx, index) => {
    const b = buildWithBody(rng, ctx, index);
    const size = rng.pick(['zz', '-1', 'fffffffffffffffff', '1 1', ' 5', '0x5', '', '5;', 'ffffffff']);
    const wire = Buffer.concat([Buffer.from(`${size}\r\n`), b.body, Buffer.from('\r\n0\r\n\r\n')]);
    return { label: `bad chunk size ${JSON.stringify(size)}`, exchanges: [exchange(b, { headers: set(without(b.headers, 'Content-Length'), 'Transfer-Encoding', 'chunked'), wire, halfClose: true })] };
  }],
  [2, (rng, ctx, index) => {
    const b = buildWithBody(rng, ctx, index);
    const shape = rng.int(0, 2);
    const wire =
      shape === 0
        ? Buffer.concat([Buffer.from(`${(b.body.length + 50).toString(16)}\r\n`), b.body, Buffer.from('\r\n')])
        : shape === 1
          ? chunked(b.body, rng).subarray(0, -5)
          : Buffer.concat([Buffer.from(`${b.body.length.toString(16)}\r\n`), b.body, Buffer.from('0\r\n\r\n')]);
    return { label: ['chunk larger than its data', 'chunked without its last chunk', 'chunk data without its CRLF'][shape] ?? 'chunked', exchanges: [exchange(b, { headers: set(without(b.headers, 'Content-Length'), 'Transfer-Encoding', 'chunked'), wire, halfClose: true })] };
  }],
  [2, (rng, ctx, index) => {
    const b = buildWithBody(rng, ctx, index);
    const te = rng.pick(['Chunked', 'chunked, identity', 'gzip, chunked', 'identity', 'xchunked', 'chunked, chunked', 'chunked ']);
    const chunkedLast = /chunked\s*$/i.test(te);
    return { label: `Transfer-Encoding ${JSON.stringify(te)}`, exchanges: [exchange(b, { headers: set(without(b.headers, 'Content-Length'), 'Transfer-Encoding', te), wire: chunkedLast ? chunked(b.body, rng) : b.body, halfClose: true })] };
  }],
  [4, (rng, ctx, index) => {
    const b = build(rng, ctx, index);
    const name = rng.pick(['X-Request-Id', 'X-OpenWebUI-Chat-Id', 'Cache-Control', 'X-OpenWebUI-User-Id', 'User-Agent']);
    const how = rng.int(0, 6);
    let headers = b.headers;
    let label: string;
    if (how === 0) {
      headers = [...headers, [name, 'abc\r\nX-Fuzz-Injected: 1']];
      label = 'CRLF in a header value';
    } else if (how === 1) {
      headers = [...headers, [name, 'abc\nX-Fuzz-Injected: 1']];
      label = 'bare LF in a header value';
    } else if (how === 2) {
      headers = [...headers, [name, 'abc\rX-Fuzz-Injected: 1']];
      label = 'bare CR in a header value';
    } else if (how === 3) {
      headers = [...headers, [name, 'abc\r\n folded']];
      label = 'obs-fold continuation';
    } else if (how === 4) {
      headers = [...headers, [name, 'a\u0000b']];
      label = 'NUL in a header value';
    } else if (how === 5) {
      headers = [...headers, [`${name} `, 'x']];
      label = 'space before the colon';
    } else {
      headers = [...headers, ['X-Fuzz-Injected', `${latin1Junk(rng, 4)}`], [`Bad\u0001Name`, 'x']];
      label = 'control byte in a header name';
    }
    return { label: `${label} (${name})`, exchanges: [exchange(b, { headers })] };
  }],
  [3, (rng, ctx, index) => {
    const b = build(rng, ctx, index);
    const size = rng.pick([4_096, 8_192, 15_000, 17_000, 64_000, 300_000]);
    const name = rng.pick(['X-Long', 'X-OpenWebUI-Chat-Id', 'X-OpenWebUI-User-Id', 'Cookie', 'X-Request-Id']);
    return { label: `${size}-byte ${name} header`, exchanges: [exchange(b, { headers: [...b.headers, [name, 'v'.repeat(size)]] })] };
  }],
  [2, (rng, ctx, index) => {
    const b = build(rng, ctx, index);
    const count = rng.pick([100, 1_000, 3_000]);
    const extra: Headers = Array.from({ length: count }, (_, i) => [`X-H${i}`, 'v']);
    return { label: `${count} extra headers`, exchanges: [exchange(b, { headers: [...b.headers, ...extra] })] };
  }],
  [3, (rng, ctx, index) => {
    const b = build(rng, ctx, index);
    const name = rng.pick(['X-Request-Id', 'X-OpenWebUI-User-Id', 'X-OpenWebUI-Chat-Id', 'X-OpenWebUI-Message-Id', 'Authorization', 'Cache-Control', 'X-Cache-TTL']);
    return { label: `latin1 bytes in ${name}`, exchanges: [exchange(b, { headers: set(b.headers, name, `${name === 'Authorization' ? 'Bearer ' : ''}${latin1Junk(rng, rng.int(1, 40))}`) })] };
  }],
  [5, (rng, ctx, index) => {
    const b = build(rng, ctx, index);
    const method = rng.pick(['PUT', 'PATCH', 'DELETE', 'OPTIONS', 'TRACE', 'PROPFIND', 'FOO', 'HEAD', 'post', 'GET', 'POST', 'CONNECT', 'M-SEARCH', 'PRI']);
    // Node hands CONNECT to a 'connect' listener and closes the socket when there is none.
    return { label: `method ${method}`, exchanges: [exchange(b, { method, mayClose: method === 'CONNECT' })] };
  }],
  [4, (rng, ctx, index) => {
    const b = build(rng, ctx, index);
    const target = rng.pick([
      `http://127.0.0.1:${ctx.port}${b.base.target}`,
      `http://evil.example${b.base.target}`,
      `HTTP://127.0.0.1:${ctx.port}${b.base.target}`,
      `https://127.0.0.1${b.base.target}`,
      `http://user:pass@127.0.0.1:${ctx.port}${b.base.target}`,
      `127.0.0.1:${ctx.port}`,
      '*',
    ]);
    return { label: `target ${target.replace(String(ctx.port), 'PORT').replace(b.base.target, '/PATH')}`, exchanges: [exchange(b, { target })] };
  }],
  [6, (rng, ctx, index) => {
    const b = build(rng, ctx, index);
    const prefix = b.base.target.startsWith('/openai/v1') ? '/openai/v1' : b.base.target.startsWith('/v1') ? '/v1' : '';
    const path = b.base.target.slice(prefix.length).split('?')[0] ?? '/';
    const target = rng.pick(ODD_PATHS(prefix, path));
    return { label: `odd path (${b.base.route})`, exchanges: [exchange(b, { target: target.replace(/ü/g, '\u00fc') })] };
  }],
  [3, (rng, ctx, index) => {
    const b = build(rng, ctx, index);
    const version = rng.pick(['HTTP/1.0', 'HTTP/1.0+keep-alive', 'HTTP/2.0', 'HTTP/0.9', 'HTTX/1.1', 'HTTP/1.1 no Host', 'HTTP/1.1 two Hosts', 'HTTP/1.1 empty Host', 'HTTP/1.2']);
    if (version === 'HTTP/1.0+keep-alive') return { label: version, exchanges: [exchange(b, { version: 'HTTP/1.0', headers: [...b.headers, ['Connection', 'keep-alive']] })] };
    if (version === 'HTTP/1.1 no Host') return { label: version, exchanges: [exchange(b, { headers: without(b.headers, 'Host') })] };
    if (version === 'HTTP/1.1 two Hosts') return { label: version, exchanges: [exchange(b, { headers: [...b.headers, ['Host', 'evil.example']] })] };
    if (version === 'HTTP/1.1 empty Host') return { label: version, exchanges: [exchange(b, { headers: set(b.headers, 'Host', '') })] };
    return { label: `version ${version}`, exchanges: [exchange(b, { version })] };
  }],
  [3, (rng, ctx, index) => {
    const upload = rng.chance(0.4);
    if (upload) {
      // What curl sends for an upload over 1 MB.
      const model = rng.pick(['whisper-1', 'groq/whisper-large-v3']);
      const form = { boundary: 'fuzzexpect', fields: [['model', model]] as Array<[string, string]>, file: { name: 'file', filename: 'big.wav', type: 'audio/wav', data: tinyWav(600_000) } };
      const body = formBody(form);
      const base: BaseRequest = { route: 'transcription', method: 'POST', target: '/v1/audio/transcriptions', form };
      const contentType = `multipart/form-data; boundary=${form.boundary}`;
      const b: Built = { base, body, contentType, headers: standardHeaders(ctx, contentType, body) };
      return { label: 'Expect: 100-continue, 1.2 MB upload', exchanges: [exchange(b, { headers: [...b.headers, ['Expect', '100-continue']] })] };
    }
    const b = build(rng, ctx, index);
    const value = rng.pick(['100-continue', '100-Continue', 'foo', '', '100-continue, foo']);
    return { label: `Expect: ${value}`, exchanges: [exchange(b, { headers: [...b.headers, ['Expect', value]] })] };
  }],
  [10, (rng, ctx, index) => {
    const type = rng.pick(CONTENT_TYPES);
    return differential(rng, ctx, index, `Content-Type ${JSON.stringify(type)}`, (h) => (type === '' ? without(h, 'Content-Type') : set(h, 'Content-Type', type)));
  }],
  [3, (rng, ctx, index) => {
    const b = build(rng, ctx, index, rng.chance(0.7) ? CACHED : ANY);
    const encoding = rng.pick(['gzip', 'gzip (garbage)', 'deflate', 'br', 'identity', 'gzip, gzip', 'x-fuzz']);
    let wire = b.body;
    if (encoding === 'gzip' && b.body) wire = gzipSync(b.body);
    let headers = [...b.headers, ['Content-Encoding', encoding.replace(' (garbage)', '')] as [string, string]];
    if (wire) headers = set(headers, 'Content-Length', String(wire.length));
    return { label: `Content-Encoding ${encoding}`, exchanges: [exchange(b, { headers, ...(wire ? { wire } : {}) })] };
  }],
  [3, (rng, ctx, index) => {
    const value = rng.pick(CACHE_CONTROLS);
    const pragma = rng.chance(0.2);
    return differential(rng, ctx, index, `Cache-Control ${JSON.stringify(value.slice(0, 30))}${pragma ? ' + Pragma' : ''}`, (h) => {
      const out = [...h, ['Cache-Control', value] as [string, string]];
      return pragma ? [...out, ['Pragma', 'no-cache'] as [string, string]] : out;
    });
  }],
  [2, (rng, ctx, index) => {
    const ttl = rng.pick(TTLS);
    return differential(rng, ctx, index, `X-Cache-TTL ${JSON.stringify(ttl)}`, (h) => [...h, ['X-Cache-TTL', ttl]]);
  }],
  [3, (rng, ctx, index) => {
    const name = rng.pick(['X-OpenWebUI-User-Id', 'X-OpenWebUI-Chat-Id', 'X-OpenWebUI-Message-Id', 'X-OpenWebUI-User-Email', 'X-OpenWebUI-User-Role']);
    const value = rng.pick(['', 'u1', 'u1, u2', 'x'.repeat(8_000), 'x'.repeat(15_000), '../../admin', '"quoted"', '🦊'.replace(/[^\x20-\x7e]/g, '?'), ' spaced ']);
    const twice = rng.chance(0.3);
    return differential(rng, ctx, index, `${name} ${value.length > 20 ? `${value.length} bytes` : JSON.stringify(value)}${twice ? ' twice' : ''}`, (h) => (twice ? [...h, [name, value], [name, 'other']] : [...h, [name, value]]));
  }],
  [4, (rng, ctx, index) => {
    const value = rng.pick(AUTHS(ctx.clientKey));
    const label = `Authorization ${JSON.stringify(value.replace(ctx.clientKey.slice(0, -1), 'KEY').slice(0, 30))}`;
    if (rng.chance(0.6)) return differential(rng, ctx, index, label, (h) => (value === '' ? without(h, 'Authorization') : set(h, 'Authorization', value)));
    const b = build(rng, ctx, index);
    const twice = rng.chance(0.3);
    const headers = twice ? [...b.headers, ['Authorization', value] as [string, string]] : value === '' ? without(b.headers, 'Authorization') : set(b.headers, 'Authorization', value);
    return { label: `${label}${twice ? ' (second header)' : ''} on ${b.base.route}`, exchanges: [exchange(b, { headers })] };
  }],
  [2, (rng, ctx, index) => {
    const b = build(rng, ctx, index);
    const value = rng.pick(['', 'x'.repeat(200), 'x'.repeat(10_000), 'has spaces', '"quoted"', 'a,b', '../..', '<script>']);
    const twice = rng.chance(0.3);
    return { label: `X-Request-Id ${value.length > 20 ? `${value.length} bytes` : JSON.stringify(value)}${twice ? ' twice' : ''}`, exchanges: [exchange(b, { headers: twice ? [...b.headers, ['X-Request-Id', value], ['X-Request-Id', 'second']] : [...b.headers, ['X-Request-Id', value]] })] };
  }],
  [3, (rng, ctx, index) => {
    const b = build(rng, ctx, index);
    const extra = rng.pick<Headers>([
      [['Connection', 'close']],
      [['Connection', 'keep-alive'], ['Keep-Alive', 'timeout=5, max=100']],
      [['Connection', 'Upgrade'], ['Upgrade', 'websocket']],
      [['Connection', 'Upgrade, HTTP2-Settings'], ['Upgrade', 'h2c'], ['HTTP2-Settings', 'AAMAAABkAAQAAP__']],
      [['Connection', 'x-fuzz-hop'], ['X-Fuzz-Hop', '1']],
      [['TE', 'trailers']],
      [['Proxy-Connection', 'keep-alive']],
      [['Accept', 'text/event-stream']],
      [['Accept-Encoding', 'gzip, br, zstd']],
      [['Range', 'bytes=0-10']],
      [['If-None-Match', '*']],
      [['X-Forwarded-For', '1.2.3.4'], ['Forwarded', 'for=1.2.3.4'], ['X-Real-IP', '1.2.3.4']],
    ]);
    return { label: `${extra.map(([n]) => n).join(' + ')} on ${b.base.route}`, exchanges: [exchange(b, { headers: [...b.headers, ...extra] })] };
  }],
];

/** Requests written back to back on one connection: the answers must come whole and in order. */
const pipelined: FramingMutation = (rng, ctx, index) => {
  const count = rng.int(2, 4);
  const exchanges = Array.from({ length: count }, (_, i) => {
    const b = build(rng, ctx, index * 10 + i, rng.chance(0.7) ? CACHED : ANY);
    return exchange(b, {});
  });
  return { label: `${count} pipelined requests`, exchanges, pipelined: true };
};

/**
 * The client hangs up right after sending (perhaps while the upstream call is in flight and
 * others wait on it), then the same request comes twice: both must be answered in full.
 */
const hangUp: FramingMutation = (rng, ctx, index) => {
  const b = build(rng, ctx, index, CACHED);
  const after = rng.pick([0, 1, 3, 10]);
  return { label: `client hangs up after ${after} ms, then the same request twice`, exchanges: [{ ...exchange(b, {}), abortAfterMs: after }, exchange(b, {}), exchange(b, {})] };
};

const MORE: ReadonlyArray<readonly [number, FramingMutation]> = [
  [3, pipelined],
  [3, hangUp],
];

export function framingCase(rng: Rng, ctx: FuzzContext, index: number): FuzzCase {
  const made = rng.weighted([...MUTATIONS, ...MORE])(rng, ctx, index);
  return { index, family: 'framing', freshConnection: true, ...made };
}
