/**
 * Model id → provider. The model policy first (an alias stands for its target; a model the
 * allow list does not serve routes nowhere); then exact ids from the live lists win; then an
 * explicit `openai/` or `groq/` prefix (stripped before forwarding); then the providers'
 * well-known prefixes.
 */
import { ModelPolicySource } from './models-policy/model-policy.js';
import type { ModelLists } from './providers/model-lists.js';
import type { Provider } from './providers/index.js';
import { isProviderName, PROVIDER_NAMES, type ProviderName } from './providers/provider-name.js';

/** Where a request for a model goes: the provider, and the model id to ask it for. */
export interface ProviderTarget {
  provider: ProviderName;
  /** The id the request stands for: the one asked for, or the target of the alias asked for. */
  model: string;
  /** The id to send upstream (a forced prefix removed). */
  upstreamModel: string;
}

export class ModelRouter {
  constructor(
    private readonly providers: Readonly<Record<ProviderName, Provider>>,
    private readonly lists: ModelLists,
    readonly policies: ModelPolicySource = new ModelPolicySource(),
  ) {}

  /** Changes whenever a targetOf() answer may have changed (a model list or the policy was replaced). */
  get generation(): number {
    // Both only grow: their sum changes whenever either does.
    return this.lists.generation + this.policies.generation;
  }

  /** Where a client's request for `model` goes, through the model policy. */
  async targetOf(model: string): Promise<ProviderTarget | undefined> {
    const id = this.policies.current.resolve(model);
    return id === undefined ? undefined : this.routeOf(id);
  }

  /** targetOf() without waiting: null when the first model list fetch is still needed. */
  targetOfNow(model: string): ProviderTarget | undefined | null {
    const id = this.policies.current.resolve(model);
    return id === undefined ? undefined : this.routeOfNow(id);
  }

  /** Where a model id goes, the policy left aside (a fallback the operator named). */
  async routeOf(id: string): Promise<ProviderTarget | undefined> {
    return this.targetBy(await this.lists.providerOf(id), id);
  }

  routeOfNow(id: string): ProviderTarget | undefined | null {
    const listed = this.lists.providerOfNow(id);
    return listed === null ? null : this.targetBy(listed, id);
  }

  private targetBy(listed: ProviderName | undefined, model: string): ProviderTarget | undefined {
    if (listed) return { provider: listed, model, upstreamModel: model };
    const slash = model.indexOf('/');
    if (slash > 0) {
      const forced = model.slice(0, slash);
      if (isProviderName(forced)) return { provider: forced, model, upstreamModel: model.slice(slash + 1) };
    }
    const lower = model.toLowerCase();
    for (const provider of PROVIDER_NAMES) {
      if (this.providers[provider].knownPrefixes.some((prefix) => lower.startsWith(prefix))) {
        return { provider, model, upstreamModel: model };
      }
    }
    return undefined;
  }
}
