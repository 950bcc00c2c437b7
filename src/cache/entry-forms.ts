/**
 * A cache entry and the two forms of an answer: an entry made from a recorded stream, and
 * either form (JSON or SSE) answered from an entry of either form.
 */
import { CompletionAssembler } from '../openai/completion-assembler.js';
import { asCompletion, type Completion } from '../openai/completion-types.js';
import { parseSse, SSE_DONE } from '../openai/sse-parser.js';
import type { StreamRecording } from '../openai/stream-recording.js';
import { renderSse, usageChunkEvent, type RenderSseOptions } from '../openai/stream-renderer.js';
import type { CacheEntry } from './entry.js';
import { responseEventsFromEntry, responseJsonFromEntry } from './responses-entry-forms.js';

/** The entry to store for a recorded stream, or undefined when the stream must not be cached. */
export function entryFromStream(recorder: StreamRecording, provider: string, storedAt = Date.now()): CacheEntry | undefined {
  const recorded = recorder.recorded();
  if (!recorded) return undefined;
  const entry: CacheEntry = {
    storedAt,
    form: 'sse',
    endpoint: recorded.endpoint,
    provider,
    model: recorded.identity.model,
    chunkIdentity: recorded.identity,
    body: recorded.events,
  };
  if (recorded.usage) entry.usage = recorded.usage;
  return entry;
}

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
  if (entry.endpoint === 'responses') return responseJsonFromEntry(entry);
  if (entry.form === 'json') return entry.body;
  const completion = completionFromStoredSse(entry);
  return completion && Buffer.from(JSON.stringify(completion));
}

/** The SSE answer for an entry of either form; undefined when the stored data is unusable. */
export function sseFromEntry(entry: CacheEntry, options: RenderSseOptions): Buffer | undefined {
  if (entry.endpoint === 'responses') return responseEventsFromEntry(entry);
  if (entry.form === 'sse') return replayStoredSse(entry, options);
  try {
    const completion = asCompletion(JSON.parse(entry.body.toString('utf8')));
    return completion && renderSse(completion, options);
  } catch {
    return undefined;
  }
}

function completionFromStoredSse(entry: CacheEntry): Completion | undefined {
  const assembler = new CompletionAssembler(entry.endpoint === 'completions' ? 'completions' : 'chat.completions');
  for (const event of parseSse(entry.body)) if (event.chunk) assembler.add(event.chunk);
  if (!assembler.identity) return undefined;
  const completion = assembler.result();
  // The usage chunk was not stored; the entry's header kept the numbers.
  if (!completion.usage && entry.usage) completion.usage = entry.usage;
  return completion;
}
