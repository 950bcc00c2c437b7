/**
 * Header cases of the framing family: injection attempts, huge and numerous headers, raw bytes
 * in values, and every request header the gateway reads (Content-Type, Content-Encoding,
 * Cache-Control, X-Cache-TTL, Open WebUI's, Authorization, X-Request-Id, hop-by-hop ones). On the
 * cached routes most are sent as a differential: the hit fast path and Fastify must agree.
 */
import { gzipSync } from 'node:zlib';
import { ANY, CACHED, build, differential, exchange, latin1Junk, set, without, type FramingMutation, type Headers } from './raw-request.js';

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

const CACHE_CONTROLS = [
  'no-cache',
  'no-store',
  'max-age=0',
  'max-age=-1',
  'max-age=abc',
  'max-age=99999999999',
  'no-cache, no-store',
  'NO-CACHE',
  'max-age="5"',
  '',
  ',,,',
  'private, max-age=10',
  'no-transform',
  'x'.repeat(4_000),
];
const TTLS = ['0', '-1', 'abc', '1e10', '99999999999999', '', ' 5 ', '5, 6', '3600', '0x10', '１２'];
const AUTHS = (key: string) => [
  '',
  'Bearer',
  'Bearer ',
  `bearer ${key}`,
  `Bearer  ${key}`,
  `Bearer ${key} extra`,
  `Basic ${Buffer.from(`u:${key}`).toString('base64')}`,
  'Bearer wrong-key',
  `Bearer ${'k'.repeat(10_000)}`,
  `Token ${key}`,
  `Bearer ${key}\t`,
  `Bearer ${key.slice(0, -1)}`,
];

export const HEADER_MUTATIONS: ReadonlyArray<readonly [number, FramingMutation]> = [
  [
    4,
    (rng, ctx, index) => {
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
    },
  ],
  [
    3,
    (rng, ctx, index) => {
      const b = build(rng, ctx, index);
      const size = rng.pick([4_096, 8_192, 15_000, 17_000, 64_000, 300_000]);
      const name = rng.pick(['X-Long', 'X-OpenWebUI-Chat-Id', 'X-OpenWebUI-User-Id', 'Cookie', 'X-Request-Id']);
      return { label: `${size}-byte ${name} header`, exchanges: [exchange(b, { headers: [...b.headers, [name, 'v'.repeat(size)]] })] };
    },
  ],
  [
    4,
    (rng, ctx, index) => {
      // Half on a passthrough GET: the one place client headers are forwarded, with the gateway's own
      // added to them. Counts mostly around what Node's HTTP parser keeps (about the first 1,000
      // fields; later ones are dropped without an error), on either side of the hop.
      const b = build(rng, ctx, index, rng.chance(0.5) ? [[1, 'files']] : ANY);
      const count = rng.chance(0.6) ? rng.int(985, 1_010) : rng.pick([100, 3_000]);
      const extra: Headers = Array.from({ length: count }, (_, i) => [`X-H${i}`, 'v']);
      return { label: `${count} extra headers on ${b.base.route}`, exchanges: [exchange(b, { headers: [...b.headers, ...extra] })] };
    },
  ],
  [
    3,
    (rng, ctx, index) => {
      const b = build(rng, ctx, index);
      const name = rng.pick([
        'X-Request-Id',
        'X-OpenWebUI-User-Id',
        'X-OpenWebUI-Chat-Id',
        'X-OpenWebUI-Message-Id',
        'Authorization',
        'Cache-Control',
        'X-Cache-TTL',
      ]);
      return {
        label: `latin1 bytes in ${name}`,
        exchanges: [exchange(b, { headers: set(b.headers, name, `${name === 'Authorization' ? 'Bearer ' : ''}${latin1Junk(rng, rng.int(1, 40))}`) })],
      };
    },
  ],
  [
    10,
    (rng, ctx, index) => {
      const type = rng.pick(CONTENT_TYPES);
      return differential(rng, ctx, index, `Content-Type ${JSON.stringify(type)}`, (h) =>
        type === '' ? without(h, 'Content-Type') : set(h, 'Content-Type', type),
      );
    },
  ],
  [
    3,
    (rng, ctx, index) => {
      const b = build(rng, ctx, index, rng.chance(0.7) ? CACHED : ANY);
      const encoding = rng.pick(['gzip', 'gzip (garbage)', 'deflate', 'br', 'identity', 'gzip, gzip', 'x-fuzz']);
      let wire = b.body;
      if (encoding === 'gzip' && b.body) wire = gzipSync(b.body);
      let headers = [...b.headers, ['Content-Encoding', encoding.replace(' (garbage)', '')] as [string, string]];
      if (wire) headers = set(headers, 'Content-Length', String(wire.length));
      return { label: `Content-Encoding ${encoding}`, exchanges: [exchange(b, { headers, ...(wire ? { wire } : {}) })] };
    },
  ],
  [
    3,
    (rng, ctx, index) => {
      const value = rng.pick(CACHE_CONTROLS);
      const pragma = rng.chance(0.2);
      return differential(rng, ctx, index, `Cache-Control ${JSON.stringify(value.slice(0, 30))}${pragma ? ' + Pragma' : ''}`, (h) => {
        const out = [...h, ['Cache-Control', value] as [string, string]];
        return pragma ? [...out, ['Pragma', 'no-cache'] as [string, string]] : out;
      });
    },
  ],
  [
    2,
    (rng, ctx, index) => {
      const ttl = rng.pick(TTLS);
      return differential(rng, ctx, index, `X-Cache-TTL ${JSON.stringify(ttl)}`, (h) => [...h, ['X-Cache-TTL', ttl]]);
    },
  ],
  [
    3,
    (rng, ctx, index) => {
      const name = rng.pick(['X-OpenWebUI-User-Id', 'X-OpenWebUI-Chat-Id', 'X-OpenWebUI-Message-Id', 'X-OpenWebUI-User-Email', 'X-OpenWebUI-User-Role']);
      const value = rng.pick([
        '',
        'u1',
        'u1, u2',
        'x'.repeat(8_000),
        'x'.repeat(15_000),
        '../../admin',
        '"quoted"',
        '🦊'.replace(/[^\x20-\x7e]/g, '?'),
        ' spaced ',
      ]);
      const twice = rng.chance(0.3);
      return differential(rng, ctx, index, `${name} ${value.length > 20 ? `${value.length} bytes` : JSON.stringify(value)}${twice ? ' twice' : ''}`, (h) =>
        twice ? [...h, [name, value], [name, 'other']] : [...h, [name, value]],
      );
    },
  ],
  [
    4,
    (rng, ctx, index) => {
      const value = rng.pick(AUTHS(ctx.clientKey));
      const label = `Authorization ${JSON.stringify(value.replace(ctx.clientKey.slice(0, -1), 'KEY').slice(0, 30))}`;
      if (rng.chance(0.6)) return differential(rng, ctx, index, label, (h) => (value === '' ? without(h, 'Authorization') : set(h, 'Authorization', value)));
      const b = build(rng, ctx, index);
      const twice = rng.chance(0.3);
      const headers = twice
        ? [...b.headers, ['Authorization', value] as [string, string]]
        : value === ''
          ? without(b.headers, 'Authorization')
          : set(b.headers, 'Authorization', value);
      return { label: `${label}${twice ? ' (second header)' : ''} on ${b.base.route}`, exchanges: [exchange(b, { headers })] };
    },
  ],
  [
    2,
    (rng, ctx, index) => {
      const b = build(rng, ctx, index);
      const value = rng.pick(['', 'x'.repeat(200), 'x'.repeat(10_000), 'has spaces', '"quoted"', 'a,b', '../..', '<script>']);
      const twice = rng.chance(0.3);
      return {
        label: `X-Request-Id ${value.length > 20 ? `${value.length} bytes` : JSON.stringify(value)}${twice ? ' twice' : ''}`,
        exchanges: [
          exchange(b, { headers: twice ? [...b.headers, ['X-Request-Id', value], ['X-Request-Id', 'second']] : [...b.headers, ['X-Request-Id', value]] }),
        ],
      };
    },
  ],
  [
    3,
    (rng, ctx, index) => {
      const b = build(rng, ctx, index);
      const extra = rng.pick<Headers>([
        [['Connection', 'close']],
        [
          ['Connection', 'keep-alive'],
          ['Keep-Alive', 'timeout=5, max=100'],
        ],
        [
          ['Connection', 'Upgrade'],
          ['Upgrade', 'websocket'],
        ],
        [
          ['Connection', 'Upgrade, HTTP2-Settings'],
          ['Upgrade', 'h2c'],
          ['HTTP2-Settings', 'AAMAAABkAAQAAP__'],
        ],
        [
          ['Connection', 'x-fuzz-hop'],
          ['X-Fuzz-Hop', '1'],
        ],
        [['TE', 'trailers']],
        [['Proxy-Connection', 'keep-alive']],
        [['Accept', 'text/event-stream']],
        [['Accept-Encoding', 'gzip, br, zstd']],
        [['Range', 'bytes=0-10']],
        [['If-None-Match', '*']],
        [
          ['X-Forwarded-For', '1.2.3.4'],
          ['Forwarded', 'for=1.2.3.4'],
          ['X-Real-IP', '1.2.3.4'],
        ],
      ]);
      return { label: `${extra.map(([n]) => n).join(' + ')} on ${b.base.route}`, exchanges: [exchange(b, { headers: [...b.headers, ...extra] })] };
    },
  ],
];
