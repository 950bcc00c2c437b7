/**
 * Family "bytes": valid bodies (JSON and multipart) with their bytes damaged: bits flipped,
 * cut short, bytes inserted or removed, invalid UTF-8 and NULs spliced in. The HTTP framing
 * stays correct (Content-Length is the damaged body's), so only the body parsers are tested.
 */
import type { FuzzCase, FuzzContext } from './cases.js';
import type { Rng } from './prng.js';
import { BODY_ROUTES, baseRequest, bodyOf, exchangeOf, pickRoute } from './requests.js';

const INVALID_UTF8: readonly Buffer[] = [
  Buffer.from([0xff]),
  Buffer.from([0xc3]), // a lead byte with no continuation
  Buffer.from([0x80]), // a continuation with no lead
  Buffer.from([0xed, 0xa0, 0x80]), // a UTF-16 surrogate, encoded (forbidden in UTF-8)
  Buffer.from([0xc0, 0xaf]), // an overlong '/'
  Buffer.from([0xf4, 0x90, 0x80, 0x80]), // beyond U+10FFFF
  Buffer.from([0xef, 0xbb, 0xbf]), // a BOM, valid UTF-8 but not where JSON expects it
  Buffer.from([0x00]),
];

const STRUCTURAL = Buffer.from('{}[]",:\\ \n0-eE.tfn');

type ByteMutation = (rng: Rng, body: Buffer) => [Buffer, string];

const at = (rng: Rng, body: Buffer) => rng.int(0, Math.max(0, body.length - 1));

const BYTE_MUTATIONS: ReadonlyArray<readonly [number, ByteMutation]> = [
  [
    4,
    (rng, body) => {
      const out = Buffer.from(body);
      const flips = rng.int(1, 4);
      for (let i = 0; i < flips; i++) {
        const p = at(rng, out);
        out[p] = (out[p] ?? 0) ^ (1 << rng.int(0, 7));
      }
      return [out, 'bit flips'];
    },
  ],
  [3, (rng, body) => [body.subarray(0, rng.int(0, body.length - 1)), 'truncated']],
  [
    3,
    (rng, body) => {
      const p = at(rng, body);
      return [Buffer.concat([body.subarray(0, p), rng.bytes(rng.int(1, 16)), body.subarray(p)]), 'random bytes inserted'];
    },
  ],
  [
    4,
    (rng, body) => {
      const p = at(rng, body);
      return [Buffer.concat([body.subarray(0, p), rng.pick(INVALID_UTF8), body.subarray(p)]), 'invalid utf-8 inserted'];
    },
  ],
  [
    2,
    (rng, body) => {
      const p = at(rng, body);
      return [Buffer.concat([body.subarray(0, p), body.subarray(Math.min(body.length, p + rng.int(1, 32)))]), 'bytes deleted'];
    },
  ],
  [
    2,
    (rng, body) => {
      const p = at(rng, body);
      const span = body.subarray(p, p + rng.int(1, 64));
      return [Buffer.concat([body.subarray(0, p), span, span, body.subarray(p + span.length)]), 'span duplicated'];
    },
  ],
  [
    3,
    (rng, body) => {
      const out = Buffer.from(body);
      out[at(rng, out)] = STRUCTURAL[rng.int(0, STRUCTURAL.length - 1)] ?? 0x7b;
      return [out, 'structural byte replaced'];
    },
  ],
  [1, (_rng, body) => [Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), body]), 'leading BOM']],
  [
    1,
    (rng, body) => [
      Buffer.concat([body, rng.pick([Buffer.from('garbage'), Buffer.from('\n'), Buffer.from('\u0000'), Buffer.from('}'), Buffer.from(' {"model":"x"}')])]),
      'trailing bytes',
    ],
  ],
  [1, (_rng, body) => [Buffer.from(body.toString('latin1'), 'utf16le'), 'as utf-16']],
];

export function bytesCase(rng: Rng, ctx: FuzzContext, index: number): FuzzCase {
  const base = baseRequest(rng, ctx, index, pickRoute(rng, BODY_ROUTES));
  const { body, contentType } = bodyOf(base);
  let damaged = body ?? Buffer.alloc(0);
  const labels: string[] = [];
  const count = rng.weighted([
    [6, 1],
    [3, 2],
    [1, 4],
  ] as const);
  for (let i = 0; i < count; i++) {
    const [out, label] = rng.weighted(BYTE_MUTATIONS)(rng, damaged);
    damaged = out;
    labels.push(label);
  }
  return {
    index,
    family: 'bytes',
    label: `${base.route}: ${labels.join(' + ')}`,
    freshConnection: false,
    exchanges: [exchangeOf(ctx, base, damaged, contentType)],
  };
}
