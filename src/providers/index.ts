/**
 * A provider is data: where it lives, how it authenticates, and which model ids it is known to
 * serve when its live list does not say (as Portkey's provider api.ts files, without the code).
 */
import type { Config } from '../config.js';
import type { ProviderName } from './provider-name.js';

export interface Provider {
  readonly name: ProviderName;
  /** Base URL ending before /chat/completions, e.g. https://api.openai.com/v1 */
  readonly baseUrl: string;
  /** Origin part of baseUrl (undici Pools are per origin). */
  readonly origin: string;
  /** Path part of baseUrl without trailing slash, e.g. /v1 or /openai/v1 */
  readonly basePath: string;
  /** Prefixes of model ids this provider is known to serve, used when no live list knows the id. */
  readonly knownPrefixes: readonly string[];
  /** Groq sends usage on the last chunk of every stream; OpenAI only when asked. */
  readonly alwaysStreamsUsage: boolean;
}

function describe(name: ProviderName, baseUrl: string, knownPrefixes: readonly string[], alwaysStreamsUsage: boolean): Provider {
  const url = new URL(baseUrl);
  return Object.freeze({
    name,
    baseUrl,
    origin: url.origin,
    basePath: url.pathname.replace(/\/+$/, ''),
    knownPrefixes,
    alwaysStreamsUsage,
  });
}

export function providersFromConfig(config: Config): Record<ProviderName, Provider> {
  return {
    openai: describe('openai', config.openaiBaseUrl, ['gpt-', 'o1', 'o3', 'o4', 'text-embedding-', 'chatgpt-', 'dall-e', 'whisper-1', 'tts-'], false),
    groq: describe('groq', config.groqBaseUrl, ['llama', 'mixtral', 'gemma', 'qwen', 'deepseek', 'moonshotai/', 'meta-llama/'], true),
  };
}
