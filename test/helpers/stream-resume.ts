/**
 * Drives a stream resume (src/pipeline/stream-resume.ts) as remote-flight.ts does: the events a
 * client received from a call that died, then a new call's events fed one by one.
 */
import type { CachedEndpoint } from '../../src/endpoints.js';
import type { StreamEvent } from '../../src/pipeline/flight.js';
import { StreamResume } from '../../src/pipeline/stream-resume.js';

/** What the client then has (sent + relayed), whether the new call covered the sent part, or why it stopped. */
export function resumeWith(endpoint: CachedEndpoint, sent: StreamEvent[], next: StreamEvent[]): { client: StreamEvent[]; diverged?: string; covered: boolean } {
  const resume = StreamResume.after(endpoint, sent);
  if (!resume) throw new Error('not resumable');
  const client = [...sent];
  for (const event of next) {
    const step = resume.next(event);
    if (step.kind === 'diverged') return { client, diverged: step.reason, covered: resume.covered };
    if (step.kind === 'relay') client.push(step.event);
  }
  return { client, covered: resume.covered };
}
