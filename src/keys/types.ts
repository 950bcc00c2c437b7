import type { ProviderName } from '../providers/provider-name.js';

/** One key set per provider, as read from the environment or from KEYS_FILE. */
export type ProviderKeys = Record<ProviderName, string[]>;

/**
 * The logging surface the key modules need; a pino Logger satisfies it.
 * Objects passed here never hold a key, only its keyId() and counts.
 */
export interface KeyLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}
