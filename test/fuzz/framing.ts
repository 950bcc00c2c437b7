/**
 * Family "framing": well-formed bodies sent with broken or unusual HTTP around them, over a
 * connection of their own: Content-Length and Transfer-Encoding abuse, odd methods, versions,
 * request targets and paths, Expect, pipelining, clients hanging up; plus the header cases of
 * header-variants.ts.
 */
import type { FuzzCase, FuzzContext } from './cases.js';
import { HEADER_MUTATIONS } from './header-variants.js';
import type { Rng } from './prng.js';
import { CACHED, ANY, build, buildWithBody, chunked, exchange, set, without, type Built, type FramingMutation, type Headers } from './raw-request.js';
import { formBody, standardHeaders, tinyWav, type BaseRequest } from './requests.js';

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

const MUTATIONS: ReadonlyArray<readonly [number, FramingMutation]> = [
  [
    3,
    (rng, ctx, index) => {
      const b = buildWithBody(rng, ctx, index);
      return {
        label: 'Content-Length larger than the body',
        exchanges: [exchange(b, { headers: set(b.headers, 'Content-Length', String(b.body.length + rng.int(1, 1000))), halfClose: true })],
      };
    },
  ],
  [
    3,
    (rng, ctx, index) => {
      const b = buildWithBody(rng, ctx, index);
      return {
        label: 'Content-Length smaller than the body',
        exchanges: [exchange(b, { headers: set(b.headers, 'Content-Length', String(rng.int(0, b.body.length - 1))) })],
      };
    },
  ],
  [
    2,
    (rng, ctx, index) => {
      const b = buildWithBody(rng, ctx, index);
      const same = rng.chance(0.5);
      const headers: Headers = [...b.headers, ['Content-Length', same ? String(b.body.length) : String(b.body.length + 5)]];
      return { label: `duplicate Content-Length (${same ? 'same' : 'different'})`, exchanges: [exchange(b, { headers, halfClose: !same })] };
    },
  ],
  [
    3,
    (rng, ctx, index) => {
      const b = buildWithBody(rng, ctx, index);
      const n = b.body.length;
      const value = rng.pick([
        `+${n}`,
        ` ${n} `,
        `${n}, ${n}`,
        `0x${n.toString(16)}`,
        '-1',
        '99999999999999999999',
        'abc',
        '',
        `${n}.0`,
        `0${n}`,
        `${n}\u0000`,
      ]);
      return {
        label: `Content-Length ${JSON.stringify(value.replace(String(n), 'N'))}`,
        exchanges: [exchange(b, { headers: set(b.headers, 'Content-Length', value), halfClose: true })],
      };
    },
  ],
  [
    3,
    (rng, ctx, index) => {
      const b = buildWithBody(rng, ctx, index);
      const ext = rng.chance(0.3);
      return {
        label: `chunked body${ext ? ' with extensions' : ''}`,
        exchanges: [exchange(b, { headers: set(without(b.headers, 'Content-Length'), 'Transfer-Encoding', 'chunked'), wire: chunked(b.body, rng, ext) })],
      };
    },
  ],
  [
    2,
    (rng, ctx, index) => {
      const b = buildWithBody(rng, ctx, index);
      const wire = Buffer.concat([chunked(b.body, rng).subarray(0, -2), Buffer.from('X-Trailer: 1\r\n\r\n')]);
      return {
        label: 'chunked body with trailers',
        exchanges: [exchange(b, { headers: set(without(b.headers, 'Content-Length'), 'Transfer-Encoding', 'chunked'), wire })],
      };
    },
  ],
  [
    3,
    (rng, ctx, index) => {
      const b = buildWithBody(rng, ctx, index);
      return {
        label: 'Content-Length and Transfer-Encoding',
        exchanges: [exchange(b, { headers: [...b.headers, ['Transfer-Encoding', 'chunked']], wire: chunked(b.body, rng), halfClose: true })],
      };
    },
  ],
  [
    4,
    (rng, ctx, index) => {
      const b = buildWithBody(rng, ctx, index);
      const size = rng.pick(['zz', '-1', 'fffffffffffffffff', '1 1', ' 5', '0x5', '', '5;', 'ffffffff']);
      const wire = Buffer.concat([Buffer.from(`${size}\r\n`), b.body, Buffer.from('\r\n0\r\n\r\n')]);
      return {
        label: `bad chunk size ${JSON.stringify(size)}`,
        exchanges: [exchange(b, { headers: set(without(b.headers, 'Content-Length'), 'Transfer-Encoding', 'chunked'), wire, halfClose: true })],
      };
    },
  ],
  [
    2,
    (rng, ctx, index) => {
      const b = buildWithBody(rng, ctx, index);
      const shape = rng.int(0, 2);
      const wire =
        shape === 0
          ? Buffer.concat([Buffer.from(`${(b.body.length + 50).toString(16)}\r\n`), b.body, Buffer.from('\r\n')])
          : shape === 1
            ? chunked(b.body, rng).subarray(0, -5)
            : Buffer.concat([Buffer.from(`${b.body.length.toString(16)}\r\n`), b.body, Buffer.from('0\r\n\r\n')]);
      return {
        label: ['chunk larger than its data', 'chunked without its last chunk', 'chunk data without its CRLF'][shape] ?? 'chunked',
        exchanges: [exchange(b, { headers: set(without(b.headers, 'Content-Length'), 'Transfer-Encoding', 'chunked'), wire, halfClose: true })],
      };
    },
  ],
  [
    2,
    (rng, ctx, index) => {
      const b = buildWithBody(rng, ctx, index);
      const te = rng.pick(['Chunked', 'chunked, identity', 'gzip, chunked', 'identity', 'xchunked', 'chunked, chunked', 'chunked ']);
      const chunkedLast = /chunked\s*$/i.test(te);
      return {
        label: `Transfer-Encoding ${JSON.stringify(te)}`,
        exchanges: [
          exchange(b, {
            headers: set(without(b.headers, 'Content-Length'), 'Transfer-Encoding', te),
            wire: chunkedLast ? chunked(b.body, rng) : b.body,
            halfClose: true,
          }),
        ],
      };
    },
  ],
  [
    5,
    (rng, ctx, index) => {
      const b = build(rng, ctx, index);
      const method = rng.pick(['PUT', 'PATCH', 'DELETE', 'OPTIONS', 'TRACE', 'PROPFIND', 'FOO', 'HEAD', 'post', 'GET', 'POST', 'CONNECT', 'M-SEARCH', 'PRI']);
      // Node hands CONNECT to a 'connect' listener and closes the socket when there is none.
      return { label: `method ${method}`, exchanges: [exchange(b, { method, mayClose: method === 'CONNECT' })] };
    },
  ],
  [
    4,
    (rng, ctx, index) => {
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
    },
  ],
  [
    6,
    (rng, ctx, index) => {
      const b = build(rng, ctx, index);
      const prefix = b.base.target.startsWith('/openai/v1') ? '/openai/v1' : b.base.target.startsWith('/v1') ? '/v1' : '';
      const path = b.base.target.slice(prefix.length).split('?')[0] ?? '/';
      const target = rng.pick(ODD_PATHS(prefix, path));
      return { label: `odd path (${b.base.route})`, exchanges: [exchange(b, { target: target.replace(/ü/g, '\u00fc') })] };
    },
  ],
  [
    3,
    (rng, ctx, index) => {
      const b = build(rng, ctx, index);
      const version = rng.pick([
        'HTTP/1.0',
        'HTTP/1.0+keep-alive',
        'HTTP/2.0',
        'HTTP/0.9',
        'HTTX/1.1',
        'HTTP/1.1 no Host',
        'HTTP/1.1 two Hosts',
        'HTTP/1.1 empty Host',
        'HTTP/1.2',
      ]);
      if (version === 'HTTP/1.0+keep-alive')
        return { label: version, exchanges: [exchange(b, { version: 'HTTP/1.0', headers: [...b.headers, ['Connection', 'keep-alive']] })] };
      if (version === 'HTTP/1.1 no Host') return { label: version, exchanges: [exchange(b, { headers: without(b.headers, 'Host') })] };
      if (version === 'HTTP/1.1 two Hosts') return { label: version, exchanges: [exchange(b, { headers: [...b.headers, ['Host', 'evil.example']] })] };
      if (version === 'HTTP/1.1 empty Host') return { label: version, exchanges: [exchange(b, { headers: set(b.headers, 'Host', '') })] };
      return { label: `version ${version}`, exchanges: [exchange(b, { version })] };
    },
  ],
  [
    3,
    (rng, ctx, index) => {
      const upload = rng.chance(0.4);
      if (upload) {
        // What curl sends for an upload over 1 MB.
        const model = rng.pick(['whisper-1', 'groq/whisper-large-v3']);
        const form = {
          boundary: 'fuzzexpect',
          fields: [['model', model]] as Array<[string, string]>,
          file: { name: 'file', filename: 'big.wav', type: 'audio/wav', data: tinyWav(600_000) },
        };
        const body = formBody(form);
        const base: BaseRequest = { route: 'transcription', method: 'POST', target: '/v1/audio/transcriptions', form };
        const contentType = `multipart/form-data; boundary=${form.boundary}`;
        const b: Built = { base, body, contentType, headers: standardHeaders(ctx, contentType, body) };
        return { label: 'Expect: 100-continue, 1.2 MB upload', exchanges: [exchange(b, { headers: [...b.headers, ['Expect', '100-continue']] })] };
      }
      const b = build(rng, ctx, index);
      const value = rng.pick(['100-continue', '100-Continue', 'foo', '', '100-continue, foo']);
      return { label: `Expect: ${value}`, exchanges: [exchange(b, { headers: [...b.headers, ['Expect', value]] })] };
    },
  ],
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
  return {
    label: `client hangs up after ${after} ms, then the same request twice`,
    exchanges: [{ ...exchange(b, {}), abortAfterMs: after }, exchange(b, {}), exchange(b, {})],
  };
};

const MORE: ReadonlyArray<readonly [number, FramingMutation]> = [
  [3, pipelined],
  [3, hangUp],
];

export function framingCase(rng: Rng, ctx: FuzzContext, index: number): FuzzCase {
  const made = rng.weighted([...MUTATIONS, ...HEADER_MUTATIONS, ...MORE])(rng, ctx, index);
  return { index, family: 'framing', freshConnection: true, ...made };
}
