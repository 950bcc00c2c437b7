/**
 * Built-in price table, USD per 1M tokens: input, cached input (where the provider prices it)
 * and output. Taken on 2025-11-01 from the public pricing pages of OpenAI and Groq; prices
 * change, so PRICES_FILE overrides or extends any entry without a release.
 */
import type { PriceTable } from './prices.js';

export const BUILTIN_PRICES_TAKEN_ON = '2025-11-01';

export const BUILTIN_PRICES: PriceTable = {
  openai: {
    'gpt-5': { input: 1.25, cachedInput: 0.125, output: 10 },
    'gpt-5-mini': { input: 0.25, cachedInput: 0.025, output: 2 },
    'gpt-5-nano': { input: 0.05, cachedInput: 0.005, output: 0.4 },
    'gpt-4.1': { input: 2, cachedInput: 0.5, output: 8 },
    'gpt-4.1-mini': { input: 0.4, cachedInput: 0.1, output: 1.6 },
    'gpt-4.1-nano': { input: 0.1, cachedInput: 0.025, output: 0.4 },
    'gpt-4o': { input: 2.5, cachedInput: 1.25, output: 10 },
    'gpt-4o-mini': { input: 0.15, cachedInput: 0.075, output: 0.6 },
    'chatgpt-4o-latest': { input: 5, output: 15 },
    'gpt-4-turbo': { input: 10, output: 30 },
    'gpt-4': { input: 30, output: 60 },
    'gpt-3.5-turbo': { input: 0.5, output: 1.5 },
    'gpt-3.5-turbo-instruct': { input: 1.5, output: 2 },
    o1: { input: 15, cachedInput: 7.5, output: 60 },
    'o1-mini': { input: 1.1, cachedInput: 0.55, output: 4.4 },
    o3: { input: 2, cachedInput: 0.5, output: 8 },
    'o3-mini': { input: 1.1, cachedInput: 0.55, output: 4.4 },
    'o4-mini': { input: 1.1, cachedInput: 0.275, output: 4.4 },
    'text-embedding-3-small': { input: 0.02, output: 0 },
    'text-embedding-3-large': { input: 0.13, output: 0 },
    'text-embedding-ada-002': { input: 0.1, output: 0 },
  },
  groq: {
    'llama-3.1-8b-instant': { input: 0.05, output: 0.08 },
    'llama-3.3-70b-versatile': { input: 0.59, output: 0.79 },
    'meta-llama/llama-4-scout-17b-16e-instruct': { input: 0.11, output: 0.34 },
    'meta-llama/llama-4-maverick-17b-128e-instruct': { input: 0.2, output: 0.6 },
    'openai/gpt-oss-120b': { input: 0.15, output: 0.75 },
    'openai/gpt-oss-20b': { input: 0.1, output: 0.5 },
    'qwen/qwen3-32b': { input: 0.29, output: 0.59 },
    'moonshotai/kimi-k2-instruct': { input: 1, output: 3 },
    'moonshotai/kimi-k2-instruct-0905': { input: 1, output: 3 },
    'gemma2-9b-it': { input: 0.2, output: 0.2 },
    'deepseek-r1-distill-llama-70b': { input: 0.75, output: 0.99 },
  },
};
