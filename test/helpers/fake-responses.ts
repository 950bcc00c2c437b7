/**
 * The fake upstream's Responses API (`POST /v1/responses`, and Groq's `/openai/v1/responses`),
 * in OpenAI's wire shapes: the response object as JSON, or its stream of named, numbered events
 * (`response.created`, `response.in_progress`, `response.output_item.added`,
 * `response.content_part.added`, `response.output_text.delta`…, `response.output_text.done`,
 * `response.content_part.done`, `response.output_item.done`, `response.completed`; no [DONE]).
 * `background: true` is answered with a queued response, as OpenAI does; a `conversation` is
 * echoed in the response.
 */
import type { ServerResponse } from 'node:http';
import { answerFor } from './fake-upstream.js';

export interface ResponsesStreamControls {
  /** Text pieces the answer is streamed in. */
  chunks: number;
  chunkDelayMs: number;
  /** Cut the connection after this many deltas (undefined: never). */
  cutAfterChunks: number | undefined;
  /** Stop sending (and never end) after this many deltas. */
  stallAfterChunks: number | undefined;
}

/** The text the fake answers a Responses request with: the chat echo of its last input text. */
export function responsesAnswerFor(body: Record<string, unknown>): string {
  return answerFor({ messages: [{ content: lastInputText(body.input) }], seed: body.seed, temperature: body.temperature });
}

function lastInputText(input: unknown): unknown {
  if (!Array.isArray(input)) return input;
  const last = input.at(-1) as { content?: unknown } | undefined;
  const content = last?.content;
  if (!Array.isArray(content)) return content;
  return content.map((part: { text?: unknown }) => (typeof part.text === 'string' ? part.text : '')).join('');
}

const words = (text: string): number => Math.max(1, text.split(/\s+/).filter(Boolean).length);

/** The response object OpenAI returns for `body`, finished (or queued, for a background request). */
export function responseObject(id: number, model: string, body: Record<string, unknown>): Record<string, unknown> {
  const text = responsesAnswerFor(body);
  const createdAt = 1_700_000_000 + id;
  const queued = body.background === true;
  const outputTokens = words(text);
  return {
    id: `resp_fake${id}`,
    object: 'response',
    created_at: createdAt,
    status: queued ? 'queued' : 'completed',
    background: queued,
    completed_at: queued ? null : createdAt + 1,
    ...(body.conversation === undefined ? {} : { conversation: { id: conversationId(body.conversation) } }),
    error: null,
    incomplete_details: null,
    instructions: body.instructions ?? null,
    max_output_tokens: body.max_output_tokens ?? null,
    max_tool_calls: null,
    model,
    output: queued ? [] : [messageItem(id, 'completed', [outputText(text)])],
    parallel_tool_calls: true,
    previous_response_id: body.previous_response_id ?? null,
    prompt_cache_key: null,
    reasoning: { effort: null, summary: null },
    safety_identifier: null,
    service_tier: 'default',
    store: body.store ?? true,
    temperature: body.temperature ?? 1.0,
    text: { format: { type: 'text' }, verbosity: 'medium' },
    tool_choice: 'auto',
    tools: [],
    top_logprobs: 0,
    top_p: 1.0,
    truncation: 'disabled',
    usage: queued
      ? null
      : {
          input_tokens: 11,
          input_tokens_details: { cached_tokens: 0 },
          output_tokens: outputTokens,
          output_tokens_details: { reasoning_tokens: 0 },
          total_tokens: 11 + outputTokens,
        },
    user: null,
    metadata: {},
  };
}

function conversationId(conversation: unknown): string {
  if (typeof conversation === 'string') return conversation;
  const id = (conversation as { id?: unknown } | null)?.id;
  return typeof id === 'string' ? id : 'conv_fake';
}

function messageItem(id: number, status: string, content: unknown[]): Record<string, unknown> {
  return { id: `msg_fake${id}`, type: 'message', status, content, role: 'assistant' };
}

function outputText(text: string): Record<string, unknown> {
  return { type: 'output_text', annotations: [], logprobs: [], text };
}

function splitWords(text: string, pieces: number): string[] {
  const all = text.split(/(?<= )/);
  const size = Math.max(1, Math.ceil(all.length / pieces));
  const out: string[] = [];
  for (let i = 0; i < all.length; i += size) out.push(all.slice(i, i + size).join(''));
  return out;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Streams `response` (a finished response object) as OpenAI streams it. */
export async function streamResponse(
  res: ServerResponse,
  response: Record<string, unknown>,
  controls: ResponsesStreamControls,
  headers: Record<string, string>,
): Promise<void> {
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', ...headers });
  let sequence = 0;
  const send = (type: string, fields: Record<string, unknown>): void => {
    res.write(`event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: sequence++, ...fields })}\n\n`);
  };
  const opening = { ...response, status: 'in_progress', completed_at: null, output: [], usage: null };
  send('response.created', { response: opening });
  send('response.in_progress', { response: opening });
  const item = (response.output as Array<Record<string, unknown>>)[0] ?? messageItem(0, 'completed', [outputText('')]);
  const itemId = item.id as string;
  const text = ((item.content as Array<{ text: string }>)[0] ?? { text: '' }).text;
  const at = { item_id: itemId, output_index: 0, content_index: 0 };
  send('response.output_item.added', { output_index: 0, item: { ...item, status: 'in_progress', content: [] } });
  send('response.content_part.added', { ...at, part: outputText('') });
  for (const [index, piece] of splitWords(text, controls.chunks).entries()) {
    if (controls.cutAfterChunks !== undefined && index >= controls.cutAfterChunks) {
      res.destroy();
      return;
    }
    if (controls.stallAfterChunks !== undefined && index >= controls.stallAfterChunks) return; // never ends
    if (controls.chunkDelayMs > 0) await sleep(controls.chunkDelayMs);
    if (res.destroyed) return;
    send('response.output_text.delta', { ...at, delta: piece, logprobs: [] });
  }
  send('response.output_text.done', { ...at, text, logprobs: [] });
  send('response.content_part.done', { ...at, part: outputText(text) });
  send('response.output_item.done', { output_index: 0, item });
  send('response.completed', { response });
  res.end();
}
