/**
 * What a flight needs of the recorder of an upstream stream, whatever its format: chat and text
 * completions (`data:` chunks ending in `[DONE]`) or the Responses API (named events ending in
 * `response.completed`).
 */
import type { CachedEndpoint } from '../endpoints.js';
import type { Completion, Usage } from './completion-types.js';
import { ResponsesStreamRecorder } from './responses-stream-recorder.js';
import type { SseEvent } from './sse-parser.js';
import { SseRecorder, type RecordedStream } from './stream-recorder.js';

export interface StreamRecording {
  /** Parses and records upstream bytes; returns the completed events, to relay. */
  push(bytes: Uint8Array | string): SseEvent[];
  end(): SseEvent[];
  /** The upstream finished its stream (`[DONE]`, or the Responses API's last event). */
  readonly done: boolean;
  readonly usage: Usage | undefined;
  /** The assembled chat or text completion; undefined for a format that has none. */
  completion(): Completion | undefined;
  /** The stream to store, or undefined when it must not be replayed. */
  recorded(): RecordedStream | undefined;
}

export function streamRecorderFor(endpoint: CachedEndpoint): StreamRecording {
  if (endpoint === 'responses') return new ResponsesStreamRecorder();
  return new SseRecorder(endpoint === 'completions' ? 'completions' : 'chat.completions');
}
