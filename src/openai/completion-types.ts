/**
 * The shapes of chat and legacy text completions and their streamed chunks (OpenAI and Groq
 * flavours), as the wire carries them, and the guards that tell them apart.
 */
import { isObject, type JsonObject } from './json-fields.js';

/** The two endpoints that answer with a completion, as JSON or as a stream of chunks. */
export type CompletionEndpoint = 'chat.completions' | 'completions';

/** Token counts as the upstream reported them; provider-specific details are kept as they came. */
export interface Usage {
  prompt_tokens: number;
  /** Absent for embeddings. */
  completion_tokens?: number;
  total_tokens: number;
  [detail: string]: unknown;
}

/** The fields every chunk of a stream repeats; lets a usage chunk be made without parsing the stream. */
export interface ChunkIdentity {
  id: string;
  object: string;
  created: number;
  model: string;
  system_fingerprint?: string;
}

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

export interface CompletionBase {
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

/** The `object` of a streamed chunk of this endpoint. */
export function chunkObject(endpoint: CompletionEndpoint): string {
  return endpoint === 'completions' ? 'text_completion' : 'chat.completion.chunk';
}

export function isUsage(value: unknown): value is Usage {
  return isObject(value) && typeof value['prompt_tokens'] === 'number';
}

/** The usage-only chunk (`choices: []` plus `usage`) that `stream_options.include_usage` adds. */
export function isUsageOnlyChunk(chunk: JsonObject | undefined): boolean {
  return chunk !== undefined && Array.isArray(chunk['choices']) && chunk['choices'].length === 0 && isObject(chunk['usage']);
}

/** A parsed JSON body as a Completion, when it has the shape a stream can be rendered from. */
export function asCompletion(value: unknown): Completion | undefined {
  if (!isObject(value) || !Array.isArray(value['choices'])) return undefined;
  if (value['object'] !== 'chat.completion' && value['object'] !== 'text_completion') return undefined;
  if (typeof value['id'] !== 'string' || typeof value['model'] !== 'string' || typeof value['created'] !== 'number') return undefined;
  if (!value['choices'].every((c) => isObject(c) && typeof c['index'] === 'number')) return undefined;
  if (value['object'] === 'chat.completion' && !value['choices'].every((c: JsonObject) => isObject(c['message']))) return undefined;
  if (value['object'] === 'text_completion' && !value['choices'].every((c: JsonObject) => typeof c['text'] === 'string')) return undefined;
  return value as unknown as Completion;
}
