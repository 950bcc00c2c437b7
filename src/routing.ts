/**
 * Model id → provider. Exact ids from the live lists win; then an explicit `openai/` or
 * `groq/` prefix (stripped before forwarding); then the providers' well-known prefixes.
 */
import type { ModelLists } from './providers/model-lists.js';
import type { Provider } from './providers/index.js';
import { isProviderName, PROVIDER_NAMES, type ProviderName } from './providers/provider-name.js';

/** Where a request for a model goes: the provider, and the model id to ask it for. */
export interface ProviderTarget {
  provider: ProviderName;
  /** The id to send upstream (a forced prefix removed). */
  upstreamModel: string;
}

export class ModelRouter {
  constructor(
    private readonly providers: Readonly<Record<ProviderName, Provider>>,
    private readonly lists: ModelLists,
  ) {}

  /** Changes whenever a targetOf() answer may have changed (a model list was replaced). */
  get generation(): number {
    return this.lists.generation;
  }

  async targetOf(model: string): Promise<ProviderTarget | undefined> {
    return this.targetBy(await this.lists.providerOf(model), model);
  }

  /** targetOf() without waiting: null when the first model list fetch is still needed. */
  targetOfNow(model: string): ProviderTarget | undefined | null {
    const listed = this.lists.providerOfNow(model);
    return listed === null ? null : this.targetBy(listed, model);
  }

  private targetBy(listed: ProviderName | undefined, model: string): ProviderTarget | undefined {
    if (listed) return { provider: listed, upstreamModel: model };
    const slash = model.indexOf('/');
    if (slash > 0) {
      const forced = model.slice(0, slash);
      if (isProviderName(forced)) return { provider: forced, upstreamModel: model.slice(slash + 1) };
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
