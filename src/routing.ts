/**
 * Model id → provider. Exact ids from the live lists win; then an explicit `openai/` or
 * `groq/` prefix (stripped before forwarding); then the providers' well-known prefixes.
 */
import type { ModelLists } from './providers/model-lists.js';
import { PROVIDER_NAMES, type Provider, type ProviderName } from './providers/index.js';

export interface Route {
  provider: ProviderName;
  /** The id to send upstream (a forced prefix removed). */
  upstreamModel: string;
}

export class ModelRouter {
  constructor(
    private readonly providers: Readonly<Record<ProviderName, Provider>>,
    private readonly lists: ModelLists,
  ) {}

  async route(model: string): Promise<Route | undefined> {
    const listed = await this.lists.providerOf(model);
    if (listed) return { provider: listed, upstreamModel: model };
    const slash = model.indexOf('/');
    if (slash > 0) {
      const forced = model.slice(0, slash);
      if (forced === 'openai' || forced === 'groq') return { provider: forced, upstreamModel: model.slice(slash + 1) };
    }
    const lower = model.toLowerCase();
    for (const provider of PROVIDER_NAMES) {
      if (this.providers[provider].knownPrefixes.some((prefix) => lower.startsWith(prefix))) {
        return { provider, upstreamModel: model };
      }
    }
    return undefined;
  }
}
