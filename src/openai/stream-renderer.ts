/**
 * Rendering a JSON answer as a stream a client cannot tell from the upstream's, with every data line
 * bounded in size.
 */
import type { ProviderName } from '../providers/provider-name.js';
import { chunkObject, type ChatChoice, type ChunkIdentity, type Completion, type CompletionEndpoint, type TextChoice, type Usage } from './completion-types.js';
import { isObject, stringOr, type JsonObject } from './json-fields.js';
import { SSE_DONE } from './sse-parser.js';

export interface RenderSseOptions {
  /** Add the usage-only chunk (the request asked for `stream_options.include_usage`). */
  includeUsage: boolean;
  /** `groq` also puts usage in `x_groq.usage` of the last chunk, as Groq always does. */
  provider?: ProviderName;
  /** Longest text piece per chunk, in UTF-16 units (keeps every data line far below 64 KiB). */
  pieceChars?: number;
}

const DEFAULT_PIECE_CHARS = 96;
/** JSON escapes a UTF-16 unit into at most 6 bytes: 8192 units stay under 48 KiB, so every line under 64 KiB. */
const MAX_PIECE_CHARS = 8192;
/** Text shorter than this many pieces of pieceChars is still split into this many deltas. */
const MIN_TEXT_PIECES = 4;
/** Logprob entries are batched until a chunk's serialised logprobs reach this size. */
const LOGPROBS_BATCH_BYTES = 16 * 1024;

/**
 * A stream that a client cannot tell from the upstream's: role chunk, text and tool-call deltas
 * in several chunks, a finish chunk per choice, the usage chunk when asked, `[DONE]`. Every chunk
 * repeats the same id, created, model (and system_fingerprint).
 */
export function renderSse(completion: Completion, options: RenderSseOptions): Buffer {
  const pieceChars = Math.min(MAX_PIECE_CHARS, Math.max(16, options.pieceChars ?? DEFAULT_PIECE_CHARS));
  const endpoint: CompletionEndpoint = completion.object === 'text_completion' ? 'completions' : 'chat.completions';
  const groq = options.provider === 'groq';
  const { usage, x_groq: xGroq } = completion;
  const identity = identityOf(completion, endpoint);
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
    if (typeof value === 'string') for (const piece of splitText(value, pieceChars, MIN_TEXT_PIECES)) emit(chunk({ [field]: piece }));
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
  for (const piece of splitText(choice.text, pieceChars, MIN_TEXT_PIECES)) emit([{ text: piece, index, logprobs: null, finish_reason: null }]);
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
export function splitText(text: string, maxChars: number, minPieces = 1): string[] {
  if (!text) return [];
  // A short answer still streams as several deltas, as the provider would send it, not as one:
  // clients that render tokens as they come behave as they do with the provider.
  const size = Math.max(1, Math.min(maxChars, Math.ceil(text.length / minPieces)));
  if (text.length <= size) return [text];
  const pieces: string[] = [];
  let start = 0;
  while (start < text.length) {
    let end = Math.min(start + size, text.length);
    if (end < text.length) {
      let cut = end;
      while (cut > start + size / 2 && !/\s/.test(text.charAt(cut - 1))) cut--;
      end = cut > start + size / 2 ? cut : end;
      const last = text.charCodeAt(end - 1);
      // Never split a surrogate pair; a piece always moves forward.
      if (last >= 0xd800 && last <= 0xdbff) end = end - 1 > start ? end - 1 : end + 1;
    }
    pieces.push(text.slice(start, end));
    start = end;
  }
  return pieces;
}

function identityOf(completion: Completion, endpoint: CompletionEndpoint): ChunkIdentity {
  const identity: ChunkIdentity = { id: completion.id, object: chunkObject(endpoint), created: completion.created, model: completion.model };
  if (completion.system_fingerprint) identity.system_fingerprint = completion.system_fingerprint;
  return identity;
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

/** The usage-only chunk that `stream_options.include_usage` asks for. */
export function usageChunkEvent(identity: ChunkIdentity, usage: Usage, serviceTier?: string): string {
  return chunkEvent(identity, serviceTier, [], { usage });
}
