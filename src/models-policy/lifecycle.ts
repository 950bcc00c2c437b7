/**
 * MODELS_FILE at start-up (read before anything is opened: a bad file stops the gateway with
 * its one line) and while the gateway runs: re-read when it changes and on SIGHUP (reload/on-hangup.ts),
 * both by src/reload/watched-file.ts. A new policy replaces the old one whole, between two
 * requests: a request already routed keeps what it was routed by, so a reload drops nothing.
 * A file that cannot be used is refused with one error line and the policy in force stays.
 */
import type { Logger } from 'pino';
import type { FileChangeTiming } from '../reload/file-changes.js';
import { startReloading } from '../reload/watched-file.js';
import { ModelPolicySource } from './model-policy.js';
import { ModelsFileError, readModelsFile, readModelsFileSync } from './models-file.js';

/** The policy source for `modelsFile` (throws ModelsFileError for a file that cannot be used). */
export function loadModelPolicy(modelsFile: string | undefined): ModelPolicySource {
  return new ModelPolicySource(modelsFile === undefined ? undefined : readModelsFileSync(modelsFile));
}

export function startModelPolicyReloading(
  modelsFile: string | undefined,
  source: ModelPolicySource,
  log: Logger,
  timing: FileChangeTiming = {},
): { close(): void } {
  if (modelsFile === undefined) return { close() {} };
  return startReloading(
    {
      variable: 'MODELS_FILE',
      path: modelsFile,
      name: 'model policy',
      lines: {
        signal: 'SIGHUP: reloading the model policy',
        reloaded: 'model policy reloaded',
        refused: 'models file refused; the previous model policy stays in force',
        applyFailed: 'applying the reloaded model policy failed; the previous model policy stays in force',
      },
      read: readModelsFile,
      errorClass: ModelsFileError,
      // No ignoreChange, unlike KEYS_FILE: applying the same policy again changes nothing.
      apply(policy) {
        source.replace(policy);
        const { aliases, allow, fallbacks } = policy.data;
        return { aliases: aliases.size, allow: allow?.length ?? 'all', fallbacks: fallbacks.size };
      },
    },
    log,
    timing,
  );
}
