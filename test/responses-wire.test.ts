/**
 * The Responses API wire format on its own: a response object rendered as its event stream is
 * accumulated by the openai SDK's own accumulator into exactly that response (messages with
 * text, annotations and refusals, function calls, reasoning summaries, provider tool calls); a
 * recorded stream keeps the events byte for byte however the bytes were split, and only a
 * finished one; either form of an entry gives the other; usage maps onto prompt/completion tokens.
 */
import { accumulateResponse } from 'openai/lib/responses/ResponseAccumulator';
import type { Response as OpenAIResponse, ResponseStreamEvent } from 'openai/resources/responses/responses';
import { describe, expect, it } from 'vitest';
import { entryFromStream } from '../src/cache/entry-forms.js';
import type { CacheEntry } from '../src/cache/entry.js';
import { responseEventsFromEntry, responseJsonFromEntry } from '../src/cache/responses-entry-forms.js';
import { renderResponseEvents } from '../src/openai/responses-renderer.js';
import { ResponsesStreamRecorder } from '../src/openai/responses-stream-recorder.js';
import { asResponseObject, usageOfResponse, type ResponseObject } from '../src/openai/responses-types.js';
import { parseSse } from '../src/openai/sse-parser.js';

const LONG_TEXT = 'A sentence that goes on for a while, with words enough to be cut into many deltas. '.repeat(30);

/** A finished response with one of each kind of output item. */
function richResponse(status = 'completed'): ResponseObject {
  return {
    id: 'resp_rich1',
    object: 'response',
    created_at: 1_741_290_958,
    status,
    background: false,
    completed_at: 1_741_290_960,
    error: null,
    incomplete_details: status === 'incomplete' ? { reason: 'max_output_tokens' } : null,
    instructions: 'Be brief.',
    max_output_tokens: null,
    model: 'gpt-4.1-2025-04-14',
    output: [
      { id: 'rs_1', type: 'reasoning', summary: [{ type: 'summary_text', text: 'Thinking about the weather and the sea.' }] },
      {
        id: 'msg_1',
        type: 'message',
        status: 'completed',
        role: 'assistant',
        content: [
          {
            type: 'output_text',
            text: LONG_TEXT,
            annotations: [{ type: 'url_citation', start_index: 0, end_index: 10, url: 'https://example.com/a', title: 'A' }],
            logprobs: [],
          },
          { type: 'refusal', refusal: 'I cannot help with the second part of that.' },
        ],
      },
      { id: 'fc_1', type: 'function_call', status: 'completed', call_id: 'call_1', name: 'get_weather', arguments: '{"city":"Paris","unit":"celsius"}' },
      { id: 'ws_1', type: 'web_search_call', status: 'completed', action: { type: 'search', query: 'weather Paris' } },
      { id: 'msg_2', type: 'message', status: 'completed', role: 'assistant', content: [{ type: 'output_text', text: 'Ünïcödé 🌍 done.', annotations: [] }] },
    ],
    parallel_tool_calls: true,
    previous_response_id: null,
    reasoning: { effort: 'low', summary: 'auto' },
    store: true,
    temperature: 1,
    text: { format: { type: 'text' } },
    tool_choice: 'auto',
    tools: [],
    top_p: 1,
    truncation: 'disabled',
    usage: {
      input_tokens: 37,
      input_tokens_details: { cached_tokens: 5 },
      output_tokens: 911,
      output_tokens_details: { reasoning_tokens: 64 },
      total_tokens: 948,
    },
    user: null,
    metadata: {},
  };
}

function dataOf(bytes: Buffer): ResponseStreamEvent[] {
  return parseSse(bytes).map((event) => event.chunk as unknown as ResponseStreamEvent);
}

function accumulated(events: ResponseStreamEvent[]): Record<string, unknown> {
  let snapshot: OpenAIResponse | undefined;
  for (const event of events) snapshot = accumulateResponse(event, snapshot);
  const { output_text: _added, ...rest } = snapshot as OpenAIResponse;
  return rest;
}

function feed(recorder: ResponsesStreamRecorder, bytes: Buffer, pieces: number): void {
  const size = Math.max(1, Math.ceil(bytes.length / pieces));
  for (let at = 0; at < bytes.length; at += size) recorder.push(bytes.subarray(at, at + size));
  recorder.end();
}

function entry(form: 'json' | 'sse', body: Buffer): CacheEntry {
  return { storedAt: Date.now(), form, endpoint: 'responses', provider: 'openai', model: 'gpt-4.1-2025-04-14', body };
}

describe('a response rendered as its stream', () => {
  it.each(['completed', 'incomplete'])('accumulates, in the SDK, to exactly the %s response', (status) => {
    const response = richResponse(status);
    const bytes = renderResponseEvents(response);
    const events = dataOf(bytes);
    expect(accumulated(events)).toEqual(response);
    expect(events.at(-1)?.type).toBe(`response.${status}`);
  });

  it('builds every item from its deltas alone: the added events carry them empty, so no text arrives twice', () => {
    const response = richResponse();
    const growing = dataOf(renderResponseEvents(response)).filter((event) => !event.type.endsWith('.done') && event.type !== 'response.completed');
    const built = accumulated(growing)['output'] as Array<Record<string, unknown>>;
    const withFinalStatus = built.map((item, index) => {
      const final = response.output[index] as Record<string, unknown>;
      const { status: _progress, ...rest } = item;
      return 'status' in final ? { ...rest, status: final['status'] } : rest;
    });
    expect(withFinalStatus).toEqual(response.output);
  });

  it('names and numbers every event, splits text into several deltas, and has no [DONE]', () => {
    const bytes = renderResponseEvents(richResponse());
    const parsed = parseSse(bytes);
    expect(bytes.toString()).not.toContain('[DONE]');
    for (const [index, event] of parsed.entries()) {
      expect(event.event).toBe(event.chunk?.['type']);
      expect(event.chunk?.['sequence_number']).toBe(index);
    }
    const types = parsed.map((event) => event.event);
    expect(types.slice(0, 2)).toEqual(['response.created', 'response.in_progress']);
    expect(types.filter((type) => type === 'response.output_text.delta').length).toBeGreaterThan(10);
    expect(types).toContain('response.function_call_arguments.delta');
    expect(types).toContain('response.reasoning_summary_text.delta');
    expect(types).toContain('response.refusal.delta');
    expect(types).toContain('response.output_text.annotation.added');
    // The opening response holds no output and no usage yet, as the provider's does.
    const created = parsed[0]?.chunk?.['response'] as Record<string, unknown>;
    expect(created['status']).toBe('in_progress');
    expect(created['output']).toEqual([]);
    expect(created['usage']).toBeNull();
  });
});

describe('a Responses stream recorded', () => {
  it.each([1, 7, 300])('keeps the events byte for byte (split in %i pieces), with the usage as prompt/completion tokens', (pieces) => {
    const bytes = renderResponseEvents(richResponse());
    const recorder = new ResponsesStreamRecorder();
    feed(recorder, bytes, pieces);
    expect(recorder.done).toBe(true);
    const recorded = recorder.recorded();
    expect(recorded?.events.equals(bytes)).toBe(true);
    expect(recorded?.identity).toEqual({ id: 'resp_rich1', object: 'response', created: 1_741_290_958, model: 'gpt-4.1-2025-04-14' });
    expect(recorder.usage).toEqual({ prompt_tokens: 37, completion_tokens: 911, total_tokens: 948, prompt_tokens_details: { cached_tokens: 5 } });
    const stored = entryFromStream(recorder, 'openai');
    expect(stored?.endpoint).toBe('responses');
    expect(stored?.form).toBe('sse');
  });

  it('is not kept when it was cut off, failed, or carried an error event', () => {
    const bytes = renderResponseEvents(richResponse()).toString();
    const cut = new ResponsesStreamRecorder();
    feed(cut, Buffer.from(bytes.slice(0, bytes.lastIndexOf('event: response.completed'))), 3);
    expect(cut.done).toBe(false);
    expect(cut.recorded()).toBeUndefined();

    const failedResponse = { ...richResponse(), status: 'failed', error: { code: 'server_error', message: 'boom' } };
    const failed = new ResponsesStreamRecorder();
    const failedBytes = `${bytes.slice(0, bytes.indexOf('event: response.output_item.added'))}event: response.failed\ndata: ${JSON.stringify({ type: 'response.failed', sequence_number: 2, response: failedResponse })}\n\n`;
    feed(failed, Buffer.from(failedBytes), 2);
    expect(failed.done).toBe(true); // the provider ended its stream: nothing is missing, nothing is kept
    expect(failed.recorded()).toBeUndefined();

    const errored = new ResponsesStreamRecorder();
    const errorEvent = `event: error\ndata: ${JSON.stringify({ type: 'error', code: 'server_error', message: 'x', param: null, sequence_number: 3 })}\n\n`;
    feed(errored, Buffer.from(bytes.replace('event: response.output_item.added', `${errorEvent}event: response.output_item.added`)), 4);
    expect(errored.recorded()).toBeUndefined();
  });
});

describe('either form of a Responses entry', () => {
  it('a stored stream answers JSON with the response its last event carries; a stored response answers a stream', () => {
    const response = richResponse();
    const streamed = entry('sse', renderResponseEvents(response));
    expect(JSON.parse(responseJsonFromEntry(streamed)?.toString() ?? 'null')).toEqual(response);
    expect(responseEventsFromEntry(streamed)?.equals(streamed.body)).toBe(true);

    const json = entry('json', Buffer.from(JSON.stringify(response)));
    expect(responseJsonFromEntry(json)?.equals(json.body)).toBe(true);
    expect(accumulated(dataOf(responseEventsFromEntry(json) ?? Buffer.alloc(0)))).toEqual(response);
  });

  it('unusable stored data gives no answer rather than a wrong one', () => {
    expect(responseEventsFromEntry(entry('json', Buffer.from('{"object":"chat.completion"}')))).toBeUndefined();
    expect(responseEventsFromEntry(entry('json', Buffer.from('not json')))).toBeUndefined();
    expect(responseJsonFromEntry(entry('sse', Buffer.from('event: response.created\ndata: {"type":"response.created"}\n\n')))).toBeUndefined();
  });
});

describe('Responses usage', () => {
  it('maps input/output tokens onto prompt/completion tokens; anything else is no usage', () => {
    expect(usageOfResponse({ input_tokens: 3, output_tokens: 4, total_tokens: 7 })).toEqual({ prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 });
    expect(usageOfResponse({ input_tokens: 3 })).toEqual({ prompt_tokens: 3, completion_tokens: 0, total_tokens: 3 });
    expect(usageOfResponse(null)).toBeUndefined();
    expect(usageOfResponse({ prompt_tokens: 3 })).toBeUndefined();
    expect(asResponseObject({ object: 'response', id: 'r', created_at: 1, model: 'm', output: [1] })).toBeUndefined();
  });
});
