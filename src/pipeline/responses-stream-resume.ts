/**
 * Continuing a Responses API stream whose clients already received a prefix from a call that
 * died (another replica's, in remote-flight.ts) with a new call's stream of the same request:
 * the Responses counterpart of stream-resume.ts. The new stream is relayed only where it provably
 * continues what was sent. Its structural events (`response.created`, an item or a content part
 * added, …) already sent are skipped; its text, part by part, must reproduce the sent text
 * exactly, and the delta that straddles the boundary is re-rendered with only the unsent rest.
 * Every relayed event is renumbered after the last `sequence_number` sent and carries the
 * response id, `created_at` and item ids the clients' stream already uses, so they see one
 * coherent stream (the openai SDK's accumulator ends with one response). A new answer that
 * differs from the sent prefix is reported, never spliced onto it.
 *
 * Text messages only: a sent prefix holding a function call, reasoning, a refusal, annotations
 * or logprobs cannot be continued this way.
 */
import { isObject, type JsonObject } from '../openai/json-fields.js';
import { FAILED_EVENT_TYPES, FINISHED_EVENT_TYPES } from '../openai/responses-types.js';
import { parseSse, type SseEvent } from '../openai/sse-parser.js';
import type { StreamEvent } from './flight.js';
import type { ResumeStep } from './stream-resume.js';

const TEXT_DELTA = 'response.output_text.delta';
const TEXT_DONE = 'response.output_text.done';
/** What a prefix that can be continued may hold. */
const CONTINUABLE_TYPES = new Set([
  'response.created',
  'response.in_progress',
  'response.output_item.added',
  'response.content_part.added',
  TEXT_DELTA,
  TEXT_DONE,
  'response.content_part.done',
  'response.output_item.done',
]);

interface TextState {
  /** The part's text the clients received (grows as the new call's rest is relayed). */
  sent: string;
  /** The new call's text for this part so far. */
  seen: string;
  /** Its `response.output_text.done` was sent: no more text may follow. */
  done: boolean;
}

export class ResponsesStreamResume {
  /** The structural events sent, by position, with the type of the item or part they announced. */
  private readonly structure = new Map<string, string | undefined>();
  private readonly texts = new Map<string, TextState>();
  /** The sent stream's item ids by output index. */
  private readonly itemIds = new Map<number, string>();
  /** The new call's ids (response, items) mapped to the sent stream's. */
  private readonly ids = new Map<string, string>();
  private sequence = -1;
  private responseId: string | undefined;
  private createdAt: unknown;

  private constructor() {}

  /** The resume of a stream after `sent` (the events its clients received), or undefined when it cannot be continued. */
  static after(sent: readonly StreamEvent[]): ResponsesStreamResume | undefined {
    const resume = new ResponsesStreamResume();
    for (const { chunk, event, done } of sent.flatMap((relayed) => parseSse(relayed.data))) {
      if (done) continue;
      if (!chunk || event === 'error' || !resume.record(chunk)) return undefined;
    }
    return resume;
  }

  /** Whether the new call reproduced every part's sent text (checked when it ends). */
  get covered(): boolean {
    return this.caughtUp();
  }

  /** The new call's next event: what to relay of it, or that the new answer is another. */
  next(event: StreamEvent): ResumeStep {
    const parsed = parseSse(event.data);
    const sse: SseEvent | undefined = parsed.length === 1 ? parsed[0] : undefined;
    const type = sse?.chunk?.['type'];
    // An error or a failed response (or what cannot be read) ends the stream as the provider meant it.
    if (!sse?.chunk || sse.event === 'error' || typeof type !== 'string' || FAILED_EVENT_TYPES.has(type)) return { kind: 'relay', event };
    const chunk = sse.chunk;
    this.learnIds(chunk, type);
    if (type === TEXT_DELTA) return this.continueText(sse, chunk);
    const position = positionOf(chunk, type);
    if (this.structure.has(position)) {
      // Sent already; the same position must announce the same kind of item or part.
      return this.structure.get(position) === announcedType(chunk) ? { kind: 'skip' } : { kind: 'diverged', reason: `another ${type}` };
    }
    if (type === TEXT_DONE) {
      const state = this.texts.get(textPositionOf(chunk));
      if (state && state.seen.length < state.sent.length) return { kind: 'diverged', reason: 'a shorter answer' };
      if (state) state.done = true;
    } else if (!this.caughtUp()) {
      // A stage of the whole response (queued, in progress) the clients are past already: not repeated.
      if (chunk['output_index'] === undefined && !FINISHED_EVENT_TYPES.has(type)) return { kind: 'skip' };
      // The new answer moves on (or ends) before reproducing all that was sent.
      return { kind: 'diverged', reason: 'a shorter answer' };
    }
    return { kind: 'relay', event: this.render(sse, chunk) };
  }

  /** Takes in one sent event; false when it holds something that cannot be continued. */
  private record(chunk: JsonObject): boolean {
    const type = chunk['type'];
    if (typeof type !== 'string' || !CONTINUABLE_TYPES.has(type)) return false;
    if (typeof chunk['sequence_number'] === 'number') this.sequence = chunk['sequence_number'];
    const response = chunk['response'];
    if (isObject(response) && typeof response['id'] === 'string') {
      this.responseId ??= response['id'];
      this.createdAt ??= response['created_at'];
    }
    if (type === TEXT_DELTA) {
      if (typeof chunk['delta'] !== 'string' || hasLogprobs(chunk)) return false;
      this.textAt(textPositionOf(chunk)).sent += chunk['delta'];
      return true;
    }
    const announced = announcedType(chunk);
    if (type === 'response.output_item.added') {
      const item = chunk['item'];
      if (announced !== 'message' || !isObject(item) || typeof item['id'] !== 'string' || typeof chunk['output_index'] !== 'number') return false;
      this.itemIds.set(chunk['output_index'], item['id']);
    }
    if (type === 'response.content_part.added' && announced !== 'output_text') return false;
    if (type === TEXT_DONE) {
      if (hasLogprobs(chunk)) return false;
      this.textAt(textPositionOf(chunk)).done = true;
    }
    this.structure.set(positionOf(chunk, type), announced);
    return true;
  }

  /** A text delta of the new call: skipped while it repeats the sent text, its unsent rest relayed. */
  private continueText(sse: SseEvent, chunk: JsonObject): ResumeStep {
    const delta = chunk['delta'];
    if (typeof delta !== 'string') return { kind: 'diverged', reason: 'a delta that cannot be read' };
    const state = this.textAt(textPositionOf(chunk));
    const seen = state.seen + delta;
    if (seen.length <= state.sent.length) {
      if (!state.sent.startsWith(seen)) return { kind: 'diverged', reason: 'different text' };
      state.seen = seen;
      return { kind: 'skip' };
    }
    if (!seen.startsWith(state.sent)) return { kind: 'diverged', reason: 'different text' };
    if (state.done) return { kind: 'diverged', reason: 'more text after the part had finished' };
    // Token logprobs belong to the whole delta: a straddling one cannot be cut.
    const rest = seen.slice(state.sent.length);
    if (rest !== delta && hasLogprobs(chunk)) return { kind: 'diverged', reason: 'logprobs across the sent text' };
    if (!this.caughtUpBefore(textPositionOf(chunk))) return { kind: 'diverged', reason: 'a shorter answer' };
    state.seen = seen;
    state.sent = seen;
    return { kind: 'relay', event: this.render(sse, rest === delta ? chunk : { ...chunk, delta: rest }) };
  }

  /** Maps the new call's response and item ids onto the sent stream's, as they are announced. */
  private learnIds(chunk: JsonObject, type: string): void {
    const response = chunk['response'];
    if (isObject(response) && typeof response['id'] === 'string' && this.responseId !== undefined) this.ids.set(response['id'], this.responseId);
    if (type !== 'response.output_item.added' && type !== 'response.output_item.done') return;
    const item = chunk['item'];
    const sentId = typeof chunk['output_index'] === 'number' ? this.itemIds.get(chunk['output_index']) : undefined;
    if (sentId !== undefined && isObject(item) && typeof item['id'] === 'string') this.ids.set(item['id'], sentId);
  }

  private caughtUp(): boolean {
    for (const state of this.texts.values()) if (state.seen.length < state.sent.length) return false;
    return true;
  }

  /** Every part's sent text but `position`'s own is reproduced already. */
  private caughtUpBefore(position: string): boolean {
    for (const [at, state] of this.texts) if (at !== position && state.seen.length < state.sent.length) return false;
    return true;
  }

  private textAt(position: string): TextState {
    let state = this.texts.get(position);
    if (!state) {
      state = { sent: '', seen: '', done: false };
      this.texts.set(position, state);
    }
    return state;
  }

  /** The event numbered after the last one sent, under the sent stream's ids and creation time. */
  private render(sse: SseEvent, chunk: JsonObject): StreamEvent {
    const out = withIds(chunk, this.ids) as JsonObject;
    out['sequence_number'] = ++this.sequence;
    const response = out['response'];
    if (isObject(response) && this.createdAt !== undefined && 'created_at' in response) out['response'] = { ...response, created_at: this.createdAt };
    const named = sse.event ? `event: ${sse.event}\n` : '';
    return { data: `${named}data: ${JSON.stringify(out)}\n\n`, usageOnly: false };
  }
}

/** Where a structural event sits: its type, output index and content index. */
function positionOf(chunk: JsonObject, type: string): string {
  return `${type}@${String(chunk['output_index'] ?? '')}/${String(chunk['content_index'] ?? '')}`;
}

function textPositionOf(chunk: JsonObject): string {
  return `${String(chunk['output_index'] ?? '')}/${String(chunk['content_index'] ?? '')}`;
}

/** The type of the item or content part an event announces (undefined for the others). */
function announcedType(chunk: JsonObject): string | undefined {
  const announced = chunk['item'] ?? chunk['part'];
  return isObject(announced) && typeof announced['type'] === 'string' ? announced['type'] : undefined;
}

function hasLogprobs(chunk: JsonObject): boolean {
  const logprobs = chunk['logprobs'];
  return Array.isArray(logprobs) ? logprobs.length > 0 : logprobs !== undefined && logprobs !== null;
}

/** A copy of `value` with every string equal to one of `ids`' keys replaced by its value. */
function withIds(value: unknown, ids: ReadonlyMap<string, string>): unknown {
  if (typeof value === 'string') return ids.get(value) ?? value;
  if (Array.isArray(value)) return value.map((item) => withIds(item, ids));
  if (!isObject(value)) return value;
  const out: JsonObject = {};
  for (const [field, item] of Object.entries(value)) out[field] = withIds(item, ids);
  return out;
}
