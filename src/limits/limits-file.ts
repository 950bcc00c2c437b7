/**
 * LIMITS_FILE: per-user overrides of the budgets and rate limits,
 * `{"users": {"<id>": {"dailyUsd": 5, "monthlyUsd": 50, "rpm": 60, "tpm": 100000}}}`.
 * A field left out takes the variable's value; `null` lifts that limit for the user.
 * Validated strictly: a file with a mistake is refused whole, never half applied.
 */
import { readConfigFileText } from '../reload/read-config-file.js';
import { MAX_USD } from './limits-config.js';

/** One user's overrides: a number replaces the default, null removes the limit, absent keeps the default. */
export interface UserLimitOverrides {
  dailyUsd?: number | null;
  monthlyUsd?: number | null;
  rpm?: number | null;
  tpm?: number | null;
}

export type LimitOverrides = ReadonlyMap<string, Readonly<UserLimitOverrides>>;

export class LimitsFileError extends Error {
  override readonly name = 'LimitsFileError';
}

const FIELDS: Readonly<Record<keyof UserLimitOverrides, 'usd' | 'count'>> = { dailyUsd: 'usd', monthlyUsd: 'usd', rpm: 'count', tpm: 'count' };
/** A user id is what X-OpenWebUI-User-Id may carry; far longer ones are a mistake in the file. */
const MAX_USER_ID_LENGTH = 512;

export async function readLimitsFile(path: string): Promise<LimitOverrides> {
  return parseLimitsFile(path, await readConfigFileText('LIMITS_FILE', path, LimitsFileError));
}

export function parseLimitsFile(path: string, text: string): LimitOverrides {
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch (error) {
    throw new LimitsFileError(`LIMITS_FILE ${path}: not valid JSON (${error instanceof Error ? error.message : 'parse error'})`);
  }
  if (!isObject(document)) throw new LimitsFileError(`LIMITS_FILE ${path}: must be a JSON object like {"users":{"<id>":{"dailyUsd":5}}}`);
  const extra = Object.keys(document).find((field) => field !== 'users');
  if (extra !== undefined) throw new LimitsFileError(`LIMITS_FILE ${path}: unknown field "${extra.slice(0, 40)}"; allowed: users`);
  const users = document.users ?? {};
  if (!isObject(users)) throw new LimitsFileError(`LIMITS_FILE ${path}: "users" must be an object of user id → limits`);
  const overrides = new Map<string, UserLimitOverrides>();
  for (const [id, limits] of Object.entries(users)) {
    const where = `LIMITS_FILE ${path}: users["${id.slice(0, 60)}"]`;
    if (id === '' || id.length > MAX_USER_ID_LENGTH) throw new LimitsFileError(`${where}: a user id must have 1 to ${MAX_USER_ID_LENGTH} characters`);
    if (!isObject(limits)) throw new LimitsFileError(`${where} must be an object such as {"dailyUsd":5,"rpm":60}`);
    const user: UserLimitOverrides = {};
    for (const [field, raw] of Object.entries(limits)) {
      const kind = FIELDS[field as keyof UserLimitOverrides];
      if (kind === undefined) throw new LimitsFileError(`${where}: unknown field "${field.slice(0, 40)}"; allowed: ${Object.keys(FIELDS).join(', ')}`);
      user[field as keyof UserLimitOverrides] = limitValue(`${where}.${field}`, raw, kind);
    }
    overrides.set(id, user);
  }
  return overrides;
}

function limitValue(where: string, raw: unknown, kind: 'usd' | 'count'): number | null {
  if (raw === null) return null;
  if (typeof raw !== 'number' || !Number.isFinite(raw) || raw < 0) throw new LimitsFileError(`${where} must be a number of at least 0, or null for no limit`);
  if (kind === 'count' && !Number.isSafeInteger(raw)) throw new LimitsFileError(`${where} must be a whole number`);
  if (kind === 'usd' && raw > MAX_USD) throw new LimitsFileError(`${where} must be at most ${MAX_USD} USD`);
  return raw;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
