import { dedupe, isWellFormedKey } from './key-format.js';
import { PROVIDER_NAMES, type ProviderName } from '../providers/provider-name.js';
import { readConfigFileText } from '../reload/read-config-file.js';
import type { ProviderKeys } from './types.js';

/**
 * A KEYS_FILE that cannot be used. The message names the file and what is wrong, never any
 * of its content: the file holds keys, and this message ends up in logs.
 */
export class KeysFileError extends Error {
  override readonly name = 'KeysFileError';
}

/**
 * Read and strictly validate a keys file: `{"openai": ["…"], "groq": ["…"]}`, both fields
 * optional, each an array of non-empty key strings. Trimmed and deduplicated like env keys.
 */
export async function readKeysFile(path: string): Promise<ProviderKeys> {
  return parseKeysFile(path, await readConfigFileText('KEYS_FILE', path, KeysFileError));
}

function parseKeysFile(path: string, text: string): ProviderKeys {
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch {
    // No cause on purpose: V8's JSON.parse message quotes the text around the error, i.e. a key.
    throw new KeysFileError(`KEYS_FILE ${path}: not valid JSON`);
  }
  if (typeof document !== 'object' || document === null || Array.isArray(document)) {
    throw new KeysFileError(`KEYS_FILE ${path}: must be a JSON object like {"openai":["…"],"groq":["…"]}`);
  }
  const fields = document as Record<string, unknown>;
  const unknown = Object.keys(fields).filter((field) => !(PROVIDER_NAMES as readonly string[]).includes(field));
  if (unknown.length > 0) {
    throw new KeysFileError(`KEYS_FILE ${path}: unknown field ${describeField(unknown[0] ?? '')}; allowed: ${PROVIDER_NAMES.join(', ')}`);
  }
  return { openai: providerField(path, fields, 'openai'), groq: providerField(path, fields, 'groq') };
}

function providerField(path: string, fields: Record<string, unknown>, provider: ProviderName): string[] {
  const value = fields[provider];
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw new KeysFileError(`KEYS_FILE ${path}: "${provider}" must be an array of key strings`);
  const keys = value.map((entry: unknown, index) => {
    const key = typeof entry === 'string' ? entry.trim() : '';
    if (key === '' || !isWellFormedKey(key)) {
      throw new KeysFileError(`KEYS_FILE ${path}: "${provider}"[${index}] must be a non-empty key string without whitespace`);
    }
    return key;
  });
  return dedupe(keys);
}

// A field name is echoed only when it looks like a misspelt provider; anything else could
// be a key pasted in the wrong place.
function describeField(field: string): string {
  return /^[A-Za-z_-]{1,24}$/.test(field) ? `"${field}"` : '(name not shown)';
}
