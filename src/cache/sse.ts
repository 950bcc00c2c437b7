/**
 * Server-sent events of chat and legacy text completions (OpenAI and Groq flavours): parse an
 * upstream stream, assemble it into the non-streamed JSON answer, render a JSON answer as a stream,
 * and replay a stored stream. This is what makes a cache entry independent of the form that filled it.
 *
 * A barrel: each concern lives in its own file; importers keep using this one path.
 */
export type {
  ChatChoice,
  ChatCompletion,
  ChatMessage,
  Completion,
  CompletionRoute,
  JsonObject,
  TextChoice,
  TextCompletion,
  ToolCall,
} from './completion-types.js';
export { isUsageOnlyChunk, parseSse, SSE_DONE, SseStreamParser, type SseEvent } from './sse-parse.js';
export { assembleCompletion, CompletionAssembler } from './sse-assemble.js';
export { renderSse, splitText, type RenderSseOptions } from './sse-render.js';
export { asCompletion, completionJsonFromEntry, replayStoredSse, SseRecorder, sseFromEntry } from './sse-replay.js';
