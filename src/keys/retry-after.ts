/**
 * Headers for the gateway's own 429 when every key of a provider is cooling: clients that
 * read seconds (most SDKs) and those that read milliseconds (the openai SDK prefers
 * retry-after-ms) both wait the same real time. Seconds are rounded up so a client never
 * comes back before a key is free.
 */
export function retryAfterHeaders(retryAfterMs: number): { 'retry-after': string; 'retry-after-ms': string } {
  const ms = Math.max(0, Math.ceil(retryAfterMs));
  return { 'retry-after': String(Math.ceil(ms / 1000)), 'retry-after-ms': String(ms) };
}
