import { dedupe, isWellFormedKey } from './key-format.js';
import type { ProviderKeys } from './types.js';

type Env = Readonly<Record<string, string | undefined>>;

/**
 * Provider keys from the environment, used when KEYS_FILE is not set:
 * `OPENAI_API_KEYS` (comma-separated) plus `OPENAI_API_KEY`, and the same for `GROQ_`.
 * Entries are trimmed, empty ones dropped, duplicates removed. Throws (naming the variable,
 * never the value) when an entry has characters no key can have.
 */
export function keysFromEnv(env: Env): ProviderKeys {
  return {
    openai: providerKeys(env, 'OPENAI_API_KEYS', 'OPENAI_API_KEY'),
    groq: providerKeys(env, 'GROQ_API_KEYS', 'GROQ_API_KEY'),
  };
}

function providerKeys(env: Env, listName: string, singleName: string): string[] {
  return dedupe([...entries(env, listName), ...entries(env, singleName)]);
}

function entries(env: Env, name: string): string[] {
  const raw = env[name];
  if (raw === undefined) return [];
  const keys = raw
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '');
  keys.forEach((key, index) => {
    if (!isWellFormedKey(key)) {
      throw new Error(`${name}: entry ${index + 1} contains whitespace or non-ASCII characters, which no API key has`);
    }
  });
  return keys;
}
