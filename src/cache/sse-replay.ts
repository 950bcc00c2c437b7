/**
 * Cache entries and streams: recording an upstream stream into an entry, replaying a stored stream,
 * and answering either form (JSON or SSE) from an entry of either form.
 */
import type { CacheEntry, Usage } from './entry.js';
import { isObject, type Completion, type CompletionRoute, type JsonObject } from './completion-types.js';
import { CompletionAssembler } from './sse-assemble.js';
import { isUsageOnlyChunk, parseSse, SSE_DONE, SseStreamParser, type SseEvent } from './sse-parse.js';
import { renderSse, usageChunkEvent, type RenderSseOptions } from './sse-render.js';

/**
 * A stored stream as a given request should receive it: the stored events as they are (never
 * parsed), a usage chunk rebuilt from the entry when the request asked for one, then `[DONE]`.
 */
export function replayStoredSse(entry: CacheEntry, options: { includeUsage: boolean }): Buffer {
  const parts = [entry.body];
  if (options.includeUsage && entry.usage && entry.chunkIdentity) {
    parts.push(Buffer.from(usageChunkEvent(entry.chunkIdentity, entry.usage)));
  }
  parts.push(Buffer.from(SSE_DONE));
  return Buffer.concat(parts);
}

/** The JSON answer for an entry of either form; undefined when the stored data is unusable. */
export function completionJsonFromEntry(entry: CacheEntry): Buffer | undefined {
  if (entry.form === 'json') return entry.body;
  const completion = completionFromStoredSse(entry);
  return completion && Buffer.from(JSON.stringify(completion));
}

/** The SSE answer for an entry of either form; undefined when the stored data is unusable. */
export function sseFromEntry(entry: CacheEntry, options: RenderSseOptions): Buffer | undefined {
  if (entry.form === 'sse') return replayStoredSse(entry, options);
  try {
    const completion = asCompletion(JSON.parse(entry.body.toString('utf8')));
    return completion && renderSse(completion, options);
  } catch {
    return undefined;
  }
}

function completionFromStoredSse(entry: CacheEntry): Completion | undefined {
  const assembler = new CompletionAssembler(entry.route === 'completions' ? 'completions' : 'chat.completions');
  for (const event of parseSse(entry.body)) if (event.chunk) assembler.add(event.chunk);
  if (!assembler.identity) return undefined;
  const completion = assembler.result();
  // The usage chunk was not stored; the entry's header kept the numbers.
  if (!completion.usage && entry.usage) completion.usage = entry.usage;
  return completion;
}

/** A parsed JSON body as a Completion, when it has the shape renderSse needs. */
export function asCompletion(value: unknown): Completion | undefined {
  if (!isObject(value) || !Array.isArray(value['choices'])) return undefined;
  if (value['object'] !== 'chat.completion' && value['object'] !== 'text_completion') return undefined;
  if (typeof value['id'] !== 'string' || typeof value['model'] !== 'string' || typeof value['created'] !== 'number') return undefined;
  if (!value['choices'].every((c) => isObject(c) && typeof c['index'] === 'number')) return undefined;
  if (value['object'] === 'chat.completion' && !value['choices'].every((c: JsonObject) => isObject(c['message']))) return undefined;
  if (value['object'] === 'text_completion' && !value['choices'].every((c: JsonObject) => typeof c['text'] === 'string')) return undefined;
  return value as unknown as Completion;
}

/**
 * Collects an upstream stream for the cache: the events to store, the usage, the assembled answer.
 * Feed it bytes with push()/end() (it parses them), or already-parsed events with add().
 */
export class SseRecorder {
  readonly #parser: SseStreamParser;
  readonly #assembler: CompletionAssembler;
  readonly #route: CompletionRoute;
  readonly #maxBodyBytes: number;
  #parts: string[] = [];
  #bodyBytes = 0;
  #done = false;
  #unusable = false;

  constructor(route: CompletionRoute, options: { maxBodyBytes?: number; maxEventBytes?: number } = {}) {
    this.#parser = new SseStreamParser(options.maxEventBytes === undefined ? {} : { maxBufferBytes: options.maxEventBytes });
    this.#route = route;
    this.#assembler = new CompletionAssembler(route);
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

  /** The entry to store, or undefined when the stream must not be cached (cut off, error, too large). */
  toEntry(provider: string, storedAt = Date.now()): CacheEntry | undefined {
    const identity = this.#assembler.identity;
    if (!this.#done || this.#unusable || this.#parser.overflowed || !identity) return undefined;
    const entry: CacheEntry = {
      storedAt,
      form: 'sse',
      route: this.#route,
      provider,
      model: identity.model,
      chunkIdentity: identity,
      body: Buffer.from(this.#parts.join('')),
    };
    const usage = this.usage;
    if (usage) entry.usage = usage;
    return entry;
  }
}
