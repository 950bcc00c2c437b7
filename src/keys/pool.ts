import { keyId } from './key-id.js';
import type { ProviderName } from '../providers/provider-name.js';
import type { KeyLogger } from './types.js';

/** The key a request uses, from acquire() to its last report. Just data: it outlives replace(). */
export type KeyLease = { readonly key: string; readonly id: string };

/**
 * Why no key was handed out:
 * - `cooling`: no usable key is free now; the soonest frees up in `retryAfterMs` (answer 429).
 * - `disabled`: every key was rejected by the provider (401/403) since the last reload (503).
 * - `empty`: the provider has no key at all.
 * - `exhausted`: the request has already tried (excluded) every key that is usable now, and
 *   none is cooling; the caller answers with the last upstream result it got.
 */
export type KeyUnavailable =
  | { readonly unavailable: 'cooling'; readonly retryAfterMs: number }
  | { readonly unavailable: 'disabled' }
  | { readonly unavailable: 'empty' }
  | { readonly unavailable: 'exhausted' };

export type KeyCounts = { active: number; cooling: number; disabled: number };

export type KeyPoolOptions = {
  /** Cooldown after a 429 that gave no usable hint. */
  defaultCooldownMs?: number;
  /** Upper bound of any cooldown, so a wild hint cannot park a key for days. */
  maxCooldownMs?: number;
  /** Clock in ms; monotonic by default so wall-clock jumps do not shorten or stretch cooldowns. */
  now?: () => number;
  log?: KeyLogger;
};

const DEFAULT_COOLDOWN_MS = 10_000;
const DEFAULT_MAX_COOLDOWN_MS = 3_600_000;

type KeyState = { key: string; id: string; coolingUntil: number; disabled: boolean };

export function isUnavailable(result: KeyLease | KeyUnavailable): result is KeyUnavailable {
  return 'unavailable' in result;
}

/** The keys of one provider: round robin over active keys, cooldown on 429, disable on 401/403. */
export class KeyPool {
  readonly provider: ProviderName;
  private states: KeyState[] = [];
  private byKey = new Map<string, KeyState>();
  private cursor = 0;
  private readonly defaultCooldownMs: number;
  private readonly maxCooldownMs: number;
  private readonly now: () => number;
  private readonly log: KeyLogger | undefined;

  constructor(provider: ProviderName, keys: readonly string[], opts: KeyPoolOptions = {}) {
    this.provider = provider;
    this.defaultCooldownMs = opts.defaultCooldownMs ?? DEFAULT_COOLDOWN_MS;
    this.maxCooldownMs = opts.maxCooldownMs ?? DEFAULT_MAX_COOLDOWN_MS;
    this.now = opts.now ?? (() => performance.now());
    this.log = opts.log;
    this.replace(keys);
  }

  get size(): number {
    return this.states.length;
  }

  /** The next active key not in `exclude` (key ids this request already tried). */
  acquire(exclude?: ReadonlySet<string>): KeyLease | KeyUnavailable {
    const now = this.now();
    const count = this.states.length;
    for (let step = 0; step < count; step++) {
      const index = (this.cursor + step) % count;
      const state = this.states[index];
      if (state === undefined || !isActive(state, now) || exclude?.has(state.id)) continue;
      this.cursor = (index + 1) % count;
      return { key: state.key, id: state.id };
    }
    return this.whyUnavailable(now);
  }

  /** The provider answered 429 for this lease: cool the key for `cooldownMs` (default if undefined). */
  rateLimited(lease: KeyLease, cooldownMs: number | undefined): void {
    const state = this.current(lease);
    if (state === undefined) return;
    const wanted = cooldownMs === undefined || !Number.isFinite(cooldownMs) ? this.defaultCooldownMs : cooldownMs;
    const ms = Math.min(Math.max(0, Math.ceil(wanted)), this.maxCooldownMs);
    // Concurrent 429s on one key: keep the later end, a short hint must not cut a long one.
    state.coolingUntil = Math.max(state.coolingUntil, this.now() + ms);
    this.log?.info({ provider: this.provider, key: state.id, cooldownMs: ms }, 'provider key rate limited; cooling');
  }

  /** The provider answered 401/403 for this lease: disable the key until the keys are reloaded. */
  rejected(lease: KeyLease): void {
    const state = this.current(lease);
    if (state === undefined || state.disabled) return;
    state.disabled = true;
    this.log?.warn({ provider: this.provider, key: state.id }, 'provider key rejected; disabled until the keys are reloaded');
  }

  /**
   * Swap in a new key set at once. Keys that stay keep their cooldown (the provider's limit
   * still holds); a reload re-enables disabled keys (the operator may have fixed them).
   * Removed keys are never handed out again and reports on their leases are ignored.
   */
  replace(keys: readonly string[]): void {
    const next: KeyState[] = [];
    const byKey = new Map<string, KeyState>();
    for (const key of keys) {
      if (key === '' || byKey.has(key)) continue;
      const previous = this.byKey.get(key);
      const state: KeyState = { key, id: previous?.id ?? keyId(key), coolingUntil: previous?.coolingUntil ?? 0, disabled: false };
      next.push(state);
      byKey.set(key, state);
    }
    this.states = next;
    this.byKey = byKey;
    this.cursor = next.length === 0 ? 0 : this.cursor % next.length;
  }

  /** Ids of the keys in the pool, in rotation order (for reload logs). */
  ids(): string[] {
    return this.states.map((state) => state.id);
  }

  /** Cheap enough to call from a gauge's collect() on every scrape. */
  counts(): KeyCounts {
    const now = this.now();
    const counts: KeyCounts = { active: 0, cooling: 0, disabled: 0 };
    for (const state of this.states) {
      if (state.disabled) counts.disabled++;
      else if (state.coolingUntil > now) counts.cooling++;
      else counts.active++;
    }
    return counts;
  }

  /**
   * Ms until some key can be used: 0 when one is active now, the soonest end of a cooldown
   * otherwise, undefined when every key is disabled (or there is none). Hands nothing out.
   */
  usableInMs(): number | undefined {
    const now = this.now();
    let soonest: number | undefined;
    for (const state of this.states) {
      if (state.disabled) continue;
      const wait = Math.max(0, Math.ceil(state.coolingUntil - now));
      soonest = soonest === undefined ? wait : Math.min(soonest, wait);
    }
    return soonest;
  }

  private current(lease: KeyLease): KeyState | undefined {
    return this.byKey.get(lease.key);
  }

  private whyUnavailable(now: number): KeyUnavailable {
    if (this.states.length === 0) return { unavailable: 'empty' };
    let soonest = Infinity;
    let anyEnabled = false;
    for (const state of this.states) {
      if (state.disabled) continue;
      anyEnabled = true;
      if (state.coolingUntil > now) soonest = Math.min(soonest, state.coolingUntil - now);
    }
    if (!anyEnabled) return { unavailable: 'disabled' };
    if (soonest === Infinity) return { unavailable: 'exhausted' };
    return { unavailable: 'cooling', retryAfterMs: Math.max(1, Math.ceil(soonest)) };
  }
}

function isActive(state: KeyState, now: number): boolean {
  return !state.disabled && state.coolingUntil <= now;
}
