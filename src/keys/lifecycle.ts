/**
 * Where the provider keys come from at start-up (KEYS_FILE, else the environment), and how
 * they are reloaded live: whenever KEYS_FILE changes, and on SIGHUP through the reload list
 * (reload.ts), which main.ts wires to the signal.
 */
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { registerReloadable } from '../reload.js';
import { readKeysFile } from './keys-file.js';
import { replaceAllKeys, type KeyPools } from './pools.js';
import type { ProviderKeys } from './types.js';
import { watchKeysFile } from './watch-keys-file.js';

export async function loadProviderKeys(config: Config): Promise<ProviderKeys> {
  if (config.keysFile === undefined) return { openai: [...config.openaiKeys], groq: [...config.groqKeys] };
  return readKeysFile(config.keysFile);
}

export function startKeyReloading(config: Config, pools: KeyPools, initial: ProviderKeys, log: Logger): { close(): void } {
  if (config.keysFile === undefined) return { close() {} };
  const watcher = watchKeysFile(config.keysFile, (keys) => replaceAllKeys(pools, keys), log, { current: initial });
  const unregister = registerReloadable({
    name: 'provider keys',
    reload: () => {
      log.info({ file: config.keysFile }, 'SIGHUP: reloading provider keys');
      return watcher.reload();
    },
  });
  return {
    close() {
      unregister();
      watcher.close();
    },
  };
}
