/**
 * LIMITS_FILE is read at start-up (a bad file stops it, like every other configuration) and again
 * when it changes and on SIGHUP (reload.ts), with no restart: a refused file is named in one log
 * line and the limits in force stay. Watched like KEYS_FILE: its directory (an editor's save by
 * rename, a swapped Kubernetes secret), with stat() polling behind it for file systems whose
 * events do not arrive.
 */
import { type FSWatcher, type Stats, unwatchFile, watch, watchFile } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { Logger } from 'pino';
import { registerReloadable } from '../reload.js';
import type { Limits } from './limits.js';
import { type LimitOverrides, LimitsFileError, readLimitsFile } from './limits-file.js';

export interface LimitsReloadOptions {
  debounceMs?: number;
  pollIntervalMs?: number;
}

export async function loadLimitsFile(path: string | undefined): Promise<LimitOverrides> {
  return path === undefined ? new Map() : readLimitsFile(path);
}

export function startLimitsReloading(path: string | undefined, limits: Limits, log: Logger, options: LimitsReloadOptions = {}): { close(): void } {
  if (path === undefined) return { close() {} };
  const debounceMs = options.debounceMs ?? 100;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  // One read at a time, in order: an older read never overwrites a newer one.
  let queue: Promise<unknown> = Promise.resolve();

  const load = async (trigger: 'signal' | 'change'): Promise<boolean> => {
    try {
      const overrides = await readLimitsFile(path);
      if (closed) return false;
      limits.setOverrides(overrides);
      log.info({ path, trigger, users: overrides.size }, 'user limits reloaded');
      return true;
    } catch (error) {
      const reason = error instanceof LimitsFileError ? error.message : error instanceof Error ? error.name : 'unknown error';
      log.error({ path, trigger, err: reason }, 'limits file refused; the previous limits stay in force');
      return false;
    }
  };
  const run = (trigger: 'signal' | 'change'): Promise<boolean> => {
    const result = queue.then(() => load(trigger));
    queue = result.catch(() => undefined);
    return result;
  };
  const schedule = (): void => {
    if (closed) return;
    clearTimeout(timer);
    timer = setTimeout(() => void run('change'), debounceMs).unref();
  };

  const file = basename(path);
  let directory: FSWatcher | undefined;
  try {
    directory = watch(dirname(path), { persistent: false }, (_event, name) => {
      const changed = name?.toString();
      if (changed === undefined || changed === file || changed.startsWith('..')) schedule();
    });
    directory.on('error', () => directory?.close());
  } catch {
    directory = undefined;
  }
  const onStat = (current: Stats, previous: Stats): void => {
    if (current.mtimeMs !== previous.mtimeMs || current.ino !== previous.ino || current.size !== previous.size) schedule();
  };
  watchFile(path, { persistent: false, interval: options.pollIntervalMs ?? 2_000 }, onStat);
  const unregister = registerReloadable({
    name: 'user limits',
    reload: () => {
      log.info({ file: path }, 'SIGHUP: reloading user limits');
      return run('signal');
    },
  });
  return {
    close() {
      closed = true;
      clearTimeout(timer);
      unregister();
      directory?.close();
      unwatchFile(path, onStat);
    },
  };
}
