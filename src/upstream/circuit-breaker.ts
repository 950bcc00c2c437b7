/**
 * A circuit breaker per provider, so a provider that keeps failing is skipped at once instead
 * of every request waiting for its own timeout before it falls back. Closed: requests go. After
 * `failureThreshold` failures in a row it opens for `openMs`; once that has passed, one request
 * (the half-open probe) goes: an answer closes it, a failure opens it again for twice as long,
 * up to `maxOpenMs`. A probe that never reports (its clients all left) frees the slot after the
 * open time again, so the breaker can never stay shut for good.
 *
 * A failure is the provider not answering (unreachable, a timeout, a 5xx after the retries, a
 * broken answer); an answer of any status, a client error included, is a success. Keys that are
 * all cooling or rejected are the key pool's business (it refuses at once anyway) and count as
 * neither.
 */
import { PROVIDER_NAMES, type ProviderName } from '../providers/provider-name.js';

export type BreakerState = 'closed' | 'open' | 'half-open';

export interface BreakerOptions {
  failureThreshold: number;
  openMs: number;
  maxOpenMs: number;
}

export const DEFAULT_BREAKER_OPTIONS: BreakerOptions = { failureThreshold: 3, openMs: 5_000, maxOpenMs: 60_000 };

export class CircuitBreaker {
  private state: BreakerState = 'closed';
  private failures = 0;
  private openForMs: number;
  private openUntil = 0;
  /** When the half-open probe was let through (0: none out). */
  private probeAt = 0;

  constructor(
    private readonly options: BreakerOptions,
    /** Told each time the provider goes up (closed) or down (open). */
    private readonly onChange: (up: boolean) => void = () => {},
    private readonly now: () => number = Date.now,
  ) {
    this.openForMs = options.openMs;
  }

  /** The state as a reader sees it now (an open breaker whose time has passed reads half-open). */
  get current(): BreakerState {
    return this.state === 'open' && this.now() >= this.openUntil ? 'half-open' : this.state;
  }

  /** Milliseconds until an open breaker lets its probe through (0 otherwise). */
  get retryInMs(): number {
    return this.state === 'open' ? Math.max(0, this.openUntil - this.now()) : 0;
  }

  /** May a request go to the provider now? True once for the half-open probe. */
  tryPass(): boolean {
    if (this.state === 'closed') return true;
    const now = this.now();
    if (this.state === 'open') {
      if (now < this.openUntil) return false;
      this.state = 'half-open';
      this.probeAt = now;
      return true;
    }
    if (now - this.probeAt < this.openForMs) return false;
    this.probeAt = now;
    return true;
  }

  success(): void {
    const wasUp = this.state === 'closed';
    this.state = 'closed';
    this.failures = 0;
    this.openForMs = this.options.openMs;
    this.probeAt = 0;
    if (!wasUp) this.onChange(true);
  }

  failure(): void {
    if (this.state === 'half-open') {
      this.openForMs = Math.min(this.openForMs * 2, this.options.maxOpenMs);
      this.open();
      return;
    }
    if (this.state === 'open') return;
    this.failures++;
    if (this.failures >= this.options.failureThreshold) this.open();
  }

  private open(): void {
    const wasUp = this.state === 'closed';
    this.state = 'open';
    this.openUntil = this.now() + this.openForMs;
    this.probeAt = 0;
    if (wasUp) this.onChange(false);
  }
}

/** One breaker per provider. */
export class ProviderHealth {
  readonly breakers: Readonly<Record<ProviderName, CircuitBreaker>>;

  constructor(options: BreakerOptions = DEFAULT_BREAKER_OPTIONS, onChange: (provider: ProviderName, up: boolean) => void = () => {}) {
    this.breakers = Object.fromEntries(PROVIDER_NAMES.map((name) => [name, new CircuitBreaker(options, (up) => onChange(name, up))])) as Record<
      ProviderName,
      CircuitBreaker
    >;
  }

  /** For /readyz: each provider's state, and when an open one is tried again. */
  describe(): Record<ProviderName, { state: BreakerState; retryInMs?: number }> {
    return Object.fromEntries(
      PROVIDER_NAMES.map((name) => {
        const breaker = this.breakers[name];
        const state = breaker.current;
        return [name, state === 'open' ? { state, retryInMs: breaker.retryInMs } : { state }];
      }),
    ) as Record<ProviderName, { state: BreakerState; retryInMs?: number }>;
  }
}
