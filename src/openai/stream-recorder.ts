/**
 * Recording an upstream stream: the events a client received, without the usage-only chunk and
 * `[DONE]` (a replay adds them back as the request asks), plus what they add up to.
 */
import { CompletionAssembler } from './completion-assembler.js';
import { isUsageOnlyChunk, type ChunkIdentity, type Completion, type CompletionEndpoint, type Usage } from './completion-types.js';
import { SseStreamParser, type SseEvent } from './sse-parser.js';

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
export class SseRecorder {
  readonly #parser: SseStreamParser;
  readonly #assembler: CompletionAssembler;
  readonly #endpoint: CompletionEndpoint;
  readonly #maxBodyBytes: number;
  #parts: string[] = [];
  #bodyBytes = 0;
  #done = false;
  #unusable = false;

  constructor(endpoint: CompletionEndpoint, options: { maxBodyBytes?: number; maxEventBytes?: number } = {}) {
    this.#parser = new SseStreamParser(options.maxEventBytes === undefined ? {} : { maxBufferBytes: options.maxEventBytes });
    this.#endpoint = endpoint;
    this.#assembler = new CompletionAssembler(endpoint);
    this.#maxBodyBytes = options.maxBodyBytes ?? 32 * 1024 * 1024;
  }

  /** Parses and records upstream bytes; returns the completed events (e.g. to forward all but the usage chunk). */
  push(bytes: Uint8Array | string): SseEvent[] {
    const events = this.#parser.push(bytes);
    for (const event of events) this.add(event);
    return events;
  }

  /** The upstream body ended. */
  end(): SseEvent[] {
    const events = this.#parser.end();
    for (const event of events) this.add(event);
    return events;
  }

  add(event: SseEvent): void {
    if (event.done) {
      this.#done = true;
      return;
    }
    const chunk = event.chunk;
    // An error event, or data we cannot read, makes the stream something we must not replay.
    if (!chunk || event.event === 'error' || chunk['error'] !== undefined) {
      this.#unusable = true;
      return;
    }
    this.#assembler.add(chunk);
    if (isUsageOnlyChunk(chunk) || this.#unusable) return;
    this.#bodyBytes += event.raw.length;
    if (this.#bodyBytes > this.#maxBodyBytes) {
      this.#unusable = true;
      this.#parts = [];
      return;
    }
    this.#parts.push(event.raw);
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
    if (!this.#done || this.#unusable || this.#parser.overflowed || !identity) return undefined;
    const recorded: RecordedStream = { endpoint: this.#endpoint, identity, events: Buffer.from(this.#parts.join('')) };
    const usage = this.usage;
    if (usage) recorded.usage = usage;
    return recorded;
  }
}
