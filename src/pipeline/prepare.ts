/**
 * Validates a request body of a cached endpoint and decides everything about it that does not
 * need I/O beyond routing: provider, the body to send upstream, whether it streams and whether
 * the client asked for usage in its stream.
 */
import type { CachedEndpoint } from '../endpoints.js';
import { errors } from '../errors.js';
import type { ProviderName } from '../providers/provider-name.js';
import type { ModelRouter, ProviderTarget } from '../routing.js';
import type { BodyCacheControls } from '../cache/litellm-cache-field.js';
import { withBodyCacheControls } from './body-cache-controls.js';

/** The field each endpoint cannot do without, besides `model`. */
const REQUIRED_FIELD: Readonly<Record<CachedEndpoint, string>> = {
  'chat.completions': 'messages',
  completions: 'prompt',
  embeddings: 'input',
  responses: 'input',
};

/**
 * Deepest nesting a body may have: far beyond any real request (tool schemas included), far
 * below what overflows the recursive walks that follow (cache key, JSON.stringify), which
 * would otherwise turn a hostile body into a 500.
 */
const MAX_NESTING_DEPTH = 256;

/**
 * Recursive but stopped at `limit`, so it cannot overflow the stack itself; no allocation per
 * node (it runs on every request, hits included).
 */
function nestedDeeperThan(value: object, limit: number): boolean {
  if (limit === 0) return true;
  if (Array.isArray(value)) {
    for (const child of value) if (typeof child === 'object' && child !== null && nestedDeeperThan(child as object, limit - 1)) return true;
    return false;
  }
  for (const key in value) {
    const child = (value as Record<string, unknown>)[key];
    if (typeof child === 'object' && child !== null && nestedDeeperThan(child, limit - 1)) return true;
  }
  return false;
}

/**
 * Throws the 400 for a JSON body nested deeper than any real request: the one depth rule of
 * every endpoint that walks or re-serialises a client's JSON (the passthrough's model rewrite too).
 */
export function refuseDeepNesting(body: object): void {
  if (nestedDeeperThan(body, MAX_NESTING_DEPTH)) {
    throw errors.invalidRequest(`The request body is nested more than ${MAX_NESTING_DEPTH} levels deep.`);
  }
}

export interface PreparedRequest {
  endpoint: CachedEndpoint;
  provider: ProviderName;
  /** The model the request stands for (for logs and labels): the one named, or its alias's target. */
  model: string;
  /** The model the client named (an alias stays an alias): what a fallback's answer says it replaced. */
  asked: string;
  /** The model id sent upstream: the one that answers (X-Gateway-Model). */
  upstreamModel: string;
  /** The body as it goes upstream: the forced prefix stripped from `model`. */
  body: Record<string, unknown>;
  stream: boolean;
  /** The client asked for the usage chunk at the end of its stream. */
  includeUsage: boolean;
  /** What the body itself asks of the cache (body-cache-controls.ts); absent for most requests. */
  cacheControls?: BodyCacheControls;
}

export async function prepareRequest(endpoint: CachedEndpoint, body: unknown, router: ModelRouter): Promise<PreparedRequest> {
  const fields = validatedFields(endpoint, body);
  return withBodyCacheControls(prepared(endpoint, fields, await router.targetOf(fields.model as string)), fields);
}

/**
 * prepareRequest without waiting, for the cached routes' pipeline: null when routing needs the first
 * model list fetch (the caller then takes the ordinary path). Throws the same errors.
 */
export function prepareRequestNow(endpoint: CachedEndpoint, body: unknown, router: ModelRouter): PreparedRequest | null {
  const fields = validatedFields(endpoint, body);
  const target = router.targetOfNow(fields.model as string);
  return target === null ? null : withBodyCacheControls(prepared(endpoint, fields, target), fields);
}

function validatedFields(endpoint: CachedEndpoint, body: unknown): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw errors.invalidRequest('The request body must be a JSON object.');
  }
  refuseDeepNesting(body);
  const fields = body as Record<string, unknown>;
  const model = fields.model;
  if (typeof model !== 'string' || model === '') {
    throw errors.invalidRequest('You must provide a model parameter.', 'model');
  }
  const required = REQUIRED_FIELD[endpoint];
  const value = fields[required];
  if (value === undefined || value === null) {
    throw errors.invalidRequest(`Missing required parameter: '${required}'.`, required);
  }
  if (endpoint === 'chat.completions' && !Array.isArray(value)) {
    throw errors.invalidRequest("Invalid type for 'messages': expected an array.", required);
  }
  if (fields.stream !== undefined && fields.stream !== null && typeof fields.stream !== 'boolean') {
    throw errors.invalidRequest("Invalid type for 'stream': expected a boolean.", 'stream');
  }
  return fields;
}

function prepared(endpoint: CachedEndpoint, fields: Record<string, unknown>, target: ProviderTarget | undefined): PreparedRequest {
  const asked = fields.model as string;
  if (!target) throw errors.modelNotFound(asked);
  const stream = endpoint !== 'embeddings' && fields.stream === true;
  const streamOptions = fields.stream_options as { include_usage?: unknown } | undefined;
  const upstreamBody = target.upstreamModel === asked ? fields : { ...fields, model: target.upstreamModel };
  return {
    endpoint,
    provider: target.provider,
    model: target.model,
    asked,
    upstreamModel: target.upstreamModel,
    body: upstreamBody,
    stream,
    includeUsage: stream && typeof streamOptions === 'object' && streamOptions !== null && streamOptions.include_usage === true,
  };
}
