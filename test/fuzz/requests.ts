/**
 * Valid requests for every route, the starting point of every mutation, and their encoding
 * into bytes. Models are ones the fake upstream serves, so an unmutated request is answered 2xx
 * (passthrough routes the fake does not implement answer an upstream 404 in OpenAI's shape).
 */
import type { Exchange, FuzzContext, RouteKind } from './cases.js';
import { JsonObject, jsonText, type Json } from './json-text.js';
import type { Rng } from './prng.js';
import { requestHead } from './http-wire.js';

export interface BaseRequest {
  route: RouteKind;
  method: string;
  target: string;
  /** For JSON routes: the body, before it is serialised. */
  json?: JsonObject;
  /** For multipart routes: the form, before it is serialised. */
  form?: FormSpec;
}

export interface FormSpec {
  boundary: string;
  fields: Array<[string, string]>;
  file?: { name: string; filename: string; type: string; data: Buffer };
}

const CHAT_MODELS = ['gpt-4o-mini', 'gpt-4o', 'openai/gpt-4o-mini', 'llama-3.1-8b-instant', 'groq/llama-3.3-70b-versatile', 'openai/gpt-oss-120b'];
const GROQ_CHAT_MODELS = ['llama-3.1-8b-instant', 'llama-3.3-70b-versatile', 'openai/gpt-oss-120b', 'groq/llama-3.1-8b-instant'];

/** A small share of prompts repeat across cases, so hits and coalesced answers are fuzzed too. */
export function prompt(rng: Rng, ctx: FuzzContext, index: number): string {
  return rng.chance(0.3) ? `fuzz shared prompt ${rng.int(0, 15)}` : `fuzz ${ctx.seed}-${index} ${rng.int(0, 1e9).toString(36)}`;
}

export type RouteChoice = 'chat' | 'completions' | 'embeddings' | 'models' | 'model' | 'transcription' | 'passthrough' | 'files' | 'open';

const ROUTE_WEIGHTS: ReadonlyArray<readonly [number, RouteChoice]> = [
  [30, 'chat'],
  [12, 'completions'],
  [12, 'embeddings'],
  [4, 'models'],
  [5, 'model'],
  [7, 'transcription'],
  [8, 'passthrough'],
  [3, 'files'],
  [4, 'open'],
];

export function pickRoute(rng: Rng, choices: ReadonlyArray<readonly [number, RouteChoice]> = ROUTE_WEIGHTS): RouteChoice {
  return rng.weighted(choices);
}

/** Routes that take a body the mutations can work on. */
export const BODY_ROUTES: ReadonlyArray<readonly [number, RouteChoice]> = ROUTE_WEIGHTS.filter(([, r]) =>
  ['chat', 'completions', 'embeddings', 'transcription', 'passthrough'].includes(r),
);

export function baseRequest(rng: Rng, ctx: FuzzContext, index: number, choice: RouteChoice): BaseRequest {
  const groqLayout = rng.chance(0.25);
  const prefix = groqLayout ? '/openai/v1' : '/v1';
  switch (choice) {
    case 'chat': {
      const body = JsonObject.of({
        model: rng.pick(groqLayout ? GROQ_CHAT_MODELS : CHAT_MODELS),
        messages: [JsonObject.of({ role: 'user', content: prompt(rng, ctx, index) })],
      });
      if (rng.chance(0.35)) body.set('stream', true);
      if (rng.chance(0.2)) body.set('stream_options', JsonObject.of({ include_usage: true }));
      if (rng.chance(0.2)) body.set('temperature', rng.pick([0, 0.5, 1]));
      if (rng.chance(0.15)) body.set('max_tokens', rng.int(1, 512));
      if (rng.chance(0.1)) body.set('seed', rng.int(0, 1000));
      if (rng.chance(0.1)) body.set('user', 'fuzz-user');
      return { route: 'chat', method: 'POST', target: `${prefix}/chat/completions`, json: body };
    }
    case 'completions': {
      const body = JsonObject.of({ model: groqLayout ? 'openai/gpt-3.5-turbo-instruct' : 'gpt-3.5-turbo-instruct', prompt: prompt(rng, ctx, index) });
      if (rng.chance(0.35)) body.set('stream', true);
      if (rng.chance(0.2)) body.set('max_tokens', rng.int(1, 256));
      return { route: 'completions', method: 'POST', target: `${prefix}/completions`, json: body };
    }
    case 'embeddings': {
      const text = prompt(rng, ctx, index);
      const body = JsonObject.of({
        model: rng.pick(['text-embedding-3-small', 'openai/text-embedding-3-small']),
        input: rng.chance(0.3) ? [text, `${text} again`] : text,
      });
      if (rng.chance(0.3)) body.set('encoding_format', rng.pick(['float', 'base64']));
      return { route: 'embeddings', method: 'POST', target: `${prefix}/embeddings`, json: body };
    }
    case 'models':
      return { route: 'models', method: 'GET', target: `${prefix}/models` };
    case 'model':
      return {
        route: 'model',
        method: 'GET',
        target: `${prefix}/models/${rng.pick(['gpt-4o-mini', 'openai/gpt-oss-120b', 'llama-3.1-8b-instant', 'no-such-model', 'whisper-1'])}`,
      };
    case 'transcription': {
      const model = groqLayout ? rng.pick(['whisper-large-v3', 'groq/whisper-large-v3']) : rng.pick(['whisper-1', 'openai/whisper-1', 'whisper-large-v3']);
      const fields: Array<[string, string]> = [['model', model]];
      if (rng.chance(0.3)) fields.push(['response_format', 'json']);
      if (rng.chance(0.2)) fields.push(['language', 'en']);
      return {
        route: 'transcription',
        method: 'POST',
        target: `${prefix}/audio/transcriptions`,
        form: {
          boundary: `fuzzboundary${rng.int(0, 1e9).toString(36)}`,
          fields,
          file: { name: 'file', filename: 'a.wav', type: 'audio/wav', data: tinyWav(rng.int(8, 400)) },
        },
      };
    }
    case 'passthrough': {
      const kind = rng.int(0, 3);
      const text = prompt(rng, ctx, index);
      // A forced provider prefix makes the gateway rewrite the body's model before forwarding it.
      const forced = rng.chance(0.3) ? 'openai/' : '';
      if (kind === 0)
        return {
          route: 'passthrough',
          method: 'POST',
          target: `${prefix}/images/generations`,
          json: JsonObject.of({ model: `${forced}dall-e-3`, prompt: text }),
        };
      if (kind === 1)
        return {
          route: 'passthrough',
          method: 'POST',
          target: `${prefix}/moderations`,
          json: rng.chance(0.5) ? JsonObject.of({ input: text }) : JsonObject.of({ model: `${forced}omni-moderation-latest`, input: text }),
        };
      if (kind === 2)
        return {
          route: 'passthrough',
          method: 'POST',
          target: `${prefix}/audio/speech`,
          json: JsonObject.of({ model: `${forced}tts-1`, input: text, voice: 'alloy' }),
        };
      return {
        route: 'passthrough',
        method: 'POST',
        target: `${prefix}/responses`,
        json: JsonObject.of({ model: `${forced || rng.pick(['', 'groq/'])}gpt-4o-mini`, input: text }),
      };
    }
    case 'files':
      return {
        route: 'passthrough',
        method: rng.chance(0.85) ? 'GET' : 'DELETE',
        target: rng.pick(['/v1/files', '/v1/files/file-abc123', '/v1/files?purpose=fine-tune', '/v1/files/file-abc123/content']),
      };
    case 'open': {
      const route = rng.pick(['healthz', 'readyz', 'metrics'] as const);
      return { route, method: 'GET', target: `/${route}` };
    }
  }
}

/** A small PCM WAV file (the bytes matter only as an upload). */
export function tinyWav(samples: number): Buffer {
  const data = samples * 2;
  const wav = Buffer.alloc(44 + data);
  wav.write('RIFF', 0, 'ascii');
  wav.writeUInt32LE(36 + data, 4);
  wav.write('WAVEfmt ', 8, 'ascii');
  wav.writeUInt32LE(16, 16);
  wav.writeUInt16LE(1, 20);
  wav.writeUInt16LE(1, 22);
  wav.writeUInt32LE(8000, 24);
  wav.writeUInt32LE(16000, 28);
  wav.writeUInt16LE(2, 32);
  wav.writeUInt16LE(16, 34);
  wav.write('data', 36, 'ascii');
  wav.writeUInt32LE(data, 40);
  for (let i = 0; i < data; i++) wav[44 + i] = (i * 7) % 256;
  return wav;
}

export function formBody(form: FormSpec): Buffer {
  const parts: Buffer[] = [];
  for (const [name, value] of form.fields)
    parts.push(Buffer.from(`--${form.boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`, 'utf8'));
  if (form.file) {
    parts.push(
      Buffer.from(
        `--${form.boundary}\r\nContent-Disposition: form-data; name="${form.file.name}"; filename="${form.file.filename}"\r\nContent-Type: ${form.file.type}\r\n\r\n`,
        'utf8',
      ),
    );
    parts.push(form.file.data, Buffer.from('\r\n'));
  }
  parts.push(Buffer.from(`--${form.boundary}--\r\n`));
  return Buffer.concat(parts);
}

/** The body of a base request as bytes, and its content type. */
export function bodyOf(base: BaseRequest): { body: Buffer | undefined; contentType: string | undefined } {
  if (base.json) return { body: Buffer.from(jsonText(base.json), 'utf8'), contentType: 'application/json' };
  if (base.form) return { body: formBody(base.form), contentType: `multipart/form-data; boundary=${base.form.boundary}` };
  return { body: undefined, contentType: undefined };
}

export function standardHeaders(ctx: FuzzContext, contentType: string | undefined, body: Buffer | undefined): Array<[string, string]> {
  const headers: Array<[string, string]> = [
    ['Host', `127.0.0.1:${ctx.port}`],
    ['Authorization', `Bearer ${ctx.clientKey}`],
  ];
  if (contentType !== undefined) headers.push(['Content-Type', contentType]);
  if (body !== undefined) headers.push(['Content-Length', String(body.length)]);
  return headers;
}

/** What the oracle needs to know of a JSON body as it went out. */
export function jsonFacts(body: Buffer | undefined, isJson: boolean): Pick<Exchange, 'json' | 'invalidJson'> {
  if (!isJson || body === undefined) return {};
  // A leading BOM may be ignored by a JSON parser (RFC 8259 §8.1); Fastify's is one that does.
  const text = body.toString('utf8');
  try {
    return { json: JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text) as unknown, invalidJson: false };
  } catch {
    return { invalidJson: true };
  }
}

/** A well-formed exchange: standard headers, Content-Length, plus `extra` headers. */
export function exchangeOf(
  ctx: FuzzContext,
  base: BaseRequest,
  body: Buffer | undefined,
  contentType: string | undefined,
  extra: Array<[string, string]> = [],
): Exchange {
  const headers = [...standardHeaders(ctx, contentType, body), ...extra];
  return {
    head: requestHead(base.method, base.target, headers),
    ...(body ? { body } : {}),
    method: base.method,
    target: base.target,
    ...jsonFacts(body, base.json !== undefined),
  };
}

export function serialise(value: Json): Buffer {
  return Buffer.from(jsonText(value), 'utf8');
}
