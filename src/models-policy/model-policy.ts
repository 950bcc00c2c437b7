/**
 * The operator's model policy (MODELS_FILE): aliases, the allow list and the fallbacks. Pure
 * data with its questions; routing (routing.ts), /v1/models and the fallbacks ask it. An empty
 * policy (no MODELS_FILE) changes nothing: every question gets the answer the gateway gave
 * before it existed.
 */
import type { ModelInfo } from '../providers/model-lists.js';
import { globsToRegExp } from './glob.js';

export interface ModelPolicyData {
  aliases: ReadonlyMap<string, string>;
  /** undefined: no allow list, every model is served. */
  allow: readonly string[] | undefined;
  fallbacks: ReadonlyMap<string, readonly string[]>;
}

/** The list for every model without its own. */
export const ANY_MODEL = '*';
const FORCED_PREFIX = /^(?:openai|groq)\//;

export class ModelPolicy {
  private readonly allowed: RegExp | undefined;

  constructor(readonly data: ModelPolicyData) {
    this.allowed = data.allow === undefined ? undefined : globsToRegExp(data.allow);
  }

  static empty(): ModelPolicy {
    return new ModelPolicy({ aliases: new Map(), allow: undefined, fallbacks: new Map() });
  }

  /**
   * The id a request for `model` stands for: an alias's target, else the id itself; undefined
   * when the allow list does not serve it. An alias is always served (the operator named it);
   * an id is served when it, or the id without a forced `openai/` or `groq/` prefix, matches.
   */
  resolve(model: string): string | undefined {
    const target = this.data.aliases.get(model);
    if (target !== undefined) return target;
    return this.isAllowed(model) ? model : undefined;
  }

  isAllowed(id: string): boolean {
    if (this.allowed === undefined) return true;
    if (this.allowed.test(id)) return true;
    return FORCED_PREFIX.test(id) && this.allowed.test(id.replace(FORCED_PREFIX, ''));
  }

  /**
   * The models to try, in order, when the provider of `asked` (standing for `resolved`) cannot
   * answer: the list of the id the client named, else of what it stands for, else `*`'s. Each
   * is an id to route (an alias among them is replaced by its target); the operator chose them,
   * so the allow list does not filter them.
   */
  fallbacksOf(asked: string, resolved: string): string[] {
    const { fallbacks, aliases } = this.data;
    const list = fallbacks.get(asked) ?? fallbacks.get(resolved) ?? fallbacks.get(ANY_MODEL) ?? [];
    return list.map((id) => aliases.get(id) ?? id);
  }

  /** What /v1/models lists: the providers' models the allow list serves, then every alias. */
  listed(models: readonly ModelInfo[]): ModelInfo[] {
    const { aliases } = this.data;
    if (this.allowed === undefined && aliases.size === 0) return models as ModelInfo[];
    const out = models.filter((model) => !aliases.has(model.id) && this.isAllowed(model.id));
    for (const alias of aliases.keys()) out.push({ id: alias, object: 'model', created: 0, owned_by: 'gateway' });
    return out;
  }
}

/** The policy in force, replaced whole on reload; `generation` changes with it. */
export class ModelPolicySource {
  generation = 0;

  constructor(public current: ModelPolicy = ModelPolicy.empty()) {}

  replace(policy: ModelPolicy): void {
    this.current = policy;
    this.generation++;
  }
}
