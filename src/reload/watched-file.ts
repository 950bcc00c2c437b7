/**
 * A file the gateway re-reads while it runs (KEYS_FILE, MODELS_FILE, LIMITS_FILE): read again when
 * it changes (file-changes.ts) and on SIGHUP (the reload list, on-hangup.ts). Each file brings only how
 * it is read and validated and how it is applied; the rules are the same for all of them:
 * - one read at a time, in order, so an older read can never overwrite a newer one;
 * - a file that cannot be used is refused whole with one error line, and what is in force stays;
 * - nothing is applied once the watch is closed;
 * - a reload that is applied is said in one info line, with the fields the file's `apply` returns.
 */
import { registerReloadable } from './on-hangup.js';
import { errorClassAndCode } from './error-class-and-code.js';
import { type FileChangeTiming, watchFileChanges } from './file-changes.js';

export type ReloadTrigger = 'signal' | 'change';

export interface ReloadableFileLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface ReloadableFile<T> {
  /** The variable that names the file, e.g. "KEYS_FILE". */
  variable: string;
  path: string;
  /** What it holds, as the reload list names it (e.g. "provider keys"). */
  name: string;
  /** Its log lines, word for word: operators and tests look for them. */
  lines: {
    /** Info, before a SIGHUP's read. */
    signal: string;
    /** Info, once a new content is in force. */
    reloaded: string;
    /** Error, when the file cannot be read or does not validate. */
    refused: string;
    /** Error, when the content was valid but putting it in force threw. */
    applyFailed: string;
  };
  /** Reads and validates the whole file; throws to refuse it. */
  read(path: string): Promise<T>;
  /**
   * The file's own error class: its messages name the file and the fault, never content that
   * must not be logged, so they are logged whole. Any other error is named by class and code only.
   */
  errorClass: abstract new (
    ...args: never[]
  ) => Error;
  /** Puts `next` in force (throws to refuse it); returns the fields of the "reloaded" line. */
  apply(next: T, trigger: ReloadTrigger): Record<string, unknown>;
  /** Optional: a change event bringing this content is ignored (a SIGHUP applies it all the same). */
  ignoreChange?(next: T): boolean;
}

export interface WatchedFile {
  /** Re-reads now, as SIGHUP does; true when the content read was put in force. */
  reload(): Promise<boolean>;
  close(): void;
}

/** Watches `file` and applies each valid new content, without joining the SIGHUP reload list. */
export function watchReloadableFile<T>(file: ReloadableFile<T>, log: ReloadableFileLogger, timing: FileChangeTiming = {}): WatchedFile {
  const { path } = file;
  let closed = false;
  let queue: Promise<unknown> = Promise.resolve();

  const load = async (trigger: ReloadTrigger): Promise<boolean> => {
    let next: T;
    try {
      next = await file.read(path);
    } catch (error) {
      log.error({ path, trigger, err: safeReason(error, file.errorClass) }, file.lines.refused);
      return false;
    }
    if (closed) return false;
    if (trigger === 'change' && file.ignoreChange?.(next) === true) return false;
    let described: Record<string, unknown>;
    try {
      described = file.apply(next, trigger);
    } catch (error) {
      log.error({ path, trigger, err: safeReason(error, file.errorClass) }, file.lines.applyFailed);
      return false;
    }
    log.info({ path, trigger, ...described }, file.lines.reloaded);
    return true;
  };

  const run = (trigger: ReloadTrigger): Promise<boolean> => {
    const result = queue.then(() => load(trigger));
    queue = result.catch(() => undefined);
    return result;
  };

  const changes = watchFileChanges(file.variable, path, () => void run('change'), log, timing);
  return {
    reload: () => run('signal'),
    close() {
      closed = true;
      changes.close();
    },
  };
}

/** Watches `file` and adds it to the SIGHUP reload list; close() does both undoings. */
export function startReloading<T>(file: ReloadableFile<T>, log: ReloadableFileLogger, timing: FileChangeTiming = {}): WatchedFile {
  const watched = watchReloadableFile(file, log, timing);
  const unregister = registerReloadable({
    name: file.name,
    reload: () => {
      log.info({ file: file.path }, file.lines.signal);
      return watched.reload();
    },
  });
  return {
    reload: watched.reload,
    close() {
      unregister();
      watched.close();
    },
  };
}

function safeReason(error: unknown, errorClass: ReloadableFile<unknown>['errorClass']): string {
  return error instanceof errorClass ? error.message : errorClassAndCode(error);
}
