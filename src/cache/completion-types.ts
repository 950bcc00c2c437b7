/**
 * The shapes of chat and legacy text completions (OpenAI and Groq flavours) shared by the SSE parser,
 * assembler, renderer and replayer, and the small guards for reading their loosely typed JSON.
 */
import type { Usage } from './entry.js';

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

/** The `object` of a streamed chunk on this route. */
export function chunkObject(route: CompletionRoute): string {
  return route === 'completions' ? 'text_completion' : 'chat.completion.chunk';
}

/* ─────────────── guards and readers for untyped JSON fields ─────────────── */

export function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function isUsage(value: unknown): value is Usage {
  return isObject(value) && typeof value['prompt_tokens'] === 'number';
}

export function numberOr(value: unknown, fallback: number): number {
  return typeof value === 'number' ? value : fallback;
}

export function stringOr(value: unknown, fallback: string): string {
  return typeof value === 'string' ? value : fallback;
}
