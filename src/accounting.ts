/**
 * Tokens and money per answer: what was paid upstream (cache=miss) and what a hit or a
 * coalesced answer saved (cache=hit). The model label is bounded to known ids.
 */
import type { Logger } from 'pino';
import type { GatewayMetrics } from './metrics.js';
import type { Prices, TokenUsage } from './pricing/prices.js';
import { PROVIDER_NAMES, type ProviderName } from './providers/provider-name.js';

/** The label for every model id the gateway does not know: clients cannot grow the label set. */
const OTHER_MODEL = 'other';
/** Unpriced models named in the log once each; past this many, no more lines (a bounded set). */
const MAX_UNPRICED_LOGGED = 1000;

/** Told of every paid upstream call: who it is charged to, what it cost (as gateway_cost_usd_total counts it), its usage. */
export type PaidCallListener = (payer: string | undefined, costUsd: number, usage: TokenUsage) => void;

export class Accounting {
  private readonly unpricedLogged = new Set<string>();
  /** The budgets' counters (limits/limits.ts): charged with exactly the cost added to the metric. */
  onPaidCall: PaidCallListener | undefined;

  constructor(
    private readonly metrics: GatewayMetrics,
    private readonly prices: Prices,
    private readonly isListed: (model: string) => boolean,
    private readonly log: Logger,
  ) {
    // Every priced model's series exist from start-up at 0, so increase() over the first
    // request is not lost and "spent/saved" reads 0, not "no data", before any traffic.
    for (const provider of PROVIDER_NAMES) {
      for (const model of prices.models(provider)) {
        for (const type of ['prompt', 'completion']) {
          for (const cache of ['hit', 'miss']) metrics.tokens.inc({ provider, model, type, cache }, 0);
        }
        metrics.cost.inc({ provider, model }, 0);
        metrics.costSaved.inc({ provider, model }, 0);
      }
    }
  }

  /**
   * A label value no client can grow: an id of the price table or of a provider's live list,
   * else "other". A dated snapshot nobody lists is labelled with the priced id it bills as,
   * so `gpt-4o-0001`, `gpt-4o-0002`, … cannot each add a series.
   */
  modelLabel(provider: ProviderName | undefined, model: string | undefined): string {
    if (model === undefined || model === '') return OTHER_MODEL;
    for (const id of this.candidates(provider, model)) {
      if (provider !== undefined && this.prices.pricedId(provider, id) === id) return id;
      if (this.isListed(id)) return id;
      if (provider !== undefined) {
        const priced = this.prices.pricedId(provider, id);
        if (priced !== undefined) return priced;
      }
    }
    return OTHER_MODEL;
  }

  /** `payer`: on a miss, the user the upstream call is charged to. */
  record(provider: ProviderName, model: string, usage: TokenUsage | undefined, cache: 'hit' | 'miss', payer?: string): void {
    if (!usage) return;
    const label = this.modelLabel(provider, model);
    const prompt = count(usage.prompt_tokens);
    const completion = count(usage.completion_tokens);
    if (prompt > 0) this.metrics.tokens.inc({ provider, model: label, type: 'prompt', cache }, prompt);
    if (completion > 0) this.metrics.tokens.inc({ provider, model: label, type: 'completion', cache }, completion);
    const cost = this.costOf(provider, model, usage);
    // Unpriced calls too: their tokens count against the tokens per minute.
    if (cache === 'miss') this.onPaidCall?.(payer, cost ?? 0, usage);
    if (cost === undefined) {
      this.sayUnpricedOnce(provider, label);
      return;
    }
    if (cost === 0) return;
    if (cache === 'miss') this.metrics.cost.inc({ provider, model: label }, cost);
    else this.metrics.costSaved.inc({ provider, model: label }, cost);
  }

  private costOf(provider: ProviderName, model: string, usage: TokenUsage): number | undefined {
    for (const id of this.candidates(provider, model)) {
      const cost = this.prices.cost(provider, id, usage);
      if (cost !== undefined) return cost;
    }
    return undefined;
  }

  /**
   * The id as sent, then without a forced `openai/` or `groq/` prefix (the router strips it
   * before forwarding, so `openai/gpt-4o` is billed as gpt-4o). Exact ids come first: Groq's
   * own ids (`groq/compound`) start with a provider name too.
   */
  private candidates(provider: ProviderName | undefined, model: string): string[] {
    const prefix = provider === undefined ? undefined : `${provider}/`;
    return prefix !== undefined && model.startsWith(prefix) && model.length > prefix.length ? [model, model.slice(prefix.length)] : [model];
  }

  private sayUnpricedOnce(provider: ProviderName, label: string): void {
    const id = `${provider}/${label}`;
    if (this.unpricedLogged.has(id) || this.unpricedLogged.size >= MAX_UNPRICED_LOGGED) return;
    this.unpricedLogged.add(id);
    this.log.warn({ provider, model: label }, 'no price for this model: its tokens are counted, its cost is not (add it to PRICES_FILE to count it)');
  }
}

function count(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) && value > 0 ? value : 0;
}
