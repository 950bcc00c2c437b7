/**
 * Where the provider keys come from at start-up (KEYS_FILE, else the environment), and how
 * they are reloaded live: whenever KEYS_FILE changes, and on SIGHUP through the reload list
 * (reload/on-hangup.ts), which main.ts wires to the signal (both by src/reload/watched-file.ts).
 */
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { startReloading } from '../reload/watched-file.js';
import { readKeysFile } from './keys-file.js';
import { replaceAllKeys, type KeyPools } from './pools.js';
import type { ProviderKeys } from './types.js';
import { keysFile } from './watch-keys-file.js';

export async function loadProviderKeys(config: Config): Promise<ProviderKeys> {
  if (config.keysFile === undefined) return { openai: [...config.openaiKeys], groq: [...config.groqKeys] };
  return readKeysFile(config.keysFile);
}

export function startKeyReloading(config: Config, pools: KeyPools, initial: ProviderKeys, log: Logger): { close(): void } {
  if (config.keysFile === undefined) return { close() {} };
  return startReloading(
    keysFile(config.keysFile, (keys) => replaceAllKeys(pools, keys), initial),
    log,
  );
}
