/**
 * Recording a Responses API stream as it passes: its events exactly as received (`event: …` and
 * `data: …`; the stream has no `[DONE]`), to be replayed byte for byte, and the finished
 * response its last event carries (identity and usage for the entry's header).
 */
import type { Completion, Usage } from './completion-types.js';
import { asResponseObject, FAILED_EVENT_TYPES, FINISHED_EVENT_TYPES, usageOfResponse, type ResponseObject } from './responses-types.js';
import { EventRecording } from './event-recording.js';
import type { SseEvent } from './sse-parser.js';
import type { RecordedStream } from './stream-recorder.js';

export class ResponsesStreamRecorder extends EventRecording {
  /** The response of the finishing event, once it came. */
  #finished: ResponseObject | undefined;
  #ended = false;

  add(event: SseEvent): void {
    // Not part of this format; a provider that appends it anyway has nothing more to say.
    if (event.done) return;
    const chunk = event.chunk;
    const type = chunk?.['type'];
    if (!chunk || typeof type !== 'string' || event.event === 'error' || FAILED_EVENT_TYPES.has(type)) {
      // An error, a failed response or data we cannot read: never replayed. A failed response
      // still ends the stream as the provider meant it (the client has it already).
      this.unusable = true;
      if (type === 'response.failed') this.#ended = true;
      return;
    }
    if (FINISHED_EVENT_TYPES.has(type)) {
      this.#ended = true;
      const response = asResponseObject(chunk['response']);
      if (response) this.#finished = response;
      else this.unusable = true;
    }
    this.keep(event.raw);
  }

  /** The stream reached its last event (finished, incomplete or failed). */
  get done(): boolean {
    return this.#ended;
  }

  get usage(): Usage | undefined {
    return this.#finished && usageOfResponse(this.#finished.usage);
  }

  /** A response is no chat completion: the flight's answer for other forms comes from the entry. */
  completion(): Completion | undefined {
    return undefined;
  }

  /** The stream as recorded, or undefined when it must not be replayed (cut off, failed, over the bounds). */
  recorded(): RecordedStream | undefined {
    const finished = this.#finished;
    const events = this.keptEvents();
    if (!this.#ended || !events || !finished) return undefined;
    const identity = { id: finished.id, object: 'response', created: finished.created_at, model: finished.model };
    const recorded: RecordedStream = { endpoint: 'responses', identity, events };
    const usage = this.usage;
    if (usage) recorded.usage = usage;
    return recorded;
  }
}
