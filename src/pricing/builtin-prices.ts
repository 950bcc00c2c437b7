/**
 * Built-in price table, USD per 1M tokens: input, cached input (where the provider prices it
 * separately) and output, for text/embedding models billed by the token.
 *
 * Taken on BUILTIN_PRICES_TAKEN_ON from the public pricing pages of OpenAI
 * (https://openai.com/api/pricing) and Groq (https://groq.com/pricing), standard tier (not
 * Batch/Flex/Priority). The numbers were entered by hand: operators should verify them against
 * those pages and correct or extend them with PRICES_FILE, without a release. Prices change,
 * and models come and go; a model missing here still has its tokens counted, only not its cost.
 */
import type { PriceTable } from './prices.js';

export const BUILTIN_PRICES_TAKEN_ON = '2025-11-01';

export const BUILTIN_PRICES: PriceTable = {
  openai: {
    'gpt-5': { input: 1.25, cachedInput: 0.125, output: 10 },
    'gpt-5-chat-latest': { input: 1.25, cachedInput: 0.125, output: 10 },
    'gpt-5-codex': { input: 1.25, cachedInput: 0.125, output: 10 },
    'gpt-5-mini': { input: 0.25, cachedInput: 0.025, output: 2 },
    'gpt-5-nano': { input: 0.05, cachedInput: 0.005, output: 0.4 },
    'gpt-5-pro': { input: 15, output: 120 },
    'gpt-4.1': { input: 2, cachedInput: 0.5, output: 8 },
    'gpt-4.1-mini': { input: 0.4, cachedInput: 0.1, output: 1.6 },
    'gpt-4.1-nano': { input: 0.1, cachedInput: 0.025, output: 0.4 },
    'gpt-4o': { input: 2.5, cachedInput: 1.25, output: 10 },
    // The first gpt-4o snapshot kept its launch price; later snapshots bill as gpt-4o.
    'gpt-4o-2024-05-13': { input: 5, output: 15 },
    'gpt-4o-mini': { input: 0.15, cachedInput: 0.075, output: 0.6 },
    'chatgpt-4o-latest': { input: 5, output: 15 },
    'gpt-4-turbo': { input: 10, output: 30 },
    'gpt-4': { input: 30, output: 60 },
    'gpt-3.5-turbo': { input: 0.5, output: 1.5 },
    'gpt-3.5-turbo-instruct': { input: 1.5, output: 2 },
    o1: { input: 15, cachedInput: 7.5, output: 60 },
    'o1-mini': { input: 1.1, cachedInput: 0.55, output: 4.4 },
    'o1-pro': { input: 150, output: 600 },
    o3: { input: 2, cachedInput: 0.5, output: 8 },
    'o3-mini': { input: 1.1, cachedInput: 0.55, output: 4.4 },
    'o3-pro': { input: 20, output: 80 },
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
    'meta-llama/llama-guard-4-12b': { input: 0.2, output: 0.2 },
    'openai/gpt-oss-120b': { input: 0.15, output: 0.75 },
    'openai/gpt-oss-20b': { input: 0.1, output: 0.5 },
    'qwen/qwen3-32b': { input: 0.29, output: 0.59 },
    'moonshotai/kimi-k2-instruct': { input: 1, output: 3 },
    'moonshotai/kimi-k2-instruct-0905': { input: 1, cachedInput: 0.5, output: 3 },
    // Retired by Groq in 2025 but still named by older configurations.
    'gemma2-9b-it': { input: 0.2, output: 0.2 },
    'deepseek-r1-distill-llama-70b': { input: 0.75, output: 0.99 },
  },
};
