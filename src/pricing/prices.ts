/**
 * Prices per provider and model, and the cost of one answer's usage. Dated snapshot ids
 * (gpt-4o-2024-08-06) are priced as their base id, as the providers bill them.
 */
import { readFileSync } from 'node:fs';
import type { ProviderName } from '../providers/index.js';
import { BUILTIN_PRICES } from './builtin-prices.js';

export interface ModelPrice {
  /** USD per 1M input tokens. */
  input: number;
  /** USD per 1M cached input tokens, where the provider discounts them. */
  cachedInput?: number;
  /** USD per 1M output tokens. */
  output: number;
}

export type PriceTable = Partial<Record<ProviderName, Record<string, ModelPrice>>>;

export interface TokenUsage {
  prompt_tokens?: number;
  completion_tokens?: number;
  total_tokens?: number;
  prompt_tokens_details?: { cached_tokens?: number } | null;
}

const SNAPSHOT_SUFFIX = /-(\d{4}-\d{2}-\d{2}|\d{4})$/;

export class Prices {
  constructor(private readonly table: PriceTable) {}

  /** The priced id this model bills as (itself, or its base id for a dated snapshot). */
  pricedId(provider: ProviderName, model: string): string | undefined {
    const models = this.table[provider];
    if (!models) return undefined;
    if (Object.hasOwn(models, model)) return model;
    const base = model.replace(SNAPSHOT_SUFFIX, '');
    return base !== model && Object.hasOwn(models, base) ? base : undefined;
  }

  /** USD for this usage, or undefined when the model has no price. */
  cost(provider: ProviderName, model: string, usage: TokenUsage): number | undefined {
    const id = this.pricedId(provider, model);
    if (id === undefined) return undefined;
    const price = this.table[provider]?.[id];
    if (!price) return undefined;
    const prompt = usage.prompt_tokens ?? 0;
    const cached = Math.min(prompt, usage.prompt_tokens_details?.cached_tokens ?? 0);
    const completion = usage.completion_tokens ?? 0;
    const cachedPrice = price.cachedInput ?? price.input;
    return ((prompt - cached) * price.input + cached * cachedPrice + completion * price.output) / 1_000_000;
  }
}

export class PricesFileError extends Error {
  override readonly name = 'PricesFileError';
}

/** The built-in table, with PRICES_FILE's entries laid over it (per model). */
export function loadPrices(pricesFile: string | undefined): Prices {
  if (pricesFile === undefined) return new Prices(BUILTIN_PRICES);
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(pricesFile, 'utf8'));
  } catch (cause) {
    throw new PricesFileError(`PRICES_FILE could not be read as JSON: ${(cause as Error).message}`, { cause });
  }
  const overrides = validate(parsed);
  const merged: PriceTable = {};
  for (const provider of ['openai', 'groq'] as const) {
    merged[provider] = { ...BUILTIN_PRICES[provider], ...overrides[provider] };
  }
  return new Prices(merged);
}

function validate(value: unknown): PriceTable {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new PricesFileError('PRICES_FILE must hold an object: {"openai":{"model":{"input":…,"output":…}},"groq":{…}}');
  }
  const table: PriceTable = {};
  for (const [provider, models] of Object.entries(value)) {
    if (provider !== 'openai' && provider !== 'groq') throw new PricesFileError(`PRICES_FILE: unknown provider "${provider}"`);
    if (typeof models !== 'object' || models === null) throw new PricesFileError(`PRICES_FILE: "${provider}" must be an object of models`);
    const out: Record<string, ModelPrice> = {};
    for (const [model, price] of Object.entries(models as Record<string, unknown>)) {
      const p = price as Partial<ModelPrice> | null;
      const valid = (n: unknown) => typeof n === 'number' && Number.isFinite(n) && n >= 0;
      if (!p || !valid(p.input) || !valid(p.output) || (p.cachedInput !== undefined && !valid(p.cachedInput))) {
        throw new PricesFileError(`PRICES_FILE: ${provider}/${model} needs non-negative numbers "input" and "output" (USD per 1M tokens)`);
      }
      out[model] = { input: p.input as number, output: p.output as number, ...(p.cachedInput === undefined ? {} : { cachedInput: p.cachedInput }) };
    }
    table[provider] = out;
  }
  return table;
}
