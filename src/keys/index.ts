export { cooldownFromResponse, type ResponseHeaders } from './cooldown.js';
export { parseDuration, parseSecondsOrDuration } from './duration.js';
export { keysFromEnv } from './env-keys.js';
export { keyId } from './key-id.js';
export { KeysFileError, parseKeysFile, readKeysFile } from './keys-file.js';
export {
  DEFAULT_COOLDOWN_MS,
  DEFAULT_MAX_COOLDOWN_MS,
  KeyPool,
  isUnavailable,
  type KeyCounts,
  type KeyLease,
  type KeyPoolOptions,
  type KeyUnavailable,
} from './pool.js';
export { createKeyPools, keyStateSamples, replaceAllKeys, type KeyPools, type KeyStateSample } from './pools.js';
export { retryAfterHeaders } from './retry-after.js';
export { PROVIDER_NAMES, type KeyLogger, type ProviderKeys, type ProviderName } from './types.js';
export { watchKeysFile, type KeysFileWatcher, type WatchKeysFileOptions } from './watch-keys-file.js';
