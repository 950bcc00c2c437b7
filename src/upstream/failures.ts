/**
 * The one place where transport failures of undici are classified and mapped to the
 * gateway's HTTP errors (as fastify-reply-from's lib/errors.js does).
 */
import { errors, type GatewayError } from '../errors.js';

interface CodedError {
  code?: string;
  name?: string;
}

const RETRYABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_CLOSED',
]);

function codeOf(error: unknown): string | undefined {
  const coded = error as CodedError | null;
  return coded?.code;
}

/** A connection that failed before any answer: safe to try again. */
export function isRetryableTransportError(error: unknown): boolean {
  const code = codeOf(error);
  return code !== undefined && RETRYABLE_CODES.has(code);
}

export function isAbortError(error: unknown): boolean {
  const coded = error as CodedError | null;
  return coded?.name === 'AbortError' || codeOf(error) === 'UND_ERR_ABORTED';
}

export function isIdleTimeout(error: unknown): boolean {
  return codeOf(error) === 'UND_ERR_BODY_TIMEOUT';
}

export function transportErrorToGatewayError(provider: string, error: unknown): GatewayError {
  const code = codeOf(error);
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
    return errors.upstreamTimeout(provider, error);
  }
  return errors.upstreamUnreachable(provider, error);
}
