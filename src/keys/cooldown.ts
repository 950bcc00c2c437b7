import { parseDuration, parseSecondsOrDuration } from './duration.js';

export type ResponseHeaders = Record<string, string | string[] | undefined>;

// "Please try again in 5.289s." (Groq), "Please try again in 20ms." (OpenAI), "in 1m2.5s".
const TRY_AGAIN_IN = /try again in\s+((?:(?:\d+(?:\.\d+)?|\.\d+)(?:ms|us|µs|ns|h|m|s))+)/i;

/**
 * How long (ms) a key should cool after a 429, from the provider's own hints, most
 * precise first: retry-after-ms > retry-after (seconds or HTTP date) > x-ratelimit-reset-*
 * > the "try again in X" message in the error body. Undefined when none is usable, so the
 * caller applies its default. `now` is the wall clock (ms) used for an HTTP-date retry-after.
 */
export function cooldownFromResponse(headers: ResponseHeaders, body: string | undefined, now: number): number | undefined {
  const ms = retryAfterMs(headers) ?? retryAfter(headers, now) ?? rateLimitReset(headers) ?? (body === undefined ? undefined : tryAgainIn(body));
  return ms === undefined ? undefined : Math.max(0, Math.ceil(ms));
}

function retryAfterMs(headers: ResponseHeaders): number | undefined {
  const value = header(headers, 'retry-after-ms');
  if (value === undefined || !/^\d+(?:\.\d+)?$/.test(value)) return undefined;
  return Number(value);
}

function retryAfter(headers: ResponseHeaders, now: number): number | undefined {
  const value = header(headers, 'retry-after');
  if (value === undefined) return undefined;
  if (/^\d+(?:\.\d+)?$/.test(value)) return Number(value) * 1000;
  // RFC 9110 also allows an HTTP date; a date already past means "now".
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

// A 429 may come from the request budget or the token budget; the reset of the budget that
// ran out is the right wait. When neither says it is at 0, wait for the later of the two.
function rateLimitReset(headers: ResponseHeaders): number | undefined {
  const requestsReset = durationHeader(headers, 'x-ratelimit-reset-requests');
  const tokensReset = durationHeader(headers, 'x-ratelimit-reset-tokens');
  const requestsOut = header(headers, 'x-ratelimit-remaining-requests') === '0';
  const tokensOut = header(headers, 'x-ratelimit-remaining-tokens') === '0';
  const relevant: (number | undefined)[] = [];
  if (requestsOut) relevant.push(requestsReset);
  if (tokensOut) relevant.push(tokensReset);
  const known = relevant.filter((ms): ms is number => ms !== undefined);
  if (known.length > 0) return Math.max(...known);
  const any = [requestsReset, tokensReset].filter((ms): ms is number => ms !== undefined);
  return any.length > 0 ? Math.max(...any) : undefined;
}

function tryAgainIn(body: string): number | undefined {
  const match = TRY_AGAIN_IN.exec(body);
  return match?.[1] === undefined ? undefined : parseDuration(match[1]);
}

function durationHeader(headers: ResponseHeaders, name: string): number | undefined {
  const value = header(headers, name);
  return value === undefined ? undefined : parseSecondsOrDuration(value);
}

// undici hands header names lowercased; other callers may not, so fall back to a scan.
function header(headers: ResponseHeaders, name: string): string | undefined {
  let value = headers[name];
  if (value === undefined) {
    const found = Object.keys(headers).find((candidate) => candidate.toLowerCase() === name);
    value = found === undefined ? undefined : headers[found];
  }
  const first = Array.isArray(value) ? value[0] : value;
  const trimmed = first?.trim();
  return trimmed === undefined || trimmed === '' ? undefined : trimmed;
}
