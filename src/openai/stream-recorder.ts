/**
 * Recording an upstream stream: the events a client received, without the usage-only chunk and
 * `[DONE]` (a replay adds them back as the request asks), plus what they add up to.
 */
import { CompletionAssembler } from './completion-assembler.js';
import { isUsageOnlyChunk, type ChunkIdentity, type Completion, type CompletionEndpoint, type Usage } from './completion-types.js';
import { EventRecording, type RecordingBounds } from './event-recording.js';
import type { SseEvent } from './sse-parser.js';

export interface RecordedStream {
  endpoint: CompletionEndpoint | 'responses';
  /** The id, created, model (and system_fingerprint) every chunk repeated. */
  identity: ChunkIdentity;
  /** The events as received (`data: …\n\n`), the usage-only chunk and `[DONE]` left out. */
  events: Buffer;
  usage?: Usage;
}

/**
 * Collects an upstream stream as it passes: the events worth keeping (to replay it later), the
 * usage, the assembled answer. Feed it bytes with push()/end() (it parses them), or
 * already-parsed events with add().
 */
export class SseRecorder extends EventRecording {
  readonly #assembler: CompletionAssembler;
  readonly #endpoint: CompletionEndpoint;
  #done = false;

  constructor(endpoint: CompletionEndpoint, bounds: RecordingBounds = {}) {
    super(bounds);
    this.#endpoint = endpoint;
    this.#assembler = new CompletionAssembler(endpoint);
  }

  add(event: SseEvent): void {
    if (event.done) {
      this.#done = true;
      return;
    }
    const chunk = event.chunk;
    // An error event, or data we cannot read, makes the stream something we must not replay.
    if (!chunk || event.event === 'error' || chunk['error'] !== undefined) {
      this.unusable = true;
      return;
    }
    this.#assembler.add(chunk);
    if (!isUsageOnlyChunk(chunk)) this.keep(event.raw);
  }

  /** `[DONE]` arrived: the upstream finished the answer. */
  get done(): boolean {
    return this.#done;
  }

  get usage(): Usage | undefined {
    return this.#assembler.usage;
  }

  completion(): Completion {
    return this.#assembler.result();
  }

  /**
   * The stream as recorded, or undefined when it must not be replayed: cut off before `[DONE]`,
   * an error event or unreadable data in it, or over the size bounds.
   */
  recorded(): RecordedStream | undefined {
    const identity = this.#assembler.identity;
    const events = this.keptEvents();
    if (!this.#done || !events || !identity) return undefined;
    const recorded: RecordedStream = { endpoint: this.#endpoint, identity, events };
    const usage = this.usage;
    if (usage) recorded.usage = usage;
    return recorded;
  }
}
