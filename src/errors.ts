/**
 * Every error the gateway itself answers with, in OpenAI's shape. Handlers throw these; the
 * one error handler in server.ts renders them, so no handler builds error JSON by hand.
 */
import { retryAfterHeaders } from './keys/retry-after.js';

export interface OpenAIErrorBody {
  error: { message: string; type: string; code: string | null; param?: string | null };
}

export class GatewayError extends Error {
  override readonly name = 'GatewayError';
  constructor(
    readonly statusCode: number,
    readonly type: string,
    readonly code: string,
    message: string,
    readonly headers: Readonly<Record<string, string>> = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  toBody(): OpenAIErrorBody {
    return { error: { message: this.message, type: this.type, code: this.code } };
  }
}

// Answers that a retry cannot fix: tell the SDKs (which honour x-should-retry) not to retry.
const NO_RETRY = { 'x-should-retry': 'false' } as const;

export const errors = {
  invalidJson: (cause?: unknown) => new GatewayError(400, 'invalid_request_error', 'invalid_json', 'The request body is not valid JSON.', NO_RETRY, { cause }),
  invalidRequest: (message: string, param?: string) =>
    new GatewayError(400, 'invalid_request_error', param ? `missing_${param}` : 'invalid_request', message, NO_RETRY),
  headerTooLong: (name: string, limit: number) =>
    new GatewayError(400, 'invalid_request_error', 'header_too_long', `The ${name} header is longer than ${limit} bytes.`, NO_RETRY),
  forbiddenJsonKey: (cause?: unknown) =>
    new GatewayError(
      400,
      'invalid_request_error',
      'forbidden_json_key',
      'The request body has a "__proto__" or "constructor.prototype" key, which is not allowed.',
      NO_RETRY,
      { cause },
    ),
  unsupportedContentEncoding: (encoding: string) =>
    new GatewayError(
      415,
      'invalid_request_error',
      'unsupported_media_type',
      `Unsupported Content-Encoding "${encoding}": send the body uncompressed.`,
      NO_RETRY,
    ),
  unsupportedMediaType: (contentType: string) =>
    new GatewayError(415, 'invalid_request_error', 'unsupported_media_type', `Unsupported Content-Type "${contentType}": send application/json.`, NO_RETRY),
  bodyTooLarge: (limit: number) =>
    new GatewayError(413, 'invalid_request_error', 'request_too_large', `The request body exceeds the limit of ${limit} bytes.`, NO_RETRY),
  invalidApiKey: () =>
    new GatewayError(401, 'invalid_request_error', 'invalid_api_key', 'Incorrect or missing API key: send "Authorization: Bearer <gateway key>".', NO_RETRY),
  modelNotFound: (model: string) =>
    new GatewayError(
      404,
      'invalid_request_error',
      'model_not_found',
      `The model "${model}" does not exist or no provider serving it is configured. Prefix it with "openai/" or "groq/" to choose the provider.`,
      NO_RETRY,
    ),
  routeNotFound: (method: string, url: string) =>
    new GatewayError(404, 'invalid_request_error', 'not_found', `Unknown route ${method} ${url.split('?')[0]}.`, NO_RETRY),
  noProviderKeys: (provider: string) =>
    new GatewayError(503, 'server_error', 'no_provider_keys', `No API key is configured for provider ${provider}.`, NO_RETRY),
  allKeysRejected: (provider: string) =>
    new GatewayError(
      503,
      'server_error',
      'provider_keys_rejected',
      `Every API key of provider ${provider} was rejected (401/403) by the provider; reload valid keys.`,
      NO_RETRY,
    ),
  // Retryable (no x-should-retry: false): the key is disabled now, a retry gets another one.
  providerKeyRejected: (provider: string) =>
    new GatewayError(
      503,
      'server_error',
      'provider_key_rejected',
      `Provider ${provider} rejected the gateway's API key (401/403); it is disabled, retry to use another key.`,
    ),
  allKeysCooling: (provider: string, retryAfterMs: number) =>
    new GatewayError(
      429,
      'rate_limit_error',
      'rate_limit_exceeded',
      `Every API key of provider ${provider} is rate limited; retry in ${Math.ceil(retryAfterMs / 1000)} s.`,
      retryAfterHeaders(retryAfterMs),
    ),
  upstreamUnreachable: (provider: string, cause?: unknown) =>
    new GatewayError(502, 'server_error', 'upstream_unreachable', `Could not reach provider ${provider}.`, {}, { cause }),
  upstreamTimeout: (provider: string, cause?: unknown) =>
    new GatewayError(504, 'server_error', 'upstream_timeout', `Provider ${provider} did not answer in time.`, {}, { cause }),
  upstreamBadResponse: (provider: string, cause?: unknown) =>
    new GatewayError(502, 'server_error', 'upstream_bad_response', `Provider ${provider} sent a malformed or incomplete response.`, {}, { cause }),
  metricsUnauthorized: () =>
    new GatewayError(401, 'invalid_request_error', 'invalid_api_key', 'The metrics endpoint requires "Authorization: Bearer <METRICS_TOKEN>".', NO_RETRY),
  shuttingDown: () =>
    new GatewayError(503, 'server_error', 'gateway_shutting_down', 'The gateway is shutting down; retry the request.', retryAfterHeaders(1_000)),
  internal: (cause?: unknown) => new GatewayError(500, 'server_error', 'internal_error', 'The gateway failed to handle the request.', {}, { cause }),
};

interface FastifyLikeError {
  code?: string;
  statusCode?: number;
  message?: string;
}

/** What secure-json-parse (Fastify's JSON parser, json-body.ts) throws for `__proto__` or `constructor.prototype`. */
const FORBIDDEN_KEY_MESSAGE = 'Object contains forbidden prototype property';

/**
 * Maps anything thrown (ours, Fastify's, a library's) to a GatewayError; never leaks internals.
 * `contentType`, `contentEncoding`: the request's headers, to say what is wrong with its body.
 */
export function toGatewayError(error: unknown, bodyLimit: number, contentType?: string, contentEncoding?: string): GatewayError {
  const e = (error ?? {}) as FastifyLikeError;
  // Valid JSON, refused for what it holds: say so, not "invalid JSON".
  if (error instanceof SyntaxError && error.message === FORBIDDEN_KEY_MESSAGE) return errors.forbiddenJsonKey(error);
  const unreadable =
    error instanceof SyntaxError || e.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || (error instanceof GatewayError && error.code === 'invalid_json');
  // A compressed body is not broken JSON: the gateway does not decode Content-Encoding (a body
  // merely labelled so but readable as it is, is read).
  if (unreadable && contentEncoding !== undefined && contentEncoding !== '' && contentEncoding.toLowerCase() !== 'identity') {
    return errors.unsupportedContentEncoding(contentEncoding.slice(0, 100));
  }
  if (error instanceof GatewayError) return error;
  switch (e.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return errors.bodyTooLarge(bodyLimit);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      // Name what the client sent (bounded: it is the client's text), not "unknown".
      return errors.unsupportedMediaType(contentType === undefined || contentType === '' ? 'none' : contentType.slice(0, 100));
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return errors.invalidRequest('The request body is empty: send a JSON object.');
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return errors.invalidRequest('The Content-Length header does not match the body.');
    default:
      break;
  }
  if (unreadable) return errors.invalidJson(error);
  const status = e.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    return new GatewayError(status, 'invalid_request_error', 'invalid_request', e.message ?? 'Bad request.', NO_RETRY, { cause: error });
  }
  return errors.internal(error);
}
