/**
 * Assembling streamed chunks into the non-streamed JSON answer: text, message fields, tool and
 * function calls and logprobs merged per choice, plus usage (also Groq's `x_groq.usage`).
 */
import {
  chunkObject,
  isUsage,
  type ChatChoice,
  type ChatMessage,
  type ChunkIdentity,
  type Completion,
  type CompletionBase,
  type CompletionEndpoint,
  type TextChoice,
  type ToolCall,
  type Usage,
} from './completion-types.js';
import { isObject, numberOr, stringOr, type JsonObject } from './json-fields.js';

interface ChoiceState {
  message: ChatMessage;
  text: string;
  toolCalls: Map<number, ToolCall>;
  logprobs: unknown;
  finishReason: string | null;
}

/** Builds the non-streamed answer from chunks, one chunk at a time (nothing but the result is kept). */
export class CompletionAssembler {
  readonly #endpoint: CompletionEndpoint;
  readonly #choices = new Map<number, ChoiceState>();
  #identity: Omit<ChunkIdentity, 'object'> | undefined;
  #serviceTier: string | undefined;
  #usage: Usage | undefined;
  #groqUsage: Usage | undefined;
  #xGroq: JsonObject | undefined;

  constructor(endpoint: CompletionEndpoint) {
    this.#endpoint = endpoint;
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
    return this.#identity && { ...this.#identity, object: chunkObject(this.#endpoint) };
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
    if (this.#endpoint === 'completions') {
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

export function assembleCompletion(chunks: Iterable<JsonObject>, endpoint: CompletionEndpoint): Completion {
  const assembler = new CompletionAssembler(endpoint);
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
