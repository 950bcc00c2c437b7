/**
 * How a request ended, as one value handed to its one record (request-log.ts's recordRequest):
 * the metrics and the log line read nothing else. On the cached routes it is made by whatever
 * wrote the answer (writeCachedAnswer for a hit, the refusal, the ClientWriter of every other
 * answer), so no module writes a shared object that another reads at the end.
 */
import type { GatewayError } from './errors.js';
import type { CacheOutcome } from './metrics.js';
import type { ProviderName } from './providers/provider-name.js';

export interface RequestOutcome {
  /** The cache outcome the request reached (undefined: none); cacheOutcomeOf turns it into the label. */
  readonly cache: CacheOutcome | undefined;
  /** An upstream call was sent for this request (a MISS is one only then). */
  readonly upstreamCalled: boolean;
  /** Who answered (or was to answer): the provider and the model id of labels and logs. */
  readonly provider: ProviderName | undefined;
  readonly model: string | undefined;
  /** The gateway's own error the request ended with. */
  readonly error: GatewayError | undefined;
  readonly status: number;
  /** Body bytes sent. */
  readonly bytes: number;
  /** performance.now() when the first byte of the answer left; undefined when none did. */
  readonly firstByteAt: number | undefined;
}
