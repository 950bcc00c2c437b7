/**
 * What SIGHUP re-reads. Every file the gateway re-reads while it runs (KEYS_FILE, MODELS_FILE,
 * LIMITS_FILE, each through src/reload/watched-file.ts) registers its reload here when it starts
 * watching, and removes it when it stops; main.ts sends SIGHUP to reloadAll(). One list, so a
 * file added later cannot be forgotten by the signal handler, and buildServer() itself never
 * touches process signals (an embedding program, or a test, decides).
 */

export interface ReloadLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface Reloadable {
  /** What it re-reads, for the log line (e.g. "provider keys"). */
  name: string;
  /** Re-reads and applies; logs its own outcome. A refusal keeps the old state and must not throw. */
  reload(): Promise<unknown>;
}

const reloadables = new Set<Reloadable>();

/** Adds a reloadable; the function returned removes it (call it on close). */
export function registerReloadable(reloadable: Reloadable): () => void {
  reloadables.add(reloadable);
  return () => {
    reloadables.delete(reloadable);
  };
}

/**
 * Reloads everything registered, one after the other. Never rejects: a rejection here would be
 * an unhandled one, which the process treats as fatal, and a reload request must never stop it.
 */
export async function reloadAll(log: ReloadLogger): Promise<void> {
  if (reloadables.size === 0) {
    // Generic on purpose: the list does not know which files could have been set, and a line
    // naming some of them went stale when another became reloadable.
    log.warn({ signal: 'SIGHUP' }, 'SIGHUP: nothing to reload (no reloadable file is configured); still serving');
    return;
  }
  for (const reloadable of [...reloadables]) {
    try {
      await reloadable.reload();
    } catch (error) {
      // Named by class only: a message could quote the file being read.
      log.error({ reloading: reloadable.name, err: error instanceof Error ? error.name : 'unknown error' }, 'reload failed; the previous state stays in force');
    }
  }
}

/**
 * SIGHUP → reloadAll(), for as long as the returned function is not called. Installing any
 * listener also replaces Node's default for SIGHUP, which is to exit.
 */
export function reloadOnHangup(log: () => ReloadLogger | undefined): () => void {
  const onHangup = (): void => {
    const logger = log();
    // Start-up has not built the logger yet: what would be reloaded is being read right now.
    if (logger !== undefined) void reloadAll(logger);
  };
  process.on('SIGHUP', onHangup);
  return () => {
    process.off('SIGHUP', onHangup);
  };
}
