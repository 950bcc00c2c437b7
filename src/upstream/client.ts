/**
 * Calls one provider: picks a key from its pool, sends through the provider's undici Pool,
 * and retries before the first byte reaches the client — on another key after a 429 or a
 * 401/403, and with jittered backoff after a connection error or a 5xx. What it returns has
 * not been read yet, so a caller can stream it. It never returns a 401, 403 or 429: when no
 * key is left to try, the gateway's own error is thrown (provider-refusal.ts).
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Pool } from 'undici';
import type { Logger } from 'pino';
import { errors } from '../errors.js';
import { cooldownFromResponse } from '../keys/cooldown.js';
import { isUnavailable, type KeyLease, type KeyPool } from '../keys/pool.js';
import type { Provider } from '../providers/index.js';
import { backoff } from './backoff.js';
import { refusalError } from './provider-refusal.js';
import { isAbortError, isRetryableTransportError, transportErrorToGatewayError } from './failures.js';

export type UpstreamBody = Awaited<ReturnType<Pool['request']>>['body'];

export interface UpstreamRequest {
  method: 'GET' | 'POST';
  /** Path below the provider's base URL, e.g. /chat/completions */
  path: string;
  body?: Buffer | string;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** Shared by every send() of one client request (see retryBrokenAnswer); a fresh one by default. */
  retries?: RetryBudget;
  /** Called as each attempt is sent to the provider (not when no key could be had). */
  onSend?: () => void;
}

/** Retries left for one client request, across every upstream call made for it. */
export interface RetryBudget {
  left: number;
}

export interface UpstreamResponse {
  statusCode: number;
  headers: IncomingHttpHeaders;
  body: UpstreamBody;
  keyId: string;
  /** When the request that got this answer was sent (performance.now()). */
  startedAt: number;
}

export interface UpstreamObserver {
  /** An attempt ended with this status (or 0 for a transport failure) after `seconds`. */
  attempt(provider: string, status: number, seconds: number): void;
}

const ERROR_BODY_LIMIT = 64 * 1024;

export class UpstreamClient {
  constructor(
    readonly provider: Provider,
    private readonly pool: Pool,
    private readonly keys: KeyPool,
    private readonly maxRetries: number,
    private readonly log: Logger,
    private readonly observer?: UpstreamObserver,
  ) {}

  async send(request: UpstreamRequest): Promise<UpstreamResponse> {
    const tried = new Set<string>();
    const budget = request.retries ?? this.retryBudget();
    let attempt = 0;
    // The provider's last refusal of a key (401, 403, 429), for when no key is left to try. Only
    // its status and hint are kept: its body never reaches a client (it may quote the key).
    let lastRefusal: { status: number; cooldownMs: number | undefined } | undefined;
    for (;;) {
      const lease = this.keys.acquire(tried);
      if (isUnavailable(lease)) {
        if (lease.unavailable === 'exhausted' && lastRefusal) throw refusalError(this.provider.name, lastRefusal.status, this.keys, lastRefusal.cooldownMs);
        if (lease.unavailable === 'cooling') throw errors.allKeysCooling(this.provider.name, lease.retryAfterMs);
        if (lease.unavailable === 'disabled') throw errors.allKeysRejected(this.provider.name);
        if (lease.unavailable === 'empty') throw errors.noProviderKeys(this.provider.name);
        throw errors.upstreamUnreachable(this.provider.name);
      }
      attempt++;
      const startedAt = performance.now();
      let response: UpstreamResponse;
      request.onSend?.();
      try {
        response = await this.attempt(request, lease, startedAt);
      } catch (error) {
        // The caller giving up (its clients left) is no upstream failure; a timeout signal is.
        const callerGaveUp = request.signal?.aborted === true && (request.signal.reason as { name?: unknown } | undefined)?.name !== 'TimeoutError';
        if (!callerGaveUp) this.observer?.attempt(this.provider.name, 0, (performance.now() - startedAt) / 1000);
        if (request.signal?.aborted || isAbortError(error)) throw error;
        if (isRetryableTransportError(error) && budget.left > 0) {
          budget.left--;
          this.log.warn({ provider: this.provider.name, key: lease.id, attempt, err: describe(error) }, 'upstream connection failed; retrying');
          await backoff(attempt, request.signal);
          continue;
        }
        throw transportErrorToGatewayError(this.provider.name, error);
      }
      const status = response.statusCode;
      this.observer?.attempt(this.provider.name, status, (performance.now() - startedAt) / 1000);
      if (status === 429) {
        const body = await readBounded(response.body);
        const cooldownMs = cooldownFromResponse(response.headers, body, Date.now());
        this.keys.rateLimited(lease, cooldownMs);
        tried.add(lease.id);
        lastRefusal = { status, cooldownMs };
        continue;
      }
      if (status === 401 || status === 403) {
        await response.body.dump().catch(() => undefined);
        this.keys.rejected(lease);
        tried.add(lease.id);
        lastRefusal = { status, cooldownMs: undefined };
        continue;
      }
      if (status >= 500 && budget.left > 0) {
        budget.left--;
        await response.body.dump().catch(() => undefined);
        this.log.warn({ provider: this.provider.name, key: lease.id, attempt, status }, 'upstream server error; retrying');
        await backoff(attempt, request.signal);
        continue;
      }
      return response;
    }
  }

  retryBudget(): RetryBudget {
    return { left: this.maxRetries };
  }

  /**
   * A 2xx answer whose body broke (connection reset, socket closed) before any of it reached a
   * client may be asked again, from the same budget and after the same jittered backoff as a
   * failed connection. True when the caller should send() again (with `budget`).
   */
  async retryBrokenAnswer(error: unknown, budget: RetryBudget, keyId: string, signal: AbortSignal | undefined): Promise<boolean> {
    if (signal?.aborted || isAbortError(error) || !isRetryableTransportError(error) || budget.left <= 0) return false;
    budget.left--;
    this.log.warn({ provider: this.provider.name, key: keyId, err: describe(error) }, 'upstream answer broke before the first byte reached the client; retrying');
    await backoff(this.maxRetries - budget.left, signal);
    return !signal?.aborted;
  }

  private async attempt(request: UpstreamRequest, lease: KeyLease, startedAt: number): Promise<UpstreamResponse> {
    const headers: Record<string, string> = {
      ...request.headers,
      authorization: `Bearer ${lease.key}`,
    };
    if (request.body !== undefined) headers['content-type'] ??= 'application/json';
    const response = await this.pool.request({
      method: request.method,
      path: this.provider.basePath + request.path,
      headers,
      body: request.body ?? null,
      signal: request.signal ?? null,
    });
    return { statusCode: response.statusCode, headers: response.headers, body: response.body, keyId: lease.id, startedAt };
  }
}

async function readBounded(body: UpstreamBody): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    const buffer = chunk as Buffer;
    size += buffer.length;
    if (size > ERROR_BODY_LIMIT) break;
    chunks.push(buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function describe(error: unknown): { code?: string; message?: string } {
  const e = error as { code?: string; message?: string } | null;
  return { code: e?.code, message: e?.message };
}
