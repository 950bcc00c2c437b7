/**
 * MODELS_FILE at start-up (read before anything is opened: a bad file stops the gateway with
 * its one line) and while the gateway runs: re-read when it changes and on SIGHUP (reload.ts).
 * A new policy replaces the old one whole, between two requests: a request already routed keeps
 * what it was routed by, so a reload drops nothing. A file that cannot be used is refused with
 * one error line and the policy in force stays.
 */
import type { Logger } from 'pino';
import { registerReloadable } from '../reload.js';
import { type ModelPolicy, ModelPolicySource } from './model-policy.js';
import { ModelsFileError, readModelsFile, readModelsFileSync } from './models-file.js';
import { type ChangeWatchOptions, watchChanges } from './watch-changes.js';

/** The policy source for `modelsFile` (throws ModelsFileError for a file that cannot be used). */
export function loadModelPolicy(modelsFile: string | undefined): ModelPolicySource {
  return new ModelPolicySource(modelsFile === undefined ? undefined : readModelsFileSync(modelsFile));
}

export function startModelPolicyReloading(
  modelsFile: string | undefined,
  source: ModelPolicySource,
  log: Logger,
  opts: ChangeWatchOptions = {},
): { close(): void } {
  if (modelsFile === undefined) return { close() {} };
  let closed = false;
  // One read at a time, in order, so an older read can never replace a newer one.
  let queue: Promise<unknown> = Promise.resolve();
  const load = async (trigger: 'signal' | 'change'): Promise<boolean> => {
    let policy: ModelPolicy;
    try {
      policy = await readModelsFile(modelsFile);
    } catch (error) {
      const reason = error instanceof ModelsFileError ? error.message : (error as Error).name;
      log.error({ path: modelsFile, trigger, err: reason }, 'models file refused; the previous model policy stays in force');
      return false;
    }
    if (closed) return false;
    source.replace(policy);
    const { aliases, allow, fallbacks } = policy.data;
    log.info({ path: modelsFile, trigger, aliases: aliases.size, allow: allow?.length ?? 'all', fallbacks: fallbacks.size }, 'model policy reloaded');
    return true;
  };
  const run = (trigger: 'signal' | 'change'): Promise<boolean> => {
    const result = queue.then(() => load(trigger));
    queue = result.catch(() => undefined);
    return result;
  };
  const watcher = watchChanges(modelsFile, () => void run('change'), log, opts);
  const unregister = registerReloadable({
    name: 'model policy',
    reload: () => {
      log.info({ file: modelsFile }, 'SIGHUP: reloading the model policy');
      return run('signal');
    },
  });
  return {
    close() {
      closed = true;
      unregister();
      watcher.close();
    },
  };
}
