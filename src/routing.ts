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

  /** Changes whenever a route() answer may have changed (a model list was replaced). */
  get generation(): number {
    return this.lists.generation;
  }

  async route(model: string): Promise<Route | undefined> {
    return this.routeBy(await this.lists.providerOf(model), model);
  }

  /** route() without waiting: null when the first model list fetch is still needed. */
  routeNow(model: string): Route | undefined | null {
    const listed = this.lists.providerOfNow(model);
    return listed === null ? null : this.routeBy(listed, model);
  }

  private routeBy(listed: ProviderName | undefined, model: string): Route | undefined {
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
