/**
 * Calls `onChange` (debounced) whenever a file may have changed: a watch on its directory (an
 * editor's save-by-rename and a Kubernetes/Docker secret or config-map update replace the
 * inode, and a watch on the old file would go silent) plus stat() polling, for file systems
 * where fs.watch sees nothing (some bind mounts, NFS). The same rules as the keys file's watcher.
 */
import { type FSWatcher, type Stats, unwatchFile, watch, watchFile } from 'node:fs';
import { basename, dirname } from 'node:path';

export interface ChangeWatchLogger {
  warn(obj: object, msg: string): void;
}

export interface ChangeWatchOptions {
  /** Editors and `cp` write in several steps; wait for quiet before reading. */
  debounceMs?: number;
  pollIntervalMs?: number;
}

export function watchChanges(path: string, onChange: () => void, log: ChangeWatchLogger, opts: ChangeWatchOptions = {}): { close(): void } {
  const debounceMs = opts.debounceMs ?? 100;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  const schedule = (): void => {
    if (closed) return;
    clearTimeout(timer);
    timer = setTimeout(onChange, debounceMs);
    timer.unref();
  };
  const file = basename(path);
  let directory: FSWatcher | undefined;
  try {
    directory = watch(dirname(path), { persistent: false }, (_event, filename) => {
      const name = filename?.toString();
      if (name === undefined || name === file || name.startsWith('..')) schedule();
    });
    directory.on('error', (error) => {
      log.warn({ path, err: error.name }, 'file directory watch failed; polling only');
      directory?.close();
    });
  } catch (error) {
    log.warn({ path, err: (error as Error).name }, 'cannot watch the file directory; polling only');
  }
  const onStat = (current: Stats, previous: Stats): void => {
    if (current.mtimeMs !== previous.mtimeMs || current.ino !== previous.ino || current.size !== previous.size) schedule();
  };
  watchFile(path, { persistent: false, interval: opts.pollIntervalMs ?? 2_000 }, onStat);
  return {
    close() {
      closed = true;
      clearTimeout(timer);
      directory?.close();
      unwatchFile(path, onStat);
    },
  };
}
