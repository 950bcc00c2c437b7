/**
 * Server-sent events of chat and legacy text completions (OpenAI and Groq flavours): parse an
 * upstream stream, assemble it into the non-streamed JSON answer, render a JSON answer as a stream,
 * and replay a stored stream. This is what makes a cache entry independent of the form that filled it.
 */
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import type { CacheEntry, ChunkIdentity, Usage } from './entry.js';

export type CompletionRoute = 'chat.completions' | 'completions';
export type JsonObject = Record<string, unknown>;

export interface ToolCall {
  id: string;
  type: string;
  function: { name: string; arguments: string };
}

export interface ChatMessage {
  role: string;
  content: string | null;
  tool_calls?: ToolCall[];
  /** Any other field the upstream streams (refusal, reasoning, annotations, …), kept as it came. */
  [field: string]: unknown;
}

export interface ChatChoice {
  index: number;
  message: ChatMessage;
  logprobs: unknown;
  finish_reason: string | null;
}

export interface TextChoice {
  text: string;
  index: number;
  logprobs: unknown;
  finish_reason: string | null;
}

interface CompletionBase {
  id: string;
  created: number;
  model: string;
  usage?: Usage;
  service_tier?: string;
  system_fingerprint?: string;
  /** Groq's request metadata (its `id`); usage lives in `usage`, never duplicated here. */
  x_groq?: JsonObject;
}
export interface ChatCompletion extends CompletionBase {
  object: 'chat.completion';
  choices: ChatChoice[];
}
export interface TextCompletion extends CompletionBase {
  object: 'text_completion';
  choices: TextChoice[];
}
export type Completion = ChatCompletion | TextCompletion;

export const SSE_DONE = 'data: [DONE]\n\n';

/* ───────────────────────────── parsing ───────────────────────────── */

/** One event of an upstream stream. */
export interface SseEvent {
  /** The `event:` field, when the upstream named one (OpenAI uses it for mid-stream errors). */
  event?: string;
  data: string;
  /** The parsed JSON object; undefined for `[DONE]` and for data that is not a JSON object. */
  chunk: JsonObject | undefined;
  done: boolean;
  /** The event re-serialised (`data: …\n\n`), to forward or store. */
  raw: string;
}

/**
 * Incremental parser for bytes as undici delivers them: multi-byte characters and events may be
 * split anywhere. Each `push` returns the events it completed.
 */
export class SseStreamParser {
  readonly #decoder = new TextDecoder('utf-8');
  readonly #parser;
  #completed: SseEvent[] = [];
  #overflowed = false;

  constructor(options: { maxBufferBytes?: number } = {}) {
    this.#parser = createParser({
      onEvent: (message) => this.#completed.push(toSseEvent(message)),
      onError: (error) => {
        if (error.type === 'max-buffer-size-exceeded') this.#overflowed = true;
      },
      // Default 16 MiB: a runaway upstream line must not grow memory without bound.
      maxBufferSize: options.maxBufferBytes ?? 16 * 1024 * 1024,
    });
  }

  /**
   * True once an event outgrew the buffer bound: parsing stopped, so the stream is incomplete for
   * assembling and caching (the bytes themselves may still be forwarded).
   */
  get overflowed(): boolean {
    return this.#overflowed;
  }

  push(bytes: Uint8Array | string): SseEvent[] {
    this.#feed(typeof bytes === 'string' ? bytes : this.#decoder.decode(bytes, { stream: true }));
    return this.#take();
  }

  /**
   * The stream ended: flushes a last event that lacked its blank line (the spec would drop it; a
   * lenient reading loses nothing, since a truncated chunk fails to parse and is never cached).
   */
  end(): SseEvent[] {
    this.#feed(`${this.#decoder.decode()}\n\n`);
    return this.#take();
  }

  #feed(text: string): void {
    if (this.#overflowed) return; // the parser refuses input once it overflowed
    this.#parser.feed(text);
  }

  #take(): SseEvent[] {
    const events = this.#completed;
    this.#completed = [];
    return events;
  }
}

/** Parses a complete SSE text or buffer (a stored body, a test fixture). */
export function parseSse(body: Uint8Array | string): SseEvent[] {
  const parser = new SseStreamParser();
  return [...parser.push(body), ...parser.end()];
}

function toSseEvent(message: EventSourceMessage): SseEvent {
  const data = message.data;
  const done = data.trim() === '[DONE]';
  let chunk: JsonObject | undefined;
  if (!done) {
    try {
      const parsed: unknown = JSON.parse(data);
      if (isObject(parsed)) chunk = parsed;
    } catch {
      chunk = undefined;
    }
  }
  const dataLines = data.includes('\n') ? data.split('\n').join('\ndata: ') : data;
  const raw = `${message.event ? `event: ${message.event}\n` : ''}data: ${dataLines}\n\n`;
  return message.event ? { event: message.event, data, chunk, done, raw } : { data, chunk, done, raw };
}

/** The usage-only chunk (`choices: []` plus `usage`) that `stream_options.include_usage` adds. */
export function isUsageOnlyChunk(chunk: JsonObject | undefined): boolean {
  return chunk !== undefined && Array.isArray(chunk['choices']) && chunk['choices'].length === 0 && isObject(chunk['usage']);
}

/* ───────────────────────────── assembling ───────────────────────────── */

interface ChoiceState {
  message: ChatMessage;
  text: string;
  toolCalls: Map<number, ToolCall>;
  logprobs: unknown;
  finishReason: string | null;
}

/** Builds the non-streamed answer from chunks, one chunk at a time (nothing but the result is kept). */
export class CompletionAssembler {
  readonly #route: CompletionRoute;
  readonly #choices = new Map<number, ChoiceState>();
  #identity: Omit<ChunkIdentity, 'object'> | undefined;
  #serviceTier: string | undefined;
  #usage: Usage | undefined;
  #groqUsage: Usage | undefined;
  #xGroq: JsonObject | undefined;

  constructor(route: CompletionRoute) {
    this.#route = route;
  }

  add(chunk: JsonObject): void {
    if (!this.#identity && typeof chunk['id'] === 'string') {
      this.#identity = { id: chunk['id'], created: numberOr(chunk['created'], 0), model: stringOr(chunk['model'], '') };
    }
    if (this.#identity && !this.#identity.system_fingerprint && typeof chunk['system_fingerprint'] === 'string') {
      this.#identity.system_fingerprint = chunk['system_fingerprint'];
    }
    if (typeof chunk['service_tier'] === 'string') this.#serviceTier = chunk['service_tier'];
    if (isUsage(chunk['usage'])) this.#usage = chunk['usage'];
    const xGroq = chunk['x_groq'];
    if (isObject(xGroq)) {
      const { usage, ...rest } = xGroq;
      if (isUsage(usage)) this.#groqUsage = usage;
      this.#xGroq = { ...this.#xGroq, ...rest };
    }
    const choices = chunk['choices'];
    if (!Array.isArray(choices)) return;
    for (const choice of choices) if (isObject(choice)) this.#addChoice(choice);
  }

  /** The usage the stream reported: the usage chunk's, else Groq's `x_groq.usage`. */
  get usage(): Usage | undefined {
    return this.#usage ?? this.#groqUsage;
  }

  get identity(): ChunkIdentity | undefined {
    return this.#identity && { ...this.#identity, object: chunkObject(this.#route) };
  }

  result(): Completion {
    const id = this.#identity ?? { id: '', created: 0, model: '' };
    const indexes = [...this.#choices.keys()].sort((a, b) => a - b);
    const base = { id: id.id, created: id.created, model: id.model };
    const tail: Partial<CompletionBase> = {};
    if (this.usage) tail.usage = this.usage;
    if (this.#serviceTier) tail.service_tier = this.#serviceTier;
    if (id.system_fingerprint) tail.system_fingerprint = id.system_fingerprint;
    if (this.#xGroq) tail.x_groq = this.#xGroq;
    if (this.#route === 'completions') {
      const choices = indexes.map((index): TextChoice => {
        const s = this.#state(index);
        return { text: s.text, index, logprobs: s.logprobs ?? null, finish_reason: s.finishReason };
      });
      return { id: base.id, object: 'text_completion', created: base.created, model: base.model, choices, ...tail };
    }
    const choices = indexes.map((index): ChatChoice => {
      const s = this.#state(index);
      const message: ChatMessage = { ...s.message };
      if (s.toolCalls.size > 0) {
        message.tool_calls = [...s.toolCalls.entries()].sort(([a], [b]) => a - b).map(([, call]) => call);
      }
      return { index, message, logprobs: s.logprobs ?? null, finish_reason: s.finishReason };
    });
    return { id: base.id, object: 'chat.completion', created: base.created, model: base.model, choices, ...tail };
  }

  #state(index: number): ChoiceState {
    let state = this.#choices.get(index);
    if (!state) {
      state = { message: { role: 'assistant', content: null }, text: '', toolCalls: new Map(), logprobs: undefined, finishReason: null };
      this.#choices.set(index, state);
    }
    return state;
  }

  #addChoice(choice: JsonObject): void {
    const state = this.#state(numberOr(choice['index'], 0));
    if (typeof choice['finish_reason'] === 'string') state.finishReason = choice['finish_reason'];
    if (choice['logprobs'] !== undefined) state.logprobs = mergeLogprobs(state.logprobs, choice['logprobs']);
    if (typeof choice['text'] === 'string') state.text += choice['text'];
    const delta = choice['delta'];
    if (isObject(delta)) mergeDelta(state, delta);
  }
}

export function assembleCompletion(chunks: Iterable<JsonObject>, route: CompletionRoute): Completion {
  const assembler = new CompletionAssembler(route);
  for (const chunk of chunks) assembler.add(chunk);
  return assembler.result();
}

function mergeDelta(state: ChoiceState, delta: JsonObject): void {
  const message = state.message;
  for (const [field, value] of Object.entries(delta)) {
    if (field === 'role') {
      if (typeof value === 'string') message.role = value;
    } else if (field === 'tool_calls') {
      if (Array.isArray(value)) for (const call of value) if (isObject(call)) mergeToolCall(state.toolCalls, call);
    } else if (field === 'function_call') {
      if (isObject(value)) message['function_call'] = mergeFunction(message['function_call'], value);
    } else if (typeof value === 'string') {
      const previous = message[field];
      message[field] = typeof previous === 'string' ? previous + value : value;
    } else if (value === null) {
      if (!(field in message)) message[field] = null;
    } else if (Array.isArray(value)) {
      const previous = message[field];
      message[field] = Array.isArray(previous) ? [...previous, ...value] : [...value];
    } else if (value !== undefined) {
      message[field] = value;
    }
  }
}

/** Tool calls arrive as pieces keyed by index: the first carries id, type and name, the rest arguments. */
function mergeToolCall(calls: Map<number, ToolCall>, piece: JsonObject): void {
  const index = numberOr(piece['index'], calls.size);
  const call = calls.get(index) ?? { id: '', type: 'function', function: { name: '', arguments: '' } };
  if (typeof piece['id'] === 'string') call.id = piece['id'];
  if (typeof piece['type'] === 'string') call.type = piece['type'];
  const fn = piece['function'];
  if (isObject(fn)) call.function = mergeFunction(call.function, fn);
  calls.set(index, call);
}

function mergeFunction(previous: unknown, piece: JsonObject): { name: string; arguments: string } {
  const fn = isObject(previous) ? previous : {};
  return {
    name: stringOr(fn['name'], '') + stringOr(piece['name'], ''),
    arguments: stringOr(fn['arguments'], '') + stringOr(piece['arguments'], ''),
  };
}

/** Logprobs come in slices: arrays (`content`, `tokens`, `token_logprobs`, …) concatenate. */
function mergeLogprobs(previous: unknown, next: unknown): unknown {
  if (!isObject(next)) return previous ?? null;
  const merged: JsonObject = isObject(previous) ? { ...previous } : {};
  for (const [field, value] of Object.entries(next)) {
    const before = merged[field];
    if (Array.isArray(value)) merged[field] = Array.isArray(before) ? [...before, ...value] : [...value];
    else if (value !== null || !(field in merged)) merged[field] = value;
  }
  return merged;
}

/* ───────────────────────────── rendering ───────────────────────────── */

export interface RenderSseOptions {
  /** Add the usage-only chunk (the request asked for `stream_options.include_usage`). */
  includeUsage: boolean;
  /** `groq` also puts usage in `x_groq.usage` of the last chunk, as Groq always does. */
  provider?: 'openai' | 'groq';
  /** Longest text piece per chunk, in UTF-16 units (keeps every data line far below 64 KiB). */
  pieceChars?: number;
}

const DEFAULT_PIECE_CHARS = 96;
/** JSON escapes a UTF-16 unit into at most 6 bytes: 8192 units stay under 48 KiB, so every line under 64 KiB. */
const MAX_PIECE_CHARS = 8192;
/** Logprob entries are batched until a chunk's serialised logprobs reach this size. */
const LOGPROBS_BATCH_BYTES = 16 * 1024;

/**
 * A stream that a client cannot tell from the upstream's: role chunk, text and tool-call deltas
 * in several chunks, a finish chunk per choice, the usage chunk when asked, `[DONE]`. Every chunk
 * repeats the same id, created, model (and system_fingerprint).
 */
export function renderSse(completion: Completion, options: RenderSseOptions): Buffer {
  const pieceChars = Math.min(MAX_PIECE_CHARS, Math.max(16, options.pieceChars ?? DEFAULT_PIECE_CHARS));
  const route: CompletionRoute = completion.object === 'text_completion' ? 'completions' : 'chat.completions';
  const groq = options.provider === 'groq';
  const { usage, x_groq: xGroq } = completion;
  const identity = identityOf(completion, route);
  const out: string[] = [];
  const emit = (choices: unknown[], extra?: JsonObject): void => {
    out.push(chunkEvent(identity, completion.service_tier, choices, extra));
  };

  if (completion.object === 'text_completion') {
    for (const choice of completion.choices) renderTextChoice(choice, pieceChars, emit);
  } else {
    for (const choice of completion.choices) renderChatChoice(choice, pieceChars, emit);
  }
  if (groq && (xGroq || usage)) {
    // Groq reports its request id up front and usage with the last chunk.
    const last = out.pop() ?? chunkEvent(identity, completion.service_tier, []);
    const extra = { x_groq: usage ? { ...xGroq, usage } : { ...xGroq } };
    if (out.length > 0 && xGroq) out[0] = withExtra(out[0] ?? '', { x_groq: xGroq });
    out.push(withExtra(last, extra));
  } else if (xGroq && out.length > 0) {
    out[0] = withExtra(out[0] ?? '', { x_groq: xGroq });
  }
  if (options.includeUsage && usage) out.push(usageChunkEvent(identity, usage, completion.service_tier));
  out.push(SSE_DONE);
  return Buffer.from(out.join(''));
}

type Emit = (choices: unknown[], extra?: JsonObject) => void;

function renderChatChoice(choice: ChatChoice, pieceChars: number, emit: Emit): void {
  const { index, message } = choice;
  const chunk = (delta: JsonObject, logprobs: unknown = null): unknown[] => [{ index, delta, logprobs, finish_reason: null }];
  const opening: JsonObject = { role: message.role || 'assistant', content: message.content === null ? null : '' };
  for (const [field, value] of Object.entries(message)) {
    if (value === null && !(field in opening)) opening[field] = null;
  }
  emit(chunk(opening));
  for (const [field, value] of Object.entries(message)) {
    if (field === 'role' || field === 'tool_calls' || field === 'function_call' || value === null || value === undefined) continue;
    if (typeof value === 'string') for (const piece of splitText(value, pieceChars)) emit(chunk({ [field]: piece }));
    else emit(chunk({ [field]: value }));
  }
  const functionCall = message['function_call'];
  if (isObject(functionCall)) {
    emit(chunk({ function_call: { name: stringOr(functionCall['name'], ''), arguments: '' } }));
    for (const piece of splitText(stringOr(functionCall['arguments'], ''), pieceChars)) {
      emit(chunk({ function_call: { arguments: piece } }));
    }
  }
  (message.tool_calls ?? []).forEach((call, callIndex) => {
    const head = { index: callIndex, id: call.id, type: call.type, function: { name: call.function.name, arguments: '' } };
    emit(chunk({ tool_calls: [head] }));
    for (const piece of splitText(call.function.arguments, pieceChars)) {
      emit(chunk({ tool_calls: [{ index: callIndex, function: { arguments: piece } }] }));
    }
  });
  for (const batch of logprobBatches(choice.logprobs)) emit(chunk({}, batch));
  emit([{ index, delta: {}, logprobs: null, finish_reason: choice.finish_reason }]);
}

function renderTextChoice(choice: TextChoice, pieceChars: number, emit: Emit): void {
  const { index } = choice;
  for (const piece of splitText(choice.text, pieceChars)) emit([{ text: piece, index, logprobs: null, finish_reason: null }]);
  for (const batch of logprobBatches(choice.logprobs)) emit([{ text: '', index, logprobs: batch, finish_reason: null }]);
  emit([{ text: '', index, logprobs: null, finish_reason: choice.finish_reason }]);
}

/** Splits logprobs into slices of parallel array ranges, each small enough for one SSE line. */
function logprobBatches(logprobs: unknown): JsonObject[] {
  if (!isObject(logprobs)) return [];
  const arrays = Object.entries(logprobs).filter((e): e is [string, unknown[]] => Array.isArray(e[1]));
  const scalars = Object.fromEntries(Object.entries(logprobs).filter(([, v]) => !Array.isArray(v)));
  const length = Math.max(0, ...arrays.map(([, values]) => values.length));
  if (length === 0) return [logprobs];
  const batches: JsonObject[] = [];
  let start = 0;
  let bytes = 0;
  for (let i = 0; i < length; i++) {
    bytes += arrays.reduce((sum, [, values]) => sum + (JSON.stringify(values[i]) ?? '').length, 0);
    if (bytes >= LOGPROBS_BATCH_BYTES || i === length - 1) {
      const batch: JsonObject = { ...scalars };
      for (const [field, values] of arrays) batch[field] = values.slice(start, i + 1);
      batches.push(batch);
      start = i + 1;
      bytes = 0;
    }
  }
  return batches;
}

/** Pieces of at most `maxChars`, cut after whitespace when one is near, never inside a surrogate pair. */
export function splitText(text: string, maxChars: number): string[] {
  if (text.length <= maxChars) return text ? [text] : [];
  const pieces: string[] = [];
  let start = 0;
  while (start < text.length) {
    let end = Math.min(start + maxChars, text.length);
    if (end < text.length) {
      let cut = end;
      while (cut > start + maxChars / 2 && !/\s/.test(text.charAt(cut - 1))) cut--;
      end = cut > start + maxChars / 2 ? cut : end;
      const last = text.charCodeAt(end - 1);
      if (last >= 0xd800 && last <= 0xdbff) end--;
    }
    pieces.push(text.slice(start, end));
    start = end;
  }
  return pieces;
}

function identityOf(completion: Completion, route: CompletionRoute): ChunkIdentity {
  const identity: ChunkIdentity = { id: completion.id, object: chunkObject(route), created: completion.created, model: completion.model };
  if (completion.system_fingerprint) identity.system_fingerprint = completion.system_fingerprint;
  return identity;
}

function chunkObject(route: CompletionRoute): string {
  return route === 'completions' ? 'text_completion' : 'chat.completion.chunk';
}

function chunkEvent(identity: ChunkIdentity, serviceTier: string | undefined, choices: unknown[], extra?: JsonObject): string {
  const chunk: JsonObject = { id: identity.id, object: identity.object, created: identity.created, model: identity.model };
  if (serviceTier) chunk['service_tier'] = serviceTier;
  if (identity.system_fingerprint) chunk['system_fingerprint'] = identity.system_fingerprint;
  chunk['choices'] = choices;
  return `data: ${JSON.stringify(extra ? { ...chunk, ...extra } : chunk)}\n\n`;
}

function withExtra(event: string, extra: JsonObject): string {
  const chunk: unknown = JSON.parse(event.slice('data: '.length));
  return `data: ${JSON.stringify({ ...(isObject(chunk) ? chunk : {}), ...extra })}\n\n`;
}

function usageChunkEvent(identity: ChunkIdentity, usage: Usage, serviceTier?: string): string {
  return chunkEvent(identity, serviceTier, [], { usage });
}

/* ───────────────────────────── cache entries ───────────────────────────── */

/**
 * A stored stream as a given request should receive it: the stored events as they are (never
 * parsed), a usage chunk rebuilt from the entry when the request asked for one, then `[DONE]`.
 */
export function replayStoredSse(entry: CacheEntry, options: { includeUsage: boolean }): Buffer {
  const parts = [entry.body];
  if (options.includeUsage && entry.usage && entry.chunkIdentity) {
    parts.push(Buffer.from(usageChunkEvent(entry.chunkIdentity, entry.usage)));
  }
  parts.push(Buffer.from(SSE_DONE));
  return Buffer.concat(parts);
}

/** The JSON answer for an entry of either form; undefined when the stored data is unusable. */
export function completionJsonFromEntry(entry: CacheEntry): Buffer | undefined {
  if (entry.form === 'json') return entry.body;
  const completion = completionFromStoredSse(entry);
  return completion && Buffer.from(JSON.stringify(completion));
}

/** The SSE answer for an entry of either form; undefined when the stored data is unusable. */
export function sseFromEntry(entry: CacheEntry, options: RenderSseOptions): Buffer | undefined {
  if (entry.form === 'sse') return replayStoredSse(entry, options);
  try {
    const completion = asCompletion(JSON.parse(entry.body.toString('utf8')));
    return completion && renderSse(completion, options);
  } catch {
    return undefined;
  }
}

function completionFromStoredSse(entry: CacheEntry): Completion | undefined {
  const assembler = new CompletionAssembler(entry.route === 'completions' ? 'completions' : 'chat.completions');
  for (const event of parseSse(entry.body)) if (event.chunk) assembler.add(event.chunk);
  if (!assembler.identity) return undefined;
  const completion = assembler.result();
  // The usage chunk was not stored; the entry's header kept the numbers.
  if (!completion.usage && entry.usage) completion.usage = entry.usage;
  return completion;
}

/** A parsed JSON body as a Completion, when it has the shape renderSse needs. */
export function asCompletion(value: unknown): Completion | undefined {
  if (!isObject(value) || !Array.isArray(value['choices'])) return undefined;
  if (value['object'] !== 'chat.completion' && value['object'] !== 'text_completion') return undefined;
  if (typeof value['id'] !== 'string' || typeof value['model'] !== 'string' || typeof value['created'] !== 'number') return undefined;
  if (!value['choices'].every((c) => isObject(c) && typeof c['index'] === 'number')) return undefined;
  if (value['object'] === 'chat.completion' && !value['choices'].every((c: JsonObject) => isObject(c['message']))) return undefined;
  if (value['object'] === 'text_completion' && !value['choices'].every((c: JsonObject) => typeof c['text'] === 'string')) return undefined;
  return value as unknown as Completion;
}

/**
 * Collects an upstream stream for the cache: the events to store, the usage, the assembled answer.
 * Feed it bytes with push()/end() (it parses them), or already-parsed events with add().
 */
export class SseRecorder {
  readonly #parser: SseStreamParser;
  readonly #assembler: CompletionAssembler;
  readonly #route: CompletionRoute;
  readonly #maxBodyBytes: number;
  #parts: string[] = [];
  #bodyBytes = 0;
  #done = false;
  #unusable = false;

  constructor(route: CompletionRoute, options: { maxBodyBytes?: number; maxEventBytes?: number } = {}) {
    this.#parser = new SseStreamParser(options.maxEventBytes === undefined ? {} : { maxBufferBytes: options.maxEventBytes });
    this.#route = route;
    this.#assembler = new CompletionAssembler(route);
    this.#maxBodyBytes = options.maxBodyBytes ?? 32 * 1024 * 1024;
  }

  /** Parses and records upstream bytes; returns the completed events (e.g. to forward all but the usage chunk). */
  push(bytes: Uint8Array | string): SseEvent[] {
    const events = this.#parser.push(bytes);
    for (const event of events) this.add(event);
    return events;
  }

  /** The upstream body ended. */
  end(): SseEvent[] {
    const events = this.#parser.end();
    for (const event of events) this.add(event);
    return events;
  }

  add(event: SseEvent): void {
    if (event.done) {
      this.#done = true;
      return;
    }
    const chunk = event.chunk;
    // An error event, or data we cannot read, makes the stream something we must not replay.
    if (!chunk || event.event === 'error' || chunk['error'] !== undefined) {
      this.#unusable = true;
      return;
    }
    this.#assembler.add(chunk);
    if (isUsageOnlyChunk(chunk) || this.#unusable) return;
    this.#bodyBytes += event.raw.length;
    if (this.#bodyBytes > this.#maxBodyBytes) {
      this.#unusable = true;
      this.#parts = [];
      return;
    }
    this.#parts.push(event.raw);
  }

  /** `[DONE]` arrived: the upstream finished the answer. */
  get done(): boolean {
    return this.#done;
  }

  get usage(): Usage | undefined {
    return this.#assembler.usage;
  }

  completion(): Completion {
    return this.#assembler.result();
  }

  /** The entry to store, or undefined when the stream must not be cached (cut off, error, too large). */
  toEntry(provider: string, storedAt = Date.now()): CacheEntry | undefined {
    const identity = this.#assembler.identity;
    if (!this.#done || this.#unusable || this.#parser.overflowed || !identity) return undefined;
    const entry: CacheEntry = {
      storedAt,
      form: 'sse',
      route: this.#route,
      provider,
      model: identity.model,
      chunkIdentity: identity,
      body: Buffer.from(this.#parts.join('')),
    };
    const usage = this.usage;
    if (usage) entry.usage = usage;
    return entry;
  }
}

/* ───────────────────────────── small guards ───────────────────────────── */

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isUsage(value: unknown): value is Usage {
  return isObject(value) && typeof value['prompt_tokens'] === 'number';
}

function numberOr(value: unknown, fallback: number): number {
  return typeof value === 'number' ? value : fallback;
}

function stringOr(value: unknown, fallback: string): string {
  return typeof value === 'string' ? value : fallback;
}
