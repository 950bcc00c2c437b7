/**
 * What the recorders of both stream formats share: parsing the upstream's bytes as they pass,
 * and keeping the events worth replaying within a size bound. A subclass decides, event by event,
 * what is kept (keep()) and what makes the stream unfit to replay (unusable).
 */
import { SseStreamParser, type SseEvent } from './sse-parser.js';

export interface RecordingBounds {
  /** Beyond this many bytes of kept events the stream is relayed but not stored (default 32 MiB). */
  maxBodyBytes?: number;
  /** The parser's bound on one event. */
  maxEventBytes?: number;
}

export abstract class EventRecording {
  readonly #parser: SseStreamParser;
  readonly #maxBodyBytes: number;
  #parts: string[] = [];
  #bodyBytes = 0;
  /** Set once the stream must not be replayed (an error in it, unreadable data, over the bound). */
  protected unusable = false;

  constructor(bounds: RecordingBounds = {}) {
    this.#parser = new SseStreamParser(bounds.maxEventBytes === undefined ? {} : { maxBufferBytes: bounds.maxEventBytes });
    this.#maxBodyBytes = bounds.maxBodyBytes ?? 32 * 1024 * 1024;
  }

  /** Parses and records upstream bytes; returns the completed events (to relay). */
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

  /** Records one parsed event. */
  abstract add(event: SseEvent): void;

  /** Keeps an event as received for the replay; past the size bound the stream is not replayable. */
  protected keep(raw: string): void {
    if (this.unusable) return;
    this.#bodyBytes += raw.length;
    if (this.#bodyBytes > this.#maxBodyBytes) {
      this.unusable = true;
      this.#parts = [];
      return;
    }
    this.#parts.push(raw);
  }

  /** The kept events, when nothing made the stream unfit to replay (undefined otherwise). */
  protected keptEvents(): Buffer | undefined {
    if (this.unusable || this.#parser.overflowed) return undefined;
    return Buffer.from(this.#parts.join(''));
  }
}
