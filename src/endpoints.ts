/**
 * The kinds of request the gateway tells apart (the `endpoint` label of its metrics and the
 * word used for them throughout), and the paths each is reached on.
 */
import type { CompletionEndpoint } from './openai/completion-types.js';

export const ENDPOINTS = ['chat.completions', 'completions', 'embeddings', 'responses', 'models', 'passthrough'] as const;
export type Endpoint = (typeof ENDPOINTS)[number];

/** The endpoints whose answers are cached. */
export type CachedEndpoint = CompletionEndpoint | 'embeddings' | 'responses';
export const CACHED_ENDPOINTS: readonly CachedEndpoint[] = ['chat.completions', 'completions', 'embeddings', 'responses'];

/** Where each cached endpoint lives below an API base path (the provider's, or one of API_BASE_PATHS). */
export const CACHED_ENDPOINT_PATHS: Readonly<Record<CachedEndpoint, string>> = {
  'chat.completions': '/chat/completions',
  completions: '/completions',
  embeddings: '/embeddings',
  responses: '/responses',
};

/** The gateway answers under OpenAI's layout (/v1) and Groq's (/openai/v1). */
export const API_BASE_PATHS = ['/v1', '/openai/v1'] as const;

/**
 * Every path a cached endpoint answers on: the one table both Fastify's routes and the hit fast
 * path are built from.
 */
export const CACHED_PATHS: ReadonlyArray<{ endpoint: CachedEndpoint; path: string }> = API_BASE_PATHS.flatMap((base) =>
  CACHED_ENDPOINTS.map((endpoint) => ({ endpoint, path: base + CACHED_ENDPOINT_PATHS[endpoint] })),
);

const BASE_PREFIXES = API_BASE_PATHS.map((base) => `${base}/`);

/** The endpoint of a request path (without its query), known before auth so rejected requests are counted too. */
export function endpointOf(path: string): Endpoint | undefined {
  for (const prefix of BASE_PREFIXES) {
    if (!path.startsWith(prefix)) continue;
    const rest = path.slice(prefix.length - 1);
    for (const endpoint of CACHED_ENDPOINTS) if (rest === CACHED_ENDPOINT_PATHS[endpoint]) return endpoint;
    if (rest === '/models' || rest.startsWith('/models/')) return 'models';
    return 'passthrough';
  }
  return undefined;
}
