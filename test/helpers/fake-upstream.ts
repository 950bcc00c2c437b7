/**
 * A fake OpenAI + Groq upstream: a real HTTP server on a free loopback port that speaks both
 * wire formats (JSON and SSE, chunked like the real ones), serves /models lists, embeddings,
 * a multipart audio route, and errors on demand. It records every request it received, with
 * the bearer key used, and notices when a client goes away before the answer ended.
 *
 * OpenAI layout: `${url}/v1/...`; Groq layout: `${url}/openai/v1/...`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { responseObject, streamResponse } from './fake-responses.js';
import { bearerKey, closeNow, createWholeBodyServer, listenOnLoopback } from './provider-double-server.js';

export type Flavour = 'openai' | 'groq';

export interface RecordedRequest {
  method: string;
  path: string;
  /** The query string as received, with its `?` ('' when none). */
  query: string;
  flavour: Flavour;
  headers: IncomingMessage['headers'];
  key: string | undefined;
  body: string;
  /** The body exactly as received (binary uploads do not survive the utf8 `body`). */
  raw: Buffer;
  json: Record<string, unknown> | undefined;
  /** True when the client closed the connection before the answer was complete. */
  aborted: boolean;
  /** performance.now() when the fake finished sending its answer (undefined until then). */
  finishedAt?: number;
}

export interface CannedResponse {
  status: number;
  headers?: Record<string, string>;
  body?: unknown;
  /** Close the socket without answering (a reset connection). */
  destroy?: boolean;
  /** Send these bytes as the body, as they are (e.g. gzip-encoded), instead of `body` as JSON. */
  rawBody?: Buffer;
}

export interface FakeUpstreamOptions {
  openaiModels?: string[];
  groqModels?: string[];
  /** Delay before the response headers, ms. */
  latencyMs?: number;
  /** Delay between SSE chunks, ms. */
  chunkDelayMs?: number;
  /** How many content deltas a stream is split into. */
  chunks?: number;
}

export interface FakeUpstream {
  url: string;
  openaiBaseUrl: string;
  groqBaseUrl: string;
  requests: RecordedRequest[];
  options: Required<FakeUpstreamOptions>;
  /** Answers to hand out before the normal behaviour, first in first out. */
  queue: CannedResponse[];
  /** Per-key behaviour: a key mapped to a canned answer gets it every time. */
  keyResponses: Map<string, CannedResponse>;
  /** Streams: after this many content chunks, cut the connection (undefined = never). */
  cutStreamAfterChunks: number | undefined;
  /** Streams: after this many content chunks, stall forever (to test idle timeouts). */
  stallStreamAfterChunks: number | undefined;
  /** Requests to the completion routes (chat, completions, embeddings, responses). */
  completionCalls(): RecordedRequest[];
  reset(): void;
  close(): Promise<void>;
}

const DEFAULT_OPENAI_MODELS = ['gpt-4o-mini', 'gpt-4o', 'gpt-3.5-turbo-instruct', 'text-embedding-3-small', 'whisper-1'];
const DEFAULT_GROQ_MODELS = ['llama-3.1-8b-instant', 'llama-3.3-70b-versatile', 'openai/gpt-oss-120b', 'whisper-large-v3'];

/** The answer text the fake gives for a request: deterministic, so tests can compare. */
export function answerFor(body: Record<string, unknown> | undefined): string {
  const messages = Array.isArray(body?.messages) ? (body?.messages as Array<{ content?: unknown }>) : [];
  const last = messages.at(-1)?.content ?? body?.prompt ?? '';
  const seed = body?.seed ?? '';
  const temperature = body?.temperature ?? '';
  return `Echo: ${typeof last === 'string' ? last : JSON.stringify(last)}${seed === '' ? '' : ` (seed ${String(seed)})`}${temperature === '' ? '' : ` (t ${String(temperature)})`}. The quick brown fox jumps over the lazy dog.`;
}

function countTokens(text: string): number {
  return Math.max(1, text.split(/\s+/).filter(Boolean).length);
}

function splitInto(text: string, pieces: number): string[] {
  const words = text.split(/(?<= )/);
  const size = Math.max(1, Math.ceil(words.length / pieces));
  const out: string[] = [];
  for (let i = 0; i < words.length; i += size) out.push(words.slice(i, i + size).join(''));
  return out;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function startFakeUpstream(opts: FakeUpstreamOptions = {}): Promise<FakeUpstream> {
  let counter = 0;
  const fake: FakeUpstream = {
    url: '',
    openaiBaseUrl: '',
    groqBaseUrl: '',
    requests: [],
    options: {
      openaiModels: opts.openaiModels ?? DEFAULT_OPENAI_MODELS,
      groqModels: opts.groqModels ?? DEFAULT_GROQ_MODELS,
      latencyMs: opts.latencyMs ?? 0,
      chunkDelayMs: opts.chunkDelayMs ?? 0,
      chunks: opts.chunks ?? 5,
    },
    queue: [],
    keyResponses: new Map(),
    cutStreamAfterChunks: undefined,
    stallStreamAfterChunks: undefined,
    completionCalls: () => fake.requests.filter((r) => /\/(chat\/completions|completions|embeddings|responses)$/.test(r.path)),
    reset() {
      fake.requests.length = 0;
      fake.queue.length = 0;
      fake.keyResponses.clear();
      fake.cutStreamAfterChunks = undefined;
      fake.stallStreamAfterChunks = undefined;
    },
    close: () => closeNow(server),
  };

  const server = createWholeBodyServer((req, res, raw) => {
    const body = raw.toString('utf8');
    const url = new URL(req.url ?? '/', 'http://x');
    const flavour: Flavour = url.pathname.startsWith('/openai/') ? 'groq' : 'openai';
    const path = url.pathname.replace(/^\/openai/, '');
    let json: Record<string, unknown> | undefined;
    if ((req.headers['content-type'] ?? '').includes('json') && body) {
      try {
        json = JSON.parse(body) as Record<string, unknown>;
      } catch {
        json = undefined;
      }
    }
    const record: RecordedRequest = {
      method: req.method ?? 'GET',
      path: url.pathname,
      query: url.search,
      flavour,
      headers: req.headers,
      key: bearerKey(req),
      body,
      raw,
      json,
      aborted: false,
    };
    fake.requests.push(record);
    res.on('finish', () => {
      record.finishedAt = performance.now();
    });
    res.on('close', () => {
      if (!res.writableFinished) record.aborted = true;
    });
    void handle(record, path, res).catch(() => res.destroy());
  });

  async function handle(record: RecordedRequest, path: string, res: ServerResponse): Promise<void> {
    if (fake.options.latencyMs > 0) await sleep(fake.options.latencyMs);
    const keyed = record.key === undefined ? undefined : fake.keyResponses.get(record.key);
    const canned = keyed ?? fake.queue.shift();
    if (canned) return sendCanned(res, canned);
    if (!record.key) return sendJson(res, 401, { error: { message: 'Missing API key', type: 'invalid_request_error', code: 'invalid_api_key' } });
    const id = ++counter;
    const requestIdHeaders = { 'x-request-id': `req_fake_${id}`, 'x-ratelimit-remaining-requests': '99', 'x-ratelimit-limit-requests': '100' };
    if (record.method === 'GET' && path === '/v1/models') {
      const ids = record.flavour === 'groq' ? fake.options.groqModels : fake.options.openaiModels;
      return sendJson(
        res,
        200,
        { object: 'list', data: ids.map((m) => ({ id: m, object: 'model', created: 1700000000, owned_by: record.flavour === 'groq' ? 'Groq' : 'openai' })) },
        requestIdHeaders,
      );
    }
    if (record.method !== 'POST')
      return sendJson(res, 404, { error: { message: `Unknown route ${path}`, type: 'invalid_request_error', code: 'unknown_url' } });
    if (path === '/v1/audio/transcriptions') {
      return sendJson(res, 200, { text: `transcribed ${record.body.length} bytes (${record.headers['content-type']?.split(';')[0]})` }, requestIdHeaders);
    }
    const body = record.json;
    if (!body)
      return sendJson(res, 400, { error: { message: 'We could not parse the JSON body of your request.', type: 'invalid_request_error', code: null } });
    const model = String(body.model ?? '');
    const known = (record.flavour === 'groq' ? fake.options.groqModels : fake.options.openaiModels).includes(model);
    if (!known)
      return sendJson(
        res,
        404,
        { error: { message: `The model \`${model}\` does not exist`, type: 'invalid_request_error', code: 'model_not_found' } },
        requestIdHeaders,
      );
    if (path === '/v1/embeddings') {
      // A text, texts, one token array or token arrays (a lone token array is one input).
      const inputs = Array.isArray(body.input) && typeof body.input[0] !== 'number' ? body.input : [body.input];
      return sendJson(
        res,
        200,
        {
          object: 'list',
          // Like OpenAI: base64 of little-endian float32s when asked (the openai SDK asks by default).
          data: inputs.map((input, index) => ({
            object: 'embedding',
            index,
            embedding: body.encoding_format === 'base64' ? base64Floats(embeddingOf(String(input))) : embeddingOf(String(input)),
          })),
          model,
          usage: { prompt_tokens: inputs.length * 3, total_tokens: inputs.length * 3 },
        },
        requestIdHeaders,
      );
    }
    if (path === '/v1/responses') {
      if (body.stream !== true) return sendJson(res, 200, responseObject(id, model, body), requestIdHeaders);
      // A background stream runs to its end like any other (only its JSON answer comes back queued).
      const response = { ...responseObject(id, model, { ...body, background: false }), background: body.background === true };
      const controls = {
        chunks: fake.options.chunks,
        chunkDelayMs: fake.options.chunkDelayMs,
        cutAfterChunks: fake.cutStreamAfterChunks,
        stallAfterChunks: fake.stallStreamAfterChunks,
      };
      return streamResponse(res, response, controls, requestIdHeaders);
    }
    const chat = path === '/v1/chat/completions';
    if (!chat && path !== '/v1/completions')
      return sendJson(res, 404, { error: { message: `Unknown route ${path}`, type: 'invalid_request_error', code: 'unknown_url' } });
    const text = answerFor(body);
    const created = 1_700_000_000 + id;
    const completionId = chat ? `chatcmpl-fake${id}` : `cmpl-fake${id}`;
    const usage = { prompt_tokens: 11, completion_tokens: countTokens(text), total_tokens: 11 + countTokens(text) };
    if (body.stream === true) {
      return stream(
        res,
        record.flavour,
        chat,
        {
          id: completionId,
          created,
          model,
          text,
          usage,
          includeUsage: (body.stream_options as { include_usage?: boolean } | undefined)?.include_usage === true,
        },
        requestIdHeaders,
      );
    }
    const completion = chat
      ? {
          id: completionId,
          object: 'chat.completion',
          created,
          model,
          system_fingerprint: 'fp_fake',
          choices: [{ index: 0, message: { role: 'assistant', content: text, refusal: null }, logprobs: null, finish_reason: 'stop' }],
          usage,
          ...(record.flavour === 'groq' ? { x_groq: { id: `req_groq_${id}` } } : {}),
        }
      : { id: completionId, object: 'text_completion', created, model, choices: [{ index: 0, text, logprobs: null, finish_reason: 'stop' }], usage };
    return sendJson(res, 200, completion, requestIdHeaders);
  }

  async function stream(
    res: ServerResponse,
    flavour: Flavour,
    chat: boolean,
    a: { id: string; created: number; model: string; text: string; usage: Record<string, number>; includeUsage: boolean },
    headers: Record<string, string>,
  ): Promise<void> {
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', ...headers });
    const base = chat
      ? { id: a.id, object: 'chat.completion.chunk', created: a.created, model: a.model, system_fingerprint: 'fp_fake' }
      : { id: a.id, object: 'text_completion', created: a.created, model: a.model };
    const send = (payload: unknown) => res.write(`data: ${JSON.stringify(payload)}\n\n`);
    const groqExtra = (extra: Record<string, unknown>) => (flavour === 'groq' ? { x_groq: { id: `req_groq_${a.id}`, ...extra } } : {});
    if (chat) send({ ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }], ...groqExtra({}) });
    const pieces = splitInto(a.text, fake.options.chunks);
    for (const [index, piece] of pieces.entries()) {
      if (fake.cutStreamAfterChunks !== undefined && index >= fake.cutStreamAfterChunks) {
        res.destroy();
        return;
      }
      if (fake.stallStreamAfterChunks !== undefined && index >= fake.stallStreamAfterChunks) return; // never ends
      if (fake.options.chunkDelayMs > 0) await sleep(fake.options.chunkDelayMs);
      if (res.destroyed) return;
      send(
        chat
          ? { ...base, choices: [{ index: 0, delta: { content: piece }, logprobs: null, finish_reason: null }] }
          : { ...base, choices: [{ index: 0, text: piece, logprobs: null, finish_reason: null }] },
      );
    }
    const finish = chat
      ? { ...base, choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: 'stop' }] }
      : { ...base, choices: [{ index: 0, text: '', logprobs: null, finish_reason: 'stop' }] };
    // Groq puts the usage of every stream into x_groq of the last chunk.
    send({ ...finish, ...groqExtra({ usage: a.usage }) });
    if (a.includeUsage) send({ ...base, choices: [], usage: a.usage });
    res.end('data: [DONE]\n\n');
  }

  Object.assign(fake, await listenOnLoopback(server));
  return fake;
}

function embeddingOf(text: string): number[] {
  const out: number[] = [];
  for (let i = 0; i < 8; i++) out.push(((text.charCodeAt(i % Math.max(1, text.length)) || 0) % 97) / 97);
  return out;
}

function base64Floats(values: number[]): string {
  return Buffer.from(new Float32Array(values).buffer).toString('base64');
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

function sendCanned(res: ServerResponse, canned: CannedResponse): void {
  if (canned.destroy) {
    res.socket?.destroy();
    return;
  }
  if (canned.rawBody) {
    res.writeHead(canned.status, { 'content-type': 'application/json', 'content-length': canned.rawBody.length, ...canned.headers });
    res.end(canned.rawBody);
    return;
  }
  sendJson(res, canned.status, canned.body ?? { error: { message: `status ${canned.status}`, type: 'server_error', code: null } }, canned.headers);
}
