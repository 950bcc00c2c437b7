/**
 * LIMITS_FILE is read at start-up (a bad file stops it, like every other configuration) and again
 * when it changes and on SIGHUP (reload/on-hangup.ts), with no restart, both by src/reload/watched-file.ts:
 * a refused file is named in one log line and the limits in force stay.
 */
import type { Logger } from 'pino';
import type { FileChangeTiming } from '../reload/file-changes.js';
import { startReloading } from '../reload/watched-file.js';
import type { Limits } from './limits.js';
import { type LimitOverrides, LimitsFileError, readLimitsFile } from './limits-file.js';

export async function loadLimitsFile(path: string | undefined): Promise<LimitOverrides> {
  return path === undefined ? new Map() : readLimitsFile(path);
}

export function startLimitsReloading(path: string | undefined, limits: Limits, log: Logger, timing: FileChangeTiming = {}): { close(): void } {
  if (path === undefined) return { close() {} };
  return startReloading(
    {
      variable: 'LIMITS_FILE',
      path,
      name: 'user limits',
      lines: {
        signal: 'SIGHUP: reloading user limits',
        reloaded: 'user limits reloaded',
        refused: 'limits file refused; the previous limits stay in force',
        applyFailed: 'applying the reloaded user limits failed; the previous limits stay in force',
      },
      read: readLimitsFile,
      errorClass: LimitsFileError,
      // No ignoreChange, unlike KEYS_FILE: the same overrides again change nothing (counts stay).
      apply(overrides) {
        limits.setOverrides(overrides);
        return { users: overrides.size };
      },
    },
    log,
    timing,
  );
}
