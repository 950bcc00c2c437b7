/**
 * Continuing a Responses API stream its clients got the start of from a call that died, with a
 * new call's stream (src/pipeline/responses-stream-resume.ts): on events shaped as OpenAI sends
 * them, the client's whole stream (what it had, then what is relayed) is one stream (one response
 * id, one item id, consecutive sequence numbers) that the gateway's own recorder reads as one
 * finished response holding the whole text; a new answer that differs is refused.
 */
import { describe, expect, it } from 'vitest';
import { parseSse } from '../src/openai/sse-parser.js';
import { ResponsesStreamRecorder } from '../src/openai/responses-stream-recorder.js';
import type { StreamEvent } from '../src/pipeline/flight.js';
import { StreamResume } from '../src/pipeline/stream-resume.js';
import { resumeWith } from './helpers/stream-resume.js';

type Event = Record<string, unknown>;

/** A text answer's stream as OpenAI sends it, each event named and numbered. */
function responseEvents(call: string, pieces: string[], extra: { logprobs?: unknown[] } = {}): StreamEvent[] {
  const id = `resp_${call}`;
  const itemId = `msg_${call}`;
  const text = pieces.join('');
  const base = { id, object: 'response', created_at: 1_700_000_000 + call.length, model: 'gpt-4o-mini-2024-07-18', output: [], usage: null };
  const at = { item_id: itemId, output_index: 0, content_index: 0 };
  const part = { type: 'output_text', text: '', annotations: [], logprobs: [] };
  const item = { id: itemId, type: 'message', status: 'in_progress', role: 'assistant', content: [] };
  const doneItem = { ...item, status: 'completed', content: [{ ...part, text }] };
  const list: Array<[string, Event]> = [
    ['response.created', { response: { ...base, status: 'in_progress' } }],
    ['response.in_progress', { response: { ...base, status: 'in_progress' } }],
    ['response.output_item.added', { output_index: 0, item }],
    ['response.content_part.added', { ...at, part }],
    ...pieces.map((delta): [string, Event] => ['response.output_text.delta', { ...at, delta, logprobs: extra.logprobs ?? [] }]),
    ['response.output_text.done', { ...at, text, logprobs: [] }],
    ['response.content_part.done', { ...at, part: { ...part, text } }],
    ['response.output_item.done', { output_index: 0, item: doneItem }],
    ['response.completed', { response: { ...base, status: 'completed', output: [doneItem], usage: { input_tokens: 9, output_tokens: 5, total_tokens: 14 } } }],
  ];
  return list.map(([type, fields], sequence) => ({
    data: `event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: sequence, ...fields })}\n\n`,
    usageOnly: false,
  }));
}

function eventsOf(client: StreamEvent[]): Event[] {
  return client.flatMap((event) => parseSse(event.data)).map((event) => event.chunk!);
}

const ANSWER = ['Hello', ', brave', ' new', ' world', '!'];
/** The sent prefix: created, in progress, the item and part added, then the first two deltas. */
const SENT_EVENTS = 6;

describe('resuming a Responses API stream from a new call', () => {
  it('the new call, split differently, is relayed from where the client stopped, under the sent ids and numbering', () => {
    const sent = responseEvents('A', ANSWER).slice(0, SENT_EVENTS);
    const { client, diverged, covered } = resumeWith('responses', sent, responseEvents('BB', ['Hello, br', 'ave new w', 'orld!']));
    expect(diverged).toBeUndefined();
    expect(covered).toBe(true);
    const events = eventsOf(client);
    expect(events.map((event) => event['sequence_number'])).toEqual(events.map((_, i) => i));
    expect(events.map((event) => event['type'])).toEqual([
      'response.created',
      'response.in_progress',
      'response.output_item.added',
      'response.content_part.added',
      'response.output_text.delta',
      'response.output_text.delta',
      'response.output_text.delta',
      'response.output_text.delta',
      'response.output_text.done',
      'response.content_part.done',
      'response.output_item.done',
      'response.completed',
    ]);
    // The straddling delta carries only what the client lacked.
    expect(events.filter((event) => event['type'] === 'response.output_text.delta').map((event) => event['delta'])).toEqual([
      'Hello',
      ', brave',
      ' new w',
      'orld!',
    ]);
    const text = JSON.stringify(events.slice(SENT_EVENTS));
    expect(text).not.toContain('resp_BB');
    expect(text).not.toContain('msg_BB');
    const completed = events.at(-1)!['response'] as Event;
    expect(completed['id']).toBe('resp_A');
    expect(completed['created_at']).toBe(1_700_000_001);
    // Every event after the prefix is named as OpenAI names it.
    expect(client.slice(SENT_EVENTS).every((event) => event.data.startsWith('event: response.'))).toBe(true);
    // The gateway's own recorder reads it as one finished response with the whole text.
    const recorder = new ResponsesStreamRecorder();
    for (const event of client.flatMap((relayed) => parseSse(relayed.data))) recorder.add(event);
    expect(recorder.done).toBe(true);
    expect(recorder.recorded()?.identity.id).toBe('resp_A');
  });

  it('a client that had the whole text gets only the closing events', () => {
    const all = responseEvents('A', ANSWER);
    const sent = all.slice(0, 4 + ANSWER.length + 1); // through output_text.done
    const { client, diverged } = resumeWith('responses', sent, responseEvents('B', ANSWER));
    expect(diverged).toBeUndefined();
    expect(eventsOf(client.slice(sent.length)).map((event) => event['type'])).toEqual([
      'response.content_part.done',
      'response.output_item.done',
      'response.completed',
    ]);
  });

  it('a new answer that differs from the sent text is refused before anything of it is relayed', () => {
    const sent = responseEvents('A', ANSWER).slice(0, SENT_EVENTS);
    const { client, diverged } = resumeWith('responses', sent, responseEvents('B', ['Hello, bold', ' new world!']));
    expect(diverged).toBe('different text');
    expect(client).toEqual(sent);
  });

  it('a new answer shorter than the sent text is refused at its text done, or found short at its end', () => {
    const sent = responseEvents('A', ANSWER).slice(0, SENT_EVENTS);
    expect(resumeWith('responses', sent, responseEvents('B', ['Hello'])).diverged).toBe('a shorter answer');
    const cut = resumeWith('responses', sent, responseEvents('B', ['Hello']).slice(0, 5));
    expect(cut.diverged).toBeUndefined();
    expect(cut.covered).toBe(false);
  });

  it('a sent prefix holding a function call or logprobs is not resumable', () => {
    const call: StreamEvent = {
      data: `event: response.output_item.added\ndata: ${JSON.stringify({
        type: 'response.output_item.added',
        sequence_number: 2,
        output_index: 0,
        item: { id: 'fc_1', type: 'function_call', status: 'in_progress', arguments: '', call_id: 'call_1', name: 'lookup' },
      })}\n\n`,
      usageOnly: false,
    };
    expect(StreamResume.after('responses', [...responseEvents('A', ANSWER).slice(0, 2), call])).toBeUndefined();
    const withLogprobs = responseEvents('A', ANSWER, { logprobs: [{ token: 'Hello', logprob: -0.1, bytes: [], top_logprobs: [] }] });
    expect(StreamResume.after('responses', withLogprobs.slice(0, SENT_EVENTS))).toBeUndefined();
  });

  it('a stage of the whole response the clients are past (queued) is not repeated', () => {
    const sent = responseEvents('A', ANSWER).slice(0, SENT_EVENTS);
    const next = responseEvents('B', ANSWER);
    const queued: StreamEvent = {
      data: `event: response.queued\ndata: ${JSON.stringify({ type: 'response.queued', sequence_number: 0, response: { id: 'resp_B', status: 'queued' } })}\n\n`,
      usageOnly: false,
    };
    const { client, diverged } = resumeWith('responses', sent, [next[0]!, queued, ...next.slice(1)]);
    expect(diverged).toBeUndefined();
    expect(eventsOf(client).map((event) => event['type'])).not.toContain('response.queued');
    expect(eventsOf(client).at(-1)!['type']).toBe('response.completed');
  });

  it('an error event of the new call is passed on as it is', () => {
    const sent = responseEvents('A', ANSWER).slice(0, SENT_EVENTS);
    const error: StreamEvent = {
      data: 'event: error\ndata: {"type":"error","code":"server_error","message":"overloaded","sequence_number":0}\n\n',
      usageOnly: false,
    };
    const { client } = resumeWith('responses', sent, [error]);
    expect(client.at(-1)).toBe(error);
    const failed: StreamEvent = {
      data: `event: response.failed\ndata: ${JSON.stringify({ type: 'response.failed', sequence_number: 1, response: { id: 'resp_B', status: 'failed' } })}\n\n`,
      usageOnly: false,
    };
    expect(resumeWith('responses', sent, [failed]).client.at(-1)).toBe(failed);
  });
});
