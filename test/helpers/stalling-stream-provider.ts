/**
 * A provider double whose chat streams follow a plan per call: the n-th completion call streams
 * the n-th plan's text in its pieces (OpenAI's chunk shapes: role, content deltas, finish, the
 * usage-only chunk when asked, [DONE]), each call under its own completion id, and may stall
 * after some pieces, holding the connection open until the caller hangs up. Responses API streams
 * (`/v1/responses`) follow the same plans in that API's events. Lets a test cut a
 * stream at a known point (its caller killed) and script what the next calls answer.
 * Real HTTP on loopback; serves /v1/models like OpenAI, so a gateway routes `gpt-4o-mini` to it.
 */
import type { ServerResponse } from 'node:http';
import { closeNow, createWholeBodyServer, listenOnLoopback, type ProviderUrls } from './provider-double-server.js';

export interface StreamPlan {
  /** The answer's text, as the content deltas carry it. */
  pieces: string[];
  /** Stall after this many pieces (the answer never ends); undefined: stream to the end. */
  stallAfter?: number;
  /** Refuse the call with this status (an OpenAI-shaped error body) instead of answering. */
  refuseWith?: number;
}

export interface StallingStreamProvider extends ProviderUrls {
  /** How many completion calls arrived. */
  readonly calls: number;
  close(): Promise<void>;
}

export async function startStallingStreamProvider(plan: (call: number) => StreamPlan): Promise<StallingStreamProvider> {
  let calls = 0;
  const server = createWholeBodyServer((req, res, raw) => {
    const path = (req.url ?? '').split('?')[0] ?? '';
    if (req.method === 'GET' && path === '/v1/models') {
      return json(res, 200, { object: 'list', data: [{ id: 'gpt-4o-mini', object: 'model', created: 1_700_000_000, owned_by: 'openai' }] });
    }
    if (req.method !== 'POST' || (path !== '/v1/chat/completions' && path !== '/v1/responses'))
      return json(res, 404, { error: { message: `Unknown route ${path}`, type: 'invalid_request_error' } });
    const call = calls++;
    if (path === '/v1/responses') return answerResponse(res, call, JSON.parse(raw.toString('utf8') || '{}'), plan(call));
    const body = JSON.parse(raw.toString('utf8') || '{}') as { model?: string; stream?: boolean; stream_options?: { include_usage?: boolean } };
    const { pieces, stallAfter, refuseWith } = plan(call);
    if (refuseWith !== undefined) return json(res, refuseWith, { error: { message: 'Refused by the test', type: 'invalid_request_error', code: null } });
    const base = {
      id: `chatcmpl-stalling${call}`,
      object: 'chat.completion.chunk',
      created: 1_700_000_000 + call,
      model: body.model ?? 'gpt-4o-mini',
      system_fingerprint: 'fp_fake',
    };
    const usage = { prompt_tokens: 7, completion_tokens: pieces.length, total_tokens: 7 + pieces.length };
    if (body.stream !== true) {
      const message = { role: 'assistant', content: pieces.join('') };
      return json(res, 200, { ...base, object: 'chat.completion', choices: [{ index: 0, message, logprobs: null, finish_reason: 'stop' }], usage });
    }
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' });
    const send = (chunk: Record<string, unknown>): boolean => res.write(`data: ${JSON.stringify({ ...base, ...chunk })}\n\n`);
    send({ choices: [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }] });
    for (const [index, content] of pieces.entries()) {
      if (index === stallAfter) return; // held open until the caller goes away
      send({ choices: [{ index: 0, delta: { content }, logprobs: null, finish_reason: null }] });
    }
    send({ choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: 'stop' }] });
    if (body.stream_options?.include_usage === true) send({ choices: [], usage });
    res.end('data: [DONE]\n\n');
  });
  const urls = await listenOnLoopback(server);
  return {
    ...urls,
    get calls() {
      return calls;
    },
    close: () => closeNow(server),
  };
}

/** A Responses API answer: the text message's events as OpenAI sends them (named, numbered), or the response object. */
function answerResponse(res: ServerResponse, call: number, body: { model?: string; stream?: boolean }, plan: StreamPlan): void {
  const { pieces, stallAfter, refuseWith } = plan;
  if (refuseWith !== undefined) {
    json(res, refuseWith, { error: { message: 'Refused by the test', type: 'invalid_request_error', code: null } });
    return;
  }
  const text = pieces.join('');
  const part = { type: 'output_text', text: '', annotations: [], logprobs: [] };
  const item = { id: `msg_stalling${call}`, type: 'message', status: 'in_progress', role: 'assistant', content: [] as unknown[] };
  const doneItem = { ...item, status: 'completed', content: [{ ...part, text }] };
  const base = {
    id: `resp_stalling${call}`,
    object: 'response',
    created_at: 1_700_000_000 + call,
    model: body.model ?? 'gpt-4o-mini',
    output: [] as unknown[],
  };
  const usage = {
    input_tokens: 7,
    input_tokens_details: { cached_tokens: 0 },
    output_tokens: pieces.length,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: 7 + pieces.length,
  };
  const finished = { ...base, status: 'completed', output: [doneItem], usage };
  if (body.stream !== true) {
    json(res, 200, finished);
    return;
  }
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' });
  let sequence = 0;
  const send = (type: string, fields: Record<string, unknown>): boolean =>
    res.write(`event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: sequence++, ...fields })}\n\n`);
  const at = { item_id: item.id, output_index: 0, content_index: 0 };
  send('response.created', { response: { ...base, status: 'in_progress', usage: null } });
  send('response.in_progress', { response: { ...base, status: 'in_progress', usage: null } });
  send('response.output_item.added', { output_index: 0, item });
  send('response.content_part.added', { ...at, part });
  for (const [index, delta] of pieces.entries()) {
    if (index === stallAfter) return; // held open until the caller goes away
    send('response.output_text.delta', { ...at, delta, logprobs: [] });
  }
  send('response.output_text.done', { ...at, text, logprobs: [] });
  send('response.content_part.done', { ...at, part: { ...part, text } });
  send('response.output_item.done', { output_index: 0, item: doneItem });
  send('response.completed', { response: finished });
  res.end();
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)) });
  res.end(text);
}
