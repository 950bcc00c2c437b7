/**
 * What a request's body says about caching it, worked out once with its validation: LiteLLM's
 * `cache` field (litellm-cache-field.ts), taken out of the body that is keyed and sent upstream,
 * and the Responses API requests that must pass uncached (responses-request.ts), which read as
 * a no-store.
 */
import { cacheFieldControls, withoutCacheField, type BodyCacheControls } from '../cache/litellm-cache-field.js';
import { keepsProviderState } from '../openai/responses-request.js';
import type { PreparedRequest } from './prepare.js';

const PASS_UNCACHED: BodyCacheControls = { noStore: true };

export function withBodyCacheControls(request: PreparedRequest, fields: Record<string, unknown>): PreparedRequest {
  const asked = cacheFieldControls(fields);
  const uncached = request.endpoint === 'responses' && keepsProviderState(fields);
  // The common request carries neither: no copy, nothing added.
  if (asked === undefined && !uncached && !('cache' in fields)) return request;
  const cacheControls = uncached ? { ...asked, ...PASS_UNCACHED } : asked;
  return { ...request, body: withoutCacheField(request.body), ...(cacheControls ? { cacheControls } : {}) };
}
