import { watch, watchFile, unwatchFile, type FSWatcher, type Stats } from 'node:fs';
import { basename, dirname } from 'node:path';
import { keyId } from './key-id.js';
import { KeysFileError, readKeysFile } from './keys-file.js';
import { PROVIDER_NAMES } from '../providers/provider-name.js';
import type { KeyLogger, ProviderKeys } from './types.js';

export type KeysFileWatcher = {
  /** Re-read now (SIGHUP). Applies the set even if unchanged, which re-enables disabled keys. */
  reload(): Promise<boolean>;
  close(): void;
};

export type WatchKeysFileOptions = {
  /** The set already in force (read at start-up): a change event that yields it again is a no-op. */
  current?: ProviderKeys;
  /** Editors and `cp` write in several steps; wait for quiet before reading. */
  debounceMs?: number;
  /** stat() polling, for file systems where fs.watch sees nothing (some bind mounts, NFS). */
  pollIntervalMs?: number;
};

/**
 * Watch KEYS_FILE and hand every valid new key set to `onKeys`. A file that does not parse
 * is refused with one error line and the previous keys stay in force.
 */
export function watchKeysFile(path: string, onKeys: (keys: ProviderKeys) => void, log: KeyLogger, opts: WatchKeysFileOptions = {}): KeysFileWatcher {
  const debounceMs = opts.debounceMs ?? 100;
  const pollIntervalMs = opts.pollIntervalMs ?? 2_000;
  let applied: ProviderKeys | undefined = opts.current;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  // One load at a time, in order, so an older read can never overwrite a newer one.
  let queue: Promise<unknown> = Promise.resolve();

  const load = async (trigger: 'signal' | 'change'): Promise<boolean> => {
    let keys: ProviderKeys;
    try {
      keys = await readKeysFile(path);
    } catch (error) {
      log.error({ path, trigger, err: safeMessage(error) }, 'keys file refused; the previous keys stay in force');
      return false;
    }
    if (closed) return false;
    // A change event that does not change the set (touch, an unrelated file in the directory)
    // must not re-enable keys the provider rejected; only an explicit reload does that.
    if (trigger === 'change' && applied !== undefined && sameKeys(applied, keys)) return false;
    try {
      onKeys(keys);
    } catch (error) {
      log.error({ path, trigger, err: safeMessage(error) }, 'applying the reloaded keys failed; the previous keys stay in force');
      return false;
    }
    log.info({ path, trigger, ...describeChange(applied, keys) }, 'provider keys reloaded');
    applied = keys;
    return true;
  };

  const run = (trigger: 'signal' | 'change'): Promise<boolean> => {
    const result = queue.then(() => load(trigger));
    queue = result.catch(() => undefined);
    return result;
  };

  const schedule = (): void => {
    if (closed) return;
    clearTimeout(timer);
    timer = setTimeout(() => void run('change'), debounceMs);
    timer.unref();
  };

  const directoryWatcher = watchDirectory(path, schedule, log);
  const onStat = (current: Stats, previous: Stats): void => {
    if (current.mtimeMs !== previous.mtimeMs || current.ino !== previous.ino || current.size !== previous.size) schedule();
  };
  watchFile(path, { persistent: false, interval: pollIntervalMs }, onStat);

  return {
    reload: () => run('signal'),
    close: () => {
      closed = true;
      clearTimeout(timer);
      directoryWatcher?.close();
      unwatchFile(path, onStat);
    },
  };
}

// The directory, not the file: an editor's save-by-rename and a Kubernetes/Docker secret
// update (a `..data` symlink swapped to a new directory) replace the inode, and a watch on
// the old file would go silent.
function watchDirectory(path: string, onChange: () => void, log: KeyLogger): FSWatcher | undefined {
  const file = basename(path);
  try {
    const watcher = watch(dirname(path), { persistent: false }, (_event, filename) => {
      const name = filename?.toString();
      if (name === undefined || name === file || name.startsWith('..')) onChange();
    });
    watcher.on('error', (error) => {
      log.warn({ path, err: safeMessage(error) }, 'keys file directory watch failed; falling back to polling');
      watcher.close();
    });
    return watcher;
  } catch (error) {
    log.warn({ path, err: safeMessage(error) }, 'cannot watch the keys file directory; falling back to polling');
    return undefined;
  }
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

// Our own KeysFileError messages are written to be safe; any other error is named only by
// its class and code, since its message could quote the file.
function safeMessage(error: unknown): string {
  if (error instanceof KeysFileError) return error.message;
  if (error instanceof Error) {
    const code = 'code' in error && typeof error.code === 'string' ? ` ${error.code}` : '';
    return `${error.name}${code}`;
  }
  return 'unknown error';
}
