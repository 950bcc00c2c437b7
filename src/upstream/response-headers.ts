/**
 * Which upstream response headers a client gets. Rate-limit and retry hints matter to SDKs;
 * hop-by-hop, length and encoding headers must not pass, because the gateway re-frames the
 * body (and may have decoded or re-chunked it), so passing them would corrupt what it sends.
 */
import type { IncomingHttpHeaders } from 'node:http';

const PASSED_PREFIXES = ['x-ratelimit-', 'openai-'];
const PASSED_EXACT = new Set(['retry-after', 'retry-after-ms', 'x-should-retry', 'x-groq-region']);

export type ForwardedHeaders = Record<string, string>;

export function forwardedResponseHeaders(headers: IncomingHttpHeaders): ForwardedHeaders {
  const out: ForwardedHeaders = {};
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined) continue;
    if (name === 'x-request-id') {
      out['x-upstream-request-id'] = Array.isArray(value) ? value.join(', ') : value;
    } else if (PASSED_EXACT.has(name) || PASSED_PREFIXES.some((prefix) => name.startsWith(prefix))) {
      out[name] = Array.isArray(value) ? value.join(', ') : value;
    }
  }
  return out;
}
