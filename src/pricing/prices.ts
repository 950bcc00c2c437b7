/**
 * Prices per provider and model, and the cost of one answer's usage. Dated snapshot ids
 * (gpt-4o-2024-08-06) are priced as their base id, as the providers bill them, unless the
 * table prices the snapshot itself (gpt-4o-2024-05-13 costs more than gpt-4o).
 */
import { readFileSync } from 'node:fs';
import type { ProviderName } from '../providers/provider-name.js';
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
  /** OpenAI (and Groq, for models with prompt caching): how many prompt tokens were billed as cached. */
  prompt_tokens_details?: { cached_tokens?: number } | null;
}

const SNAPSHOT_SUFFIX = /-(\d{4}-\d{2}-\d{2}|\d{4})$/;
const PRICE_FIELDS = new Set(['input', 'cachedInput', 'output']);
const PROVIDERS = ['openai', 'groq'] as const;

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

  /** Every id the table prices for this provider (the metric series that exist from start-up). */
  models(provider: ProviderName): string[] {
    return Object.keys(this.table[provider] ?? {});
  }

  /** USD for this usage, or undefined when the model has no price. */
  cost(provider: ProviderName, model: string, usage: TokenUsage): number | undefined {
    const id = this.pricedId(provider, model);
    if (id === undefined) return undefined;
    const price = this.table[provider]?.[id];
    if (!price) return undefined;
    const prompt = nonNegative(usage.prompt_tokens);
    // prompt_tokens already includes the cached ones: bill those at the cached rate, the rest in full.
    const cached = Math.min(prompt, nonNegative(usage.prompt_tokens_details?.cached_tokens));
    const completion = nonNegative(usage.completion_tokens);
    const cachedPrice = price.cachedInput ?? price.input;
    return ((prompt - cached) * price.input + cached * cachedPrice + completion * price.output) / 1_000_000;
  }
}

/** A token count from an upstream's JSON: anything but a finite non-negative number counts as 0. */
function nonNegative(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) && value > 0 ? value : 0;
}

/** PRICES_FILE cannot be used; the message is one line that names the variable and the file. */
export class PricesFileError extends Error {
  override readonly name = 'PricesFileError';
}

/** The built-in table, with PRICES_FILE's entries laid over it (per model). */
export function loadPrices(pricesFile: string | undefined): Prices {
  if (pricesFile === undefined) return new Prices(BUILTIN_PRICES);
  let text: string;
  try {
    text = readFileSync(pricesFile, 'utf8');
  } catch (cause) {
    throw new PricesFileError(`PRICES_FILE ${pricesFile} could not be read: ${oneLine((cause as Error).message)}`, { cause });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (cause) {
    throw new PricesFileError(`PRICES_FILE ${pricesFile} is not valid JSON: ${oneLine((cause as Error).message)}`, { cause });
  }
  const overrides = validate(parsed, pricesFile);
  const merged: PriceTable = {};
  for (const provider of PROVIDERS) {
    merged[provider] = { ...BUILTIN_PRICES[provider], ...overrides[provider] };
  }
  return new Prices(merged);
}

const EXAMPLE = '{"openai":{"gpt-4o":{"input":2.5,"cachedInput":1.25,"output":10}},"groq":{…}}';

function validate(value: unknown, file: string): PriceTable {
  const where = `PRICES_FILE ${file}`;
  if (!isPlainObject(value)) throw new PricesFileError(`${where} must hold an object such as ${EXAMPLE}`);
  const table: PriceTable = {};
  for (const [provider, models] of Object.entries(value)) {
    if (provider !== 'openai' && provider !== 'groq') {
      throw new PricesFileError(`${where}: unknown provider ${JSON.stringify(provider)} (expected "openai" or "groq")`);
    }
    if (!isPlainObject(models)) throw new PricesFileError(`${where}: "${provider}" must be an object of models, e.g. ${EXAMPLE}`);
    const out: Record<string, ModelPrice> = {};
    for (const [model, price] of Object.entries(models)) {
      const name = `${provider}/${JSON.stringify(model)}`;
      if (model === '') throw new PricesFileError(`${where}: ${provider} has a model with an empty id`);
      if (!isPlainObject(price)) throw new PricesFileError(`${where}: ${name} must be an object {"input":…,"output":…}`);
      // A misspelt field ("cached_input") would silently price cached tokens in full: refuse it.
      const unknown = Object.keys(price).find((field) => !PRICE_FIELDS.has(field));
      if (unknown !== undefined) {
        throw new PricesFileError(`${where}: ${name} has unknown field ${JSON.stringify(unknown)} (allowed: input, cachedInput, output)`);
      }
      const { input, output, cachedInput } = price;
      if (!isPrice(input) || !isPrice(output) || (cachedInput !== undefined && !isPrice(cachedInput))) {
        throw new PricesFileError(`${where}: ${name} needs non-negative numbers "input" and "output" (USD per 1M tokens), and "cachedInput" if given`);
      }
      out[model] = { input, output, ...(cachedInput === undefined ? {} : { cachedInput }) };
    }
    table[provider] = out;
  }
  return table;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isPrice(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0;
}

/** Error messages (JSON.parse quotes the source) may span lines; start-up errors are one line. */
function oneLine(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > 200 ? `${flat.slice(0, 199)}…` : flat;
}
