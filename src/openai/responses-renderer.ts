/**
 * A response object rendered as the stream the Responses API would have sent for it, so a JSON
 * fill answers a `stream: true` request: `response.created`, `response.in_progress`, per output
 * item its `added` event, its content in several deltas and its `done` events, then
 * `response.completed` (or `response.incomplete`) with the whole response. Every event is named
 * (`event: <type>`) and numbered (`sequence_number`), as OpenAI sends them; there is no `[DONE]`.
 * The added events carry their items and parts empty, so a client that accumulates the deltas
 * (the openai SDK's ResponseStream does) ends with exactly the response, not with its text twice.
 */
import { isObject, stringOr, type JsonObject } from './json-fields.js';
import type { ResponseObject } from './responses-types.js';
import { splitText } from './stream-renderer.js';

/** Longest text piece per delta, in UTF-16 units, as for chat streams. */
const PIECE_CHARS = 96;
/** A short text still arrives as several deltas, as the provider would send it. */
const MIN_TEXT_PIECES = 4;

class EventWriter {
  private readonly out: string[] = [];
  private sequence = 0;

  emit(type: string, fields: JsonObject): void {
    const event = { type, sequence_number: this.sequence++, ...fields };
    this.out.push(`event: ${type}\ndata: ${JSON.stringify(event)}\n\n`);
  }

  bytes(): Buffer {
    return Buffer.from(this.out.join(''));
  }
}

export function renderResponseEvents(response: ResponseObject): Buffer {
  const events = new EventWriter();
  const opening: JsonObject = { ...response, status: 'in_progress', output: [], usage: null };
  if ('completed_at' in response) opening['completed_at'] = null;
  if ('incomplete_details' in response) opening['incomplete_details'] = null;
  events.emit('response.created', { response: opening });
  events.emit('response.in_progress', { response: opening });
  for (const [outputIndex, item] of response.output.entries()) renderItem(events, item, outputIndex);
  events.emit(response.status === 'incomplete' ? 'response.incomplete' : 'response.completed', { response });
  return events.bytes();
}

function renderItem(events: EventWriter, item: JsonObject, outputIndex: number): void {
  const itemId = stringOr(item['id'], '');
  const inProgress = (fields: JsonObject): JsonObject => ('status' in item ? { ...item, ...fields, status: 'in_progress' } : { ...item, ...fields });
  const at = { item_id: itemId, output_index: outputIndex };
  switch (item['type']) {
    case 'message': {
      const content = Array.isArray(item['content']) ? item['content'].filter(isObject) : [];
      events.emit('response.output_item.added', { output_index: outputIndex, item: inProgress({ content: [] }) });
      content.forEach((part, contentIndex) => {
        renderContentPart(events, part, { ...at, content_index: contentIndex });
      });
      break;
    }
    case 'function_call': {
      const args = stringOr(item['arguments'], '');
      events.emit('response.output_item.added', { output_index: outputIndex, item: inProgress({ arguments: '' }) });
      for (const piece of splitText(args, PIECE_CHARS)) events.emit('response.function_call_arguments.delta', { ...at, delta: piece });
      events.emit('response.function_call_arguments.done', { ...at, arguments: args });
      break;
    }
    case 'reasoning': {
      const summary = Array.isArray(item['summary']) ? item['summary'].filter(isObject) : [];
      events.emit('response.output_item.added', { output_index: outputIndex, item: inProgress({ summary: [] }) });
      summary.forEach((part, summaryIndex) => {
        const text = stringOr(part['text'], '');
        const where = { ...at, summary_index: summaryIndex };
        events.emit('response.reasoning_summary_part.added', { ...where, part: { ...part, text: '' } });
        for (const piece of splitText(text, PIECE_CHARS, MIN_TEXT_PIECES)) events.emit('response.reasoning_summary_text.delta', { ...where, delta: piece });
        events.emit('response.reasoning_summary_text.done', { ...where, text });
        events.emit('response.reasoning_summary_part.done', { ...where, part });
      });
      break;
    }
    default:
      // Tool calls the provider ran itself (web search, file search, …): announced and finished.
      events.emit('response.output_item.added', { output_index: outputIndex, item: inProgress({}) });
  }
  events.emit('response.output_item.done', { output_index: outputIndex, item });
}

function renderContentPart(events: EventWriter, part: JsonObject, at: JsonObject): void {
  if (part['type'] === 'output_text') {
    const text = stringOr(part['text'], '');
    const annotations = Array.isArray(part['annotations']) ? part['annotations'] : [];
    const logprobs = Array.isArray(part['logprobs']) ? part['logprobs'] : [];
    events.emit('response.content_part.added', { ...at, part: { ...part, text: '', annotations: [], ...('logprobs' in part ? { logprobs: [] } : {}) } });
    for (const piece of splitText(text, PIECE_CHARS, MIN_TEXT_PIECES)) events.emit('response.output_text.delta', { ...at, delta: piece, logprobs: [] });
    annotations.forEach((annotation, annotationIndex) => {
      events.emit('response.output_text.annotation.added', { ...at, annotation_index: annotationIndex, annotation });
    });
    events.emit('response.output_text.done', { ...at, text, logprobs });
  } else if (part['type'] === 'refusal') {
    const refusal = stringOr(part['refusal'], '');
    events.emit('response.content_part.added', { ...at, part: { ...part, refusal: '' } });
    for (const piece of splitText(refusal, PIECE_CHARS, MIN_TEXT_PIECES)) events.emit('response.refusal.delta', { ...at, delta: piece });
    events.emit('response.refusal.done', { ...at, refusal });
  } else {
    events.emit('response.content_part.added', { ...at, part });
  }
  events.emit('response.content_part.done', { ...at, part });
}
