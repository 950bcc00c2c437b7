/**
 * The Responses API (`POST /responses`) as the wire carries it: the response object, its usage
 * and the events of its stream. Only what the gateway reads is typed; every other field is
 * kept as it came.
 */
import type { Usage } from './completion-types.js';
import { isObject, type JsonObject } from './json-fields.js';

/** A response object (`"object": "response"`), loosely typed: output items are kept as they came. */
export interface ResponseObject extends JsonObject {
  id: string;
  object: 'response';
  created_at: number;
  model: string;
  status?: string;
  output: JsonObject[];
  usage?: unknown;
}

/**
 * The events that end a stream with a finished answer: `response.completed`, or
 * `response.incomplete` (stopped by `max_output_tokens` or a content filter), which like a chat
 * completion cut by `finish_reason: "length"` is the answer the request gets every time.
 */
export const FINISHED_EVENT_TYPES: ReadonlySet<string> = new Set(['response.completed', 'response.incomplete']);
/** The events that end a stream without an answer worth keeping. */
export const FAILED_EVENT_TYPES: ReadonlySet<string> = new Set(['response.failed', 'error']);

/** The statuses of a response that is a finished answer (not queued, in progress, failed or cancelled). */
const FINISHED_STATUSES: ReadonlySet<string> = new Set(['completed', 'incomplete']);

export function asResponseObject(value: unknown): ResponseObject | undefined {
  if (!isObject(value) || value['object'] !== 'response') return undefined;
  if (typeof value['id'] !== 'string' || typeof value['model'] !== 'string' || typeof value['created_at'] !== 'number') return undefined;
  if (!Array.isArray(value['output']) || !value['output'].every(isObject)) return undefined;
  return value as ResponseObject;
}

/** A response that holds a finished answer, so it can be stored and served again. */
export function isFinishedResponse(value: unknown): boolean {
  const response = asResponseObject(value);
  return response !== undefined && typeof response.status === 'string' && FINISHED_STATUSES.has(response.status);
}

/**
 * Responses usage (`input_tokens`, `output_tokens`, `input_tokens_details.cached_tokens`) in the
 * gateway's one token shape, so that tokens and cost are counted as for chat completions:
 * input as prompt tokens, output (reasoning included, as billed) as completion tokens.
 */
export function usageOfResponse(usage: unknown): Usage | undefined {
  if (!isObject(usage) || typeof usage['input_tokens'] !== 'number') return undefined;
  const input = usage['input_tokens'];
  const output = typeof usage['output_tokens'] === 'number' ? usage['output_tokens'] : 0;
  const tokens: Usage = {
    prompt_tokens: input,
    completion_tokens: output,
    total_tokens: typeof usage['total_tokens'] === 'number' ? usage['total_tokens'] : input + output,
  };
  const details = usage['input_tokens_details'];
  if (isObject(details) && typeof details['cached_tokens'] === 'number') tokens['prompt_tokens_details'] = { cached_tokens: details['cached_tokens'] };
  return tokens;
}

/**
 * An error in the middle of a Responses stream, as the API sends one (`event: error`, with its
 * `type`, `code` and `message`), carrying also the `error` object from which every OpenAI SDK
 * raises an APIError, as it does for a chat stream's error.
 */
export function responsesErrorEvent(error: { message: string; type: string; code: string | null }): string {
  return `event: error\ndata: ${JSON.stringify({ type: 'error', code: error.code, message: error.message, param: null, error })}\n\n`;
}
