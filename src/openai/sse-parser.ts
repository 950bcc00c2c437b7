/**
 * Parsing server-sent events of completions as an upstream sends them: bytes in any split, events
 * out, each with its JSON chunk (when it is one) and its re-serialised form to forward or store.
 */
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { isObject, type JsonObject } from './json-fields.js';

export const SSE_DONE = 'data: [DONE]\n\n';

/** One event of an upstream stream. */
export interface SseEvent {
  /** The `event:` field, when the upstream named one (OpenAI uses it for mid-stream errors). */
  event?: string;
  data: string;
  /** The parsed JSON object; undefined for `[DONE]` and for data that is not a JSON object. */
  chunk: JsonObject | undefined;
  done: boolean;
  /** The event re-serialised (`data: …\n\n`), to forward or store. */
  raw: string;
}

/**
 * Incremental parser for bytes as undici delivers them: multi-byte characters and events may be
 * split anywhere. Each `push` returns the events it completed.
 */
export class SseStreamParser {
  readonly #decoder = new TextDecoder('utf-8');
  readonly #parser;
  #completed: SseEvent[] = [];
  #overflowed = false;

  constructor(options: { maxBufferBytes?: number } = {}) {
    this.#parser = createParser({
      onEvent: (message) => this.#completed.push(toSseEvent(message)),
      onError: (error) => {
        if (error.type === 'max-buffer-size-exceeded') this.#overflowed = true;
      },
      // Default 16 MiB: a runaway upstream line must not grow memory without bound.
      maxBufferSize: options.maxBufferBytes ?? 16 * 1024 * 1024,
    });
  }

  /**
   * True once an event outgrew the buffer bound: parsing stopped, so the stream is incomplete for
   * assembling and caching (the bytes themselves may still be forwarded).
   */
  get overflowed(): boolean {
    return this.#overflowed;
  }

  push(bytes: Uint8Array | string): SseEvent[] {
    this.#feed(typeof bytes === 'string' ? bytes : this.#decoder.decode(bytes, { stream: true }));
    return this.#take();
  }

  /**
   * The stream ended: flushes a last event that lacked its blank line (the spec would drop it; a
   * lenient reading loses nothing, since a truncated chunk fails to parse and is never cached).
   */
  end(): SseEvent[] {
    this.#feed(`${this.#decoder.decode()}\n\n`);
    return this.#take();
  }

  #feed(text: string): void {
    if (this.#overflowed) return; // the parser refuses input once it overflowed
    this.#parser.feed(text);
  }

  #take(): SseEvent[] {
    const events = this.#completed;
    this.#completed = [];
    return events;
  }
}

/** Parses a complete SSE text or buffer (a stored body, a test fixture). */
export function parseSse(body: Uint8Array | string): SseEvent[] {
  const parser = new SseStreamParser();
  return [...parser.push(body), ...parser.end()];
}

function toSseEvent(message: EventSourceMessage): SseEvent {
  const data = message.data;
  const done = data.trim() === '[DONE]';
  let chunk: JsonObject | undefined;
  if (!done) {
    try {
      const parsed: unknown = JSON.parse(data);
      if (isObject(parsed)) chunk = parsed;
    } catch {
      chunk = undefined;
    }
  }
  const dataLines = data.includes('\n') ? data.split('\n').join('\ndata: ') : data;
  const raw = `${message.event ? `event: ${message.event}\n` : ''}data: ${dataLines}\n\n`;
  return message.event ? { event: message.event, data, chunk, done, raw } : { data, chunk, done, raw };
}
