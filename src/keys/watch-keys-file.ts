/**
 * KEYS_FILE as a file the gateway re-reads (src/reload/watched-file.ts does the watching, the
 * ordering and the refusals): what is particular to keys is here.
 * - A change event that yields the set in force again (a touch, an unrelated file in the
 *   directory, the same keys reordered) is ignored: applying it would re-enable keys the provider
 *   rejected, which only an explicit reload (SIGHUP) may do.
 * - The "reloaded" line says what changed by counts and key ids only, never key material.
 */
import { keyId } from './key-id.js';
import { KeysFileError, readKeysFile } from './keys-file.js';
import { PROVIDER_NAMES } from '../providers/provider-name.js';
import type { FileChangeTiming } from '../reload/file-changes.js';
import { type ReloadableFile, type WatchedFile, watchReloadableFile } from '../reload/watched-file.js';
import type { KeyLogger, ProviderKeys } from './types.js';

export type KeysFileWatcher = WatchedFile;

export type WatchKeysFileOptions = FileChangeTiming & {
  /** The set already in force (read at start-up): a change event that yields it again is a no-op. */
  current?: ProviderKeys;
};

/** KEYS_FILE at `path`, every valid new key set handed to `onKeys` (which may throw to refuse it). */
export function keysFile(path: string, onKeys: (keys: ProviderKeys) => void, current?: ProviderKeys): ReloadableFile<ProviderKeys> {
  let applied = current;
  return {
    variable: 'KEYS_FILE',
    path,
    name: 'provider keys',
    lines: {
      signal: 'SIGHUP: reloading provider keys',
      reloaded: 'provider keys reloaded',
      refused: 'keys file refused; the previous keys stay in force',
      applyFailed: 'applying the reloaded keys failed; the previous keys stay in force',
    },
    read: readKeysFile,
    errorClass: KeysFileError,
    ignoreChange: (keys) => applied !== undefined && sameKeys(applied, keys),
    apply(keys) {
      onKeys(keys);
      const change = describeChange(applied, keys);
      applied = keys;
      return change;
    },
  };
}

/** Watch KEYS_FILE without joining the SIGHUP list (lifecycle.ts does both); reload() re-enables disabled keys. */
export function watchKeysFile(path: string, onKeys: (keys: ProviderKeys) => void, log: KeyLogger, opts: WatchKeysFileOptions = {}): KeysFileWatcher {
  return watchReloadableFile(keysFile(path, onKeys, opts.current), log, opts);
}

function sameKeys(a: ProviderKeys, b: ProviderKeys): boolean {
  return PROVIDER_NAMES.every((provider) => {
    const left = [...a[provider]].sort();
    const right = [...b[provider]].sort();
    return left.length === right.length && left.every((key, index) => key === right[index]);
  });
}

// Counts and key ids only: enough to see what a reload did without any key material.
function describeChange(before: ProviderKeys | undefined, after: ProviderKeys): Record<string, unknown> {
  const summary: Record<string, unknown> = {};
  for (const provider of PROVIDER_NAMES) {
    const previous = new Set(before?.[provider] ?? []);
    const next = new Set(after[provider]);
    summary[provider] = {
      keys: next.size,
      added: [...next].filter((key) => !previous.has(key)).map(keyId),
      removed: [...previous].filter((key) => !next.has(key)).map(keyId),
    };
  }
  return summary;
}
