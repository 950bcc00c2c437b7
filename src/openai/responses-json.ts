/** What a flight reads of a Responses API JSON answer: its tokens, and whether it may be stored. */
import type { Usage } from './completion-types.js';
import { isFinishedResponse, usageOfResponse } from './responses-types.js';

export function responseJsonFacts(parsed: unknown): { usage: Usage | undefined; cacheable: boolean } {
  const usage = typeof parsed === 'object' && parsed !== null ? usageOfResponse((parsed as { usage?: unknown }).usage) : undefined;
  // A background response comes back queued, a failed one with its error: neither is an answer to keep.
  return { usage, cacheable: isFinishedResponse(parsed) };
}
