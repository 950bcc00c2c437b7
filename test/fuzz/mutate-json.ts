/**
 * Family "json": valid requests with their JSON fields (or form fields, or URL parameters)
 * changed: wrong types, missing and unknown fields, huge numbers, unicode, deep nesting,
 * `__proto__`, duplicate keys, stream flags, n, stop lists, forced provider prefixes and
 * unknown models. The bytes stay well-formed HTTP with a correct Content-Length.
 */
import type { FuzzCase, FuzzContext } from './cases.js';
import { JsonObject, RawJson, type Json } from './json-text.js';
import type { Rng } from './prng.js';
import { BODY_ROUTES, baseRequest, bodyOf, exchangeOf, pickRoute, type BaseRequest } from './requests.js';

export const MODEL_VARIANTS: readonly string[] = [
  'no-such-model',
  'gpt-unknown-9',
  'llama-unknown',
  'openai/no-such-model',
  'groq/gpt-4o-mini',
  'openai/llama-3.1-8b-instant',
  'groq/',
  'openai/',
  '/',
  'openai/openai/gpt-4o-mini',
  '../../etc/passwd',
  ' gpt-4o-mini',
  'GPT-4O-MINI',
  'gpt-4o-mini\u0000',
  'gpt-4o-mini\n',
  'モデル',
  '🤖',
  'text-embedding-3-small',
  'whisper-1',
  'x'.repeat(5000),
  `openai/${'y'.repeat(300)}`,
];

/**
 * Values of every JSON type, and the awkward corners of each. `shallow`: no deep nesting (for
 * a passthrough body's `model`, which the fake upstream turns into a string recursively: a
 * real provider answers 400, the fake would crash and make a 502 that is not the gateway's).
 */
export function weirdValue(rng: Rng, depth = 0, shallow = false): Json {
  const pick = rng.int(0, 17);
  if (shallow && pick === 11) return ['not', 'deep'];
  switch (pick) {
    case 0:
      return null;
    case 1:
      return rng.chance(0.5);
    case 2:
      return rng.pick([0, -1, 1, 2, 1.5, 1e308, -1e308, 2 ** 53 + 2, Number.MIN_VALUE]);
    case 3:
      return new RawJson(rng.pick(['1e400', '-1e400', '123456789012345678901234567890', '-0', '0.1e-400', '1E+2', '0.0000000000000000000001']));
    case 4:
      return '';
    case 5:
      return unicodeString(rng);
    case 6:
      return 'z'.repeat(rng.pick([1_000, 65_536, 200_000]));
    case 7:
      return [];
    case 8:
      return new JsonObject();
    case 9:
      return depth > 2 ? 'leaf' : [weirdValue(rng, depth + 1, shallow), weirdValue(rng, depth + 1, shallow)];
    case 10:
      return depth > 2 ? 'leaf' : new JsonObject([[rng.pick(ODD_KEYS), weirdValue(rng, depth + 1, shallow)]]);
    case 11:
      return deepValue(rng);
    case 12:
      return 'true';
    case 13:
      return '1';
    case 14:
      return new RawJson('"\\ud800"');
    case 15:
      return new JsonObject([['__proto__', JsonObject.of({ admin: true })]]);
    case 16:
      return Array.from({ length: rng.pick([100, 2_000]) }, (_, i) => `item ${i}`);
    default:
      return rng.int(-5, 5);
  }
}

const ODD_KEYS = ['foo', '', ' ', 'model ', '\u0000', 'ключ', '🔑', 'a.b', '$where', 'x'.repeat(1000), 'constructor', 'prototype', 'hasOwnProperty'];

export function unicodeString(rng: Rng): string {
  return rng.pick([
    'héllo wörld',
    'e\u0301 vs é',
    '中文字符 テスト 한국어',
    'مرحبا بالعالم',
    '\u202Eevil\u202C',
    'zero\u200Bwidth\uFEFF',
    '🦊🔥👩‍👩‍👧‍👦',
    '\u0000nul\u0000',
    '\u0007\u001b[31mansi',
    '\uFFFD\uFFFE\uFFFF',
    '𝓤𝓷𝓲𝓬𝓸𝓭𝓮'.repeat(500),
    'line\r\nbreak\r\n\r\ndata: [DONE]\n\n',
  ]);
}

/** Nesting around and far beyond the gateway's depth limit, written as text (no recursion). */
export function deepValue(rng: Rng): RawJson {
  const depth = rng.pick([8, 100, 255, 256, 257, 1_000, 5_000, 20_000, 100_000, 100_000]);
  return rng.chance(0.5) ? new RawJson(`${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`) : new RawJson(`${'['.repeat(depth)}${']'.repeat(depth)}`);
}

const STREAM_VALUES: readonly Json[] = [true, false, 'true', 1, 0, null, new JsonObject(), []];
const STREAM_OPTIONS: readonly Json[] = [
  null,
  JsonObject.of({ include_usage: true }),
  JsonObject.of({ include_usage: 'yes' }),
  [],
  'x',
  JsonObject.of({ include_usage: false, extra: 1 }),
];
const N_VALUES: readonly Json[] = [0, -1, 1, 2, 128, 1e9, 1.5, '2', null, new RawJson('1e400')];
const STOP_VALUES: readonly Json[] = ['x', ['a', 'b'], [], [1, 2], [['x']], Array.from({ length: 100 }, (_, i) => `s${i}`), '', null, '\n\n'];

function messagesVariant(rng: Rng, text: string): Json {
  const user = (content: Json) => JsonObject.of({ role: 'user', content });
  return rng.pick<() => Json>([
    () => [],
    () => [new JsonObject()],
    () => [null],
    () => ['hi'],
    () => [JsonObject.of({ role: 'user' })],
    () => [user(null)],
    () => [user([JsonObject.of({ type: 'text', text })])],
    () => [user([JsonObject.of({ type: 'image_url', image_url: JsonObject.of({ url: 'data:image/png;base64,iVBORw0KGgo=' }) })])],
    () => Array.from({ length: 500 }, (_, i) => user(`${text} #${i}`)),
    () => [JsonObject.of({ role: 'system', content: 'be brief' }), user(text)],
    () => [JsonObject.of({ role: 'tool', content: 'x', tool_call_id: 'call_1' })],
    () => [
      JsonObject.of({
        role: 'assistant',
        content: null,
        tool_calls: [JsonObject.of({ id: 'call_1', type: 'function', function: JsonObject.of({ name: 'f', arguments: '{}' }) })],
      }),
      user(text),
    ],
    () => [JsonObject.of({ role: 'wizard', content: text })],
    () => [user(unicodeString(rng))],
    () => [user(weirdValue(rng))],
    () => JsonObject.of({ role: 'user', content: text }),
  ])();
}

function promptVariant(rng: Rng, text: string): Json {
  return rng.pick<Json>(['', [text, text], [1, 2, 3], [[1, 2], [3]], [], new JsonObject(), unicodeString(rng), 'p'.repeat(100_000), [null]]);
}

function inputVariant(rng: Rng, text: string): Json {
  return rng.pick<Json>([
    '',
    [''],
    [],
    [1, 2, 3],
    [[1, 2]],
    Array.from({ length: 2_048 }, (_, i) => `${text} ${i}`),
    new JsonObject(),
    [text, null],
    unicodeString(rng),
    [new JsonObject()],
  ]);
}

type Mutation = (rng: Rng, body: JsonObject, base: BaseRequest) => string;

const requiredOf = (base: BaseRequest): string => (base.route === 'chat' ? 'messages' : base.route === 'completions' ? 'prompt' : 'input');

const MUTATIONS: ReadonlyArray<readonly [number, Mutation]> = [
  [
    4,
    (rng, body, base) => {
      const field = rng.pick(['model', requiredOf(base), 'stream', 'model']);
      body.delete(field);
      return `drop ${field}`;
    },
  ],
  [
    6,
    (rng, body, base) => {
      const field = rng.pick([
        'model',
        requiredOf(base),
        'temperature',
        'max_tokens',
        'user',
        'seed',
        'tools',
        'response_format',
        'logit_bias',
        'encoding_format',
      ]);
      body.set(field, weirdValue(rng, 0, field === 'model' && base.route === 'passthrough'));
      return `weird ${field}`;
    },
  ],
  [
    5,
    (rng, body) => {
      body.set('model', rng.pick(MODEL_VARIANTS));
      return 'model variant';
    },
  ],
  [
    4,
    (rng, body) => {
      body.set('stream', rng.pick(STREAM_VALUES));
      if (rng.chance(0.5)) body.set('stream_options', rng.pick(STREAM_OPTIONS));
      return 'stream flags';
    },
  ],
  [
    2,
    (rng, body) => {
      body.set('n', rng.pick(N_VALUES));
      return 'n';
    },
  ],
  [
    2,
    (rng, body) => {
      body.set('stop', rng.pick(STOP_VALUES));
      return 'stop';
    },
  ],
  [
    5,
    (rng, body, base) => {
      const text = 'fuzz variant';
      if (base.route === 'chat') body.set('messages', messagesVariant(rng, text));
      else if (base.route === 'completions') body.set('prompt', promptVariant(rng, text));
      else body.set(requiredOf(base), inputVariant(rng, text));
      return `${requiredOf(base)} variant`;
    },
  ],
  [
    3,
    (rng, body) => {
      body.pairs.push([rng.pick(ODD_KEYS.concat(['metadata', 'cache', 'x_gateway', 'priority'])), weirdValue(rng)]);
      return 'unknown field';
    },
  ],
  [
    3,
    (rng, body) => {
      const key = rng.pick(['model', 'messages', 'prompt', 'input', 'stream']);
      body.pairs.push([key, key === 'model' ? rng.pick(MODEL_VARIANTS) : weirdValue(rng)]);
      return `duplicate ${key}`;
    },
  ],
  [
    3,
    (rng, body) => {
      if (rng.chance(0.5)) body.pairs.push(['__proto__', JsonObject.of({ admin: true, model: 'gpt-4o' })]);
      else body.pairs.push(['constructor', JsonObject.of({ prototype: JsonObject.of({ polluted: true }) })]);
      return 'prototype keys';
    },
  ],
  [
    4,
    (rng, body) => {
      body.set(rng.pick(['metadata', 'tools', 'stop', 'messages']), deepValue(rng));
      return 'deep nesting';
    },
  ],
  [
    2,
    (rng, body) => {
      body.set(
        rng.pick(['temperature', 'max_tokens', 'top_p', 'seed', 'n', 'presence_penalty']),
        new RawJson(rng.pick(['1e400', '-1e400', '123456789012345678901234567890', '-0', '9007199254740993', '1e-400'])),
      );
      return 'huge number';
    },
  ],
  [
    2,
    (rng, body, base) => {
      const text = unicodeString(rng);
      if (base.route === 'chat') body.set('messages', [JsonObject.of({ role: 'user', content: text })]);
      else body.set(requiredOf(base), text);
      return 'unicode';
    },
  ],
  [
    1,
    (rng, body) => {
      body.set('tools', [
        JsonObject.of({
          type: 'function',
          function: JsonObject.of({
            name: 'lookup',
            parameters: JsonObject.of({ type: 'object', properties: JsonObject.of({ q: JsonObject.of({ type: 'string' }) }) }),
          }),
        }),
      ]);
      if (rng.chance(0.5)) body.set('tool_choice', rng.pick<Json>(['auto', 'none', 'required', JsonObject.of({ type: 'function' })]));
      return 'tools';
    },
  ],
];

/** The body replaced by a JSON value that is not an object. */
const NOT_OBJECT: readonly string[] = ['[]', '[{"model":"gpt-4o-mini"}]', '"hello"', '42', 'null', 'true', '{}', '{"model":null}'];

function mutateBody(rng: Rng, base: BaseRequest, body: JsonObject): string {
  const labels: string[] = [];
  const count = rng.weighted([
    [1, 0],
    [6, 1],
    [3, 2],
    [1, 3],
  ] as const);
  for (let i = 0; i < count; i++) labels.push(rng.weighted(MUTATIONS)(rng, body, base));
  return labels.length === 0 ? 'unmutated' : labels.join(' + ');
}

function mutateForm(rng: Rng, base: BaseRequest): string {
  const form = base.form;
  if (!form) return 'unmutated';
  switch (rng.int(0, 6)) {
    case 0:
      form.fields = form.fields.filter(([name]) => name !== 'model');
      return 'form: no model';
    case 1:
      form.fields = form.fields.map(([name, value]) => [name, name === 'model' ? rng.pick(MODEL_VARIANTS).replace(/[\r\n]/g, '') : value]);
      return 'form: model variant';
    case 2:
      form.fields.push(['model', rng.pick(MODEL_VARIANTS).replace(/[\r\n]/g, '')]);
      return 'form: duplicate model';
    case 3:
      delete form.file;
      return 'form: no file';
    case 4:
      form.fields.push([rng.pick(ODD_KEYS).replace(/[\r\n"]/g, ''), 'x'.repeat(rng.pick([1, 10_000]))]);
      return 'form: unknown field';
    case 5:
      if (form.file) form.file.filename = rng.pick(['', '../../etc/passwd', 'ü.wav', 'a"b.wav', 'x'.repeat(2_000)]);
      return 'form: odd filename';
    default:
      return 'unmutated';
  }
}

/** Parameters in the URL of the body-less routes. */
function mutateUrl(rng: Rng, base: BaseRequest): string {
  const prefix = base.target.startsWith('/openai/v1') ? '/openai/v1' : '/v1';
  if (base.route === 'model' || base.route === 'models') {
    base.route = 'model';
    const id = rng.pick([
      'gpt-4o-mini%00',
      '%F0%9F%A4%96',
      'openai%2Fgpt-oss-120b',
      'openai/gpt-oss-120b',
      'groq/llama-3.1-8b-instant',
      '..%2F..%2Fetc',
      '%25',
      'a'.repeat(3_000),
      '',
      'gpt-4o-mini?x=1',
      'gpt-4o-mini/',
    ]);
    base.target = `${prefix}/models/${id}`;
    return 'model id variant';
  }
  const model = encodeURIComponent(rng.pick(MODEL_VARIANTS).slice(0, 300));
  base.target = `${prefix}/files?model=${model}`;
  return 'query model variant';
}

export function jsonCase(rng: Rng, ctx: FuzzContext, index: number): FuzzCase {
  const choice = rng.chance(0.9) ? pickRoute(rng, BODY_ROUTES) : rng.pick(['models', 'model', 'files'] as const);
  const base = baseRequest(rng, ctx, index, choice);
  let label: string;
  if (base.json) {
    if (rng.chance(0.04)) {
      const text = rng.pick(NOT_OBJECT);
      const body = Buffer.from(text, 'utf8');
      return { index, family: 'json', label: 'body not an object', freshConnection: false, exchanges: [exchangeOf(ctx, base, body, 'application/json')] };
    }
    label = mutateBody(rng, base, base.json);
  } else if (base.form) {
    label = mutateForm(rng, base);
  } else {
    label = mutateUrl(rng, base);
  }
  const { body, contentType } = bodyOf(base);
  return { index, family: 'json', label: `${base.route}: ${label}`, freshConnection: false, exchanges: [exchangeOf(ctx, base, body, contentType)] };
}
