/**
 * Tokens and money per answer: what was paid upstream (cache=miss) and what a hit or a
 * coalesced answer saved (cache=hit). The model label is bounded to known ids.
 */
import type { Logger } from 'pino';
import type { GatewayMetrics } from './metrics.js';
import type { Prices, TokenUsage } from './pricing/prices.js';
import type { ProviderName } from './providers/index.js';

export class Accounting {
  private readonly unpricedLogged = new Set<string>();

  constructor(
    private readonly metrics: GatewayMetrics,
    private readonly prices: Prices,
    private readonly isListed: (model: string) => boolean,
    private readonly log: Logger,
  ) {}

  /** A label value no client can grow: the id when the gateway knows it, else "other". */
  modelLabel(provider: ProviderName | undefined, model: string | undefined): string {
    if (model === undefined || model === '') return 'other';
    if (provider !== undefined && this.prices.pricedId(provider, model) !== undefined) return model;
    return this.isListed(model) ? model : 'other';
  }

  record(provider: ProviderName, model: string, usage: TokenUsage | undefined, cache: 'hit' | 'miss'): void {
    if (!usage) return;
    const label = this.modelLabel(provider, model);
    const prompt = usage.prompt_tokens ?? 0;
    const completion = usage.completion_tokens ?? 0;
    if (prompt > 0) this.metrics.tokens.inc({ provider, model: label, type: 'prompt', cache }, prompt);
    if (completion > 0) this.metrics.tokens.inc({ provider, model: label, type: 'completion', cache }, completion);
    const cost = this.prices.cost(provider, model, usage);
    if (cost === undefined) {
      const id = `${provider}/${label}`;
      if (!this.unpricedLogged.has(id) && this.unpricedLogged.size < 1000) {
        this.unpricedLogged.add(id);
        this.log.warn({ provider, model: label }, 'no price for this model: its tokens are counted, its cost is not');
      }
      return;
    }
    if (cache === 'miss') this.metrics.cost.inc({ provider, model: label }, cost);
    else this.metrics.costSaved.inc({ provider, model: label }, cost);
  }
}
