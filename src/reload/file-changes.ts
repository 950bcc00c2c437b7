/**
 * Calls `onChange` (debounced) whenever a file the gateway re-reads may have changed. Two ways,
 * both always on, because each misses what the other sees:
 * - a watch on the file's directory, not on the file: an editor's save-by-rename and a
 *   Kubernetes/Docker secret or config-map update (a `..data` symlink swapped to a new directory)
 *   replace the inode, and a watch on the old file would go silent;
 * - stat() polling of the path, for file systems where fs.watch sees nothing (some bind mounts,
 *   NFS), a file behind a symlink into another directory, and a directory that cannot be watched.
 */
import { type FSWatcher, type Stats, unwatchFile, watch, watchFile } from 'node:fs';
import { basename, dirname } from 'node:path';
import { errorClassAndCode } from './error-class-and-code.js';

export interface FileChangeTiming {
  /** Editors and `cp` write in several steps; wait for this much quiet before reading. */
  debounceMs?: number;
  /** How often the path is stat()ed. */
  pollIntervalMs?: number;
}

export interface FileChangeLogger {
  warn(obj: object, msg: string): void;
}

export const DEFAULT_DEBOUNCE_MS = 100;
export const DEFAULT_POLL_INTERVAL_MS = 2_000;

/** `variable` (e.g. "KEYS_FILE") names the file in the warning logged when the directory cannot be watched. */
export function watchFileChanges(
  variable: string,
  path: string,
  onChange: () => void,
  log: FileChangeLogger,
  timing: FileChangeTiming = {},
): { close(): void } {
  const debounceMs = timing.debounceMs ?? DEFAULT_DEBOUNCE_MS;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  const schedule = (): void => {
    if (closed) return;
    clearTimeout(timer);
    timer = setTimeout(onChange, debounceMs);
    timer.unref();
  };

  const directory = watchDirectory(variable, path, schedule, log);
  const onStat = (current: Stats, previous: Stats): void => {
    if (current.mtimeMs !== previous.mtimeMs || current.ino !== previous.ino || current.size !== previous.size) schedule();
  };
  watchFile(path, { persistent: false, interval: timing.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS }, onStat);

  return {
    close() {
      closed = true;
      clearTimeout(timer);
      directory?.close();
      unwatchFile(path, onStat);
    },
  };
}

function watchDirectory(variable: string, path: string, onChange: () => void, log: FileChangeLogger): FSWatcher | undefined {
  const file = basename(path);
  try {
    const watcher = watch(dirname(path), { persistent: false }, (_event, filename) => {
      const name = filename?.toString();
      // `..data` and its siblings: the symlinks a Kubernetes volume swaps on an update.
      if (name === undefined || name === file || name.startsWith('..')) onChange();
    });
    watcher.on('error', (error) => {
      log.warn({ path, err: errorClassAndCode(error) }, `${variable}: directory watch failed; falling back to polling`);
      watcher.close();
    });
    return watcher;
  } catch (error) {
    log.warn({ path, err: errorClassAndCode(error) }, `${variable}: cannot watch the directory; falling back to polling`);
    return undefined;
  }
}
