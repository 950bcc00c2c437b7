/**
 * The body a client gets when a provider answers a request with an error. The provider's own
 * body, when it is in OpenAI's shape (`{"error":{"message":…}}`), says what is wrong with the
 * request (a bad parameter, a context too long) and is passed on unchanged. Anything else (a
 * load balancer's HTML page, an empty 500, `{"detail":"overloaded"}`) would reach the SDKs as an
 * error with no message, labelled JSON: it is replaced by the gateway's own error, same status.
 * Key refusals (401/403/429) never get here: provider-refusal.ts answers them.
 */
import { brotliDecompressSync, gunzipSync, inflateSync } from 'node:zlib';
import { GatewayError } from '../errors.js';

/** Larger error bodies are not the provider's JSON error. */
const ERROR_BODY_LIMIT = 64 * 1024;

export function isOpenAIErrorBody(body: Buffer): boolean {
  if (body.length === 0 || body.length > ERROR_BODY_LIMIT) return false;
  try {
    const parsed = JSON.parse(body.toString('utf8')) as { error?: { message?: unknown } } | null;
    return typeof parsed?.error === 'object' && parsed.error !== null && typeof parsed.error.message === 'string';
  } catch {
    return false;
  }
}

export function unreadableUpstreamError(provider: string, status: number): GatewayError {
  return new GatewayError(
    status,
    status >= 500 ? 'server_error' : 'invalid_request_error',
    'upstream_error',
    `Provider ${provider} answered ${status} without an error message in OpenAI's format.`,
  );
}

/** The provider's error body when it is in OpenAI's shape, else the gateway's own. */
export function clientErrorBody(provider: string, status: number, body: Buffer): Buffer {
  if (isOpenAIErrorBody(body)) return body;
  return Buffer.from(JSON.stringify(unreadableUpstreamError(provider, status).toBody()));
}

/**
 * A provider's error body as bytes to inspect: the passthrough forwards the client's
 * Accept-Encoding, so the provider may have compressed it. undefined when it cannot be read.
 */
export function decodedErrorBody(body: Buffer, contentEncoding: string | undefined): Buffer | undefined {
  const encoding = contentEncoding?.trim().toLowerCase() ?? '';
  const options = { maxOutputLength: ERROR_BODY_LIMIT + 1 };
  try {
    if (encoding === '' || encoding === 'identity') return body;
    if (encoding === 'gzip' || encoding === 'x-gzip') return gunzipSync(body, options);
    if (encoding === 'deflate') return inflateSync(body, options);
    if (encoding === 'br') return brotliDecompressSync(body, options);
  } catch {
    return undefined;
  }
  return undefined;
}
