/**
 * The one upstream policy, as an undici interceptor composed onto a provider's Pool: every
 * request to a provider (the cached routes, the model lists, the passthrough proxy) leases a
 * key, is sent with it, and is tried again before its response head is handed on: on another
 * key after a 429 (the key cools, for as long as the provider said) or a 401/403 (the key is
 * disabled), and after jittered backoff, from a bounded budget, after a connection failure or a
 * 5xx. A 401, 403 or 429 is never handed on: when no key is left to try, the request fails with
 * the gateway's own error (provider-refusal.ts). Each attempt's outcome is counted here, and
 * only here.
 *
 * It speaks undici's callback handler interface (onConnect/onHeaders/onData/onComplete/onError),
 * the one `request()` and reply-from hand to a dispatcher: response headers pass through as raw
 * bytes, parsed only for a 429's hints, so a request costs no more than through the Pool alone.
 */
import type { Duplex } from 'node:stream';
import type { Dispatcher } from 'undici';
import { util } from 'undici';
import type { Logger } from 'pino';
import { errors, type GatewayError } from '../errors.js';
import { cooldownFromResponse } from '../keys/cooldown.js';
import { isUnavailable, type KeyLease, type KeyPool } from '../keys/pool.js';
import type { ProviderName } from '../providers/provider-name.js';
import { RetryBudget } from './backoff.js';
import { decodedErrorBody } from './error-body.js';
import { refusalError } from './provider-refusal.js';

export interface UpstreamObserver {
  /** An attempt ended with this status (or 0 for a transport failure) after `seconds`. */
  attempt(provider: ProviderName, status: number, seconds: number): void;
}

export interface UpstreamPolicyOptions {
  provider: ProviderName;
  keys: KeyPool;
  maxRetries: number;
  log: Logger;
  observer: UpstreamObserver | undefined;
}

/** What a caller may add to a request's dispatch options (undici passes them through untouched). */
export interface PolicyRequestOptions {
  /** Shared by every call made for one client request; a fresh one by default. */
  retries?: RetryBudget;
  /** Called as each attempt is sent to the provider (not when no key could be had). */
  onSend?: () => void;
}

type DispatchOptions = Dispatcher.DispatchOptions & PolicyRequestOptions;
type Handler = Dispatcher.DispatchHandler;
type Dispatch = Dispatcher.Dispatch;
type Headers = Record<string, string | string[] | undefined>;

/** A refused or retried answer's body is read up to this (a 429's hint), then dropped. */
const DRAIN_LIMIT = 64 * 1024;

export function upstreamPolicy(options: UpstreamPolicyOptions): Dispatcher.DispatchInterceptor {
  return (dispatch) => (opts, handler) => new PolicyHandler(options, dispatch, opts as DispatchOptions, handler).attempt();
}

/**
 * What the answer being read (not handed on) is for: a 401/403/429, the next key once its body
 * is read; a 5xx, the same request again after the backoff `retryInMs`.
 */
type Drain = 'none' | 'refused' | 'retry';

class PolicyHandler implements Handler {
  private lease: KeyLease | undefined;
  private tried: Set<string> | undefined;
  private attemptAbort: ((reason?: Error) => void) | undefined;
  private connected = false;
  /** The head was handed on: from here on everything goes to the caller's handler. */
  private passing = false;
  private done = false;
  /** Set when the caller aborted the request. */
  private reason: Error | undefined;
  private timer: NodeJS.Timeout | undefined;
  private startedAt = 0;
  private drain: Drain = 'none';
  private refusal: { status: number; headers: Buffer[]; cooldownMs: number | undefined } | undefined;
  private drained: Buffer[] | undefined;
  private drainedBytes = 0;
  private retryInMs = 0;
  private retries: RetryBudget | undefined;

  constructor(
    private readonly policy: UpstreamPolicyOptions,
    private readonly dispatch: Dispatch,
    private readonly opts: DispatchOptions,
    private readonly handler: Handler,
  ) {
    this.retries = opts.retries;
  }

  attempt(): boolean {
    if (this.reason) return this.finish(this.reason);
    const lease = this.policy.keys.acquire(this.tried);
    if (isUnavailable(lease)) return this.finish(this.noKeyError(lease.unavailable === 'cooling' ? lease.retryAfterMs : undefined, lease.unavailable));
    this.lease = lease;
    if (this.retries) this.retries.keyId = lease.id;
    this.drain = 'none';
    this.opts.onSend?.();
    this.startedAt = performance.now();
    return this.dispatch({ ...this.opts, headers: withKey(this.opts.headers, lease.key) }, this);
  }

  onConnect(abort: (err?: Error) => void, context?: object): void {
    if (this.reason) {
      abort(this.reason);
      return;
    }
    this.attemptAbort = abort;
    if (this.connected) return;
    this.connected = true;
    // The caller's abort must reach whichever attempt is running, or cut a backoff short.
    (this.handler.onConnect as ((abort: (err?: Error) => void, context?: object) => void) | undefined)?.call(
      this.handler,
      (reason) => this.abortFromCaller(reason),
      context,
    );
  }

  onResponseStarted(): void {
    if (this.passing) this.handler.onResponseStarted?.();
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    if (statusCode < 200) return this.handler.onHeaders?.(statusCode, rawHeaders, resume, statusText) ?? true;
    this.observe(statusCode);
    if (statusCode === 429 || statusCode === 401 || statusCode === 403) {
      const lease = this.lease as KeyLease;
      (this.tried ??= new Set()).add(lease.id);
      if (statusCode !== 429) this.policy.keys.rejected(lease);
      this.refusal = { status: statusCode, headers: rawHeaders, cooldownMs: undefined };
      this.startDrain('refused', statusCode === 429);
      return true;
    }
    if (statusCode >= 500 && this.canResend()) {
      const delay = this.budget().take();
      if (delay !== undefined) {
        this.policy.log.warn({ provider: this.policy.provider, key: this.lease?.id, status: statusCode }, 'upstream server error; retrying');
        this.retryInMs = delay;
        this.startDrain('retry', false);
        return true;
      }
    }
    this.passing = true;
    return this.handler.onHeaders?.(statusCode, rawHeaders, resume, statusText) ?? true;
  }

  onData(chunk: Buffer): boolean {
    if (this.passing) return this.handler.onData?.(chunk) ?? true;
    this.drainedBytes += chunk.length;
    if (this.drainedBytes > DRAIN_LIMIT) {
      // Not worth reading on: the connection is given up, the next attempt goes on another.
      this.drained = undefined;
      this.attemptAbort?.(new Error('upstream answer dropped'));
    } else {
      this.drained?.push(chunk);
    }
    return true;
  }

  onComplete(trailers: string[] | null): void {
    if (this.passing) {
      this.handler.onComplete?.(trailers);
      return;
    }
    this.afterDrain();
  }

  onError(error: Error): void {
    if (this.done) return;
    if (this.passing) {
      this.done = true;
      this.handler.onError?.(error);
      return;
    }
    if (this.reason) {
      this.finish(this.reason);
      return;
    }
    // A refused or retried answer whose body broke or was given up: it was going to be dropped.
    if (this.drain !== 'none') {
      this.afterDrain();
      return;
    }
    this.observe(0);
    const delay = this.canResend() ? this.budget().afterTransportError(error) : undefined;
    if (delay === undefined) {
      this.finish(error);
      return;
    }
    this.policy.log.warn({ provider: this.policy.provider, key: this.lease?.id, err: describe(error) }, 'upstream connection failed; retrying');
    this.retryAfter(delay);
  }

  onUpgrade(statusCode: number, headers: Buffer[] | string[] | null, socket: Duplex): void {
    this.handler.onUpgrade?.(statusCode, headers, socket);
  }

  private startDrain(drain: Drain, keepBody: boolean): void {
    this.drain = drain;
    this.drained = keepBody ? [] : undefined;
    this.drainedBytes = 0;
  }

  private afterDrain(): void {
    const drain = this.drain;
    this.drain = 'none';
    if (this.reason) {
      this.finish(this.reason);
      return;
    }
    if (drain === 'retry') {
      this.retryAfter(this.retryInMs);
      return;
    }
    const refusal = this.refusal;
    if (refusal === undefined) return;
    if (refusal.status === 429) {
      const headers = util.parseHeaders(refusal.headers) as Headers;
      refusal.cooldownMs = cooldownFromResponse(headers, this.drainedText(headers), Date.now());
      this.policy.keys.rateLimited(this.lease as KeyLease, refusal.cooldownMs);
    }
    this.drained = undefined;
    if (!this.canResend()) {
      this.finish(refusalError(this.policy.provider, refusal.status, this.policy.keys, refusal.cooldownMs));
      return;
    }
    // Not from inside the connection's own completion callback: the next attempt starts afresh.
    queueMicrotask(() => this.attempt());
  }

  /** The 429's body as text for its "try again in" hint; a compressed one (passthrough) decoded. */
  private drainedText(headers: Headers): string | undefined {
    if (this.drained === undefined) return undefined;
    const encoding = headers['content-encoding'];
    const body = decodedErrorBody(Buffer.concat(this.drained), Array.isArray(encoding) ? encoding.join(',') : encoding);
    return body?.toString('utf8');
  }

  private retryAfter(ms: number): void {
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.attempt();
    }, ms);
  }

  private abortFromCaller(reason: Error | undefined): void {
    this.reason = reason ?? new Error('request aborted');
    if (this.done) return;
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
      this.finish(this.reason);
      return;
    }
    this.attemptAbort?.(this.reason);
  }

  /** Why no key could be had: the last refusal when every usable key was tried. */
  private noKeyError(retryAfterMs: number | undefined, why: 'cooling' | 'disabled' | 'empty' | 'exhausted'): GatewayError {
    const { provider, keys } = this.policy;
    const refusal = this.refusal;
    if (why === 'exhausted' && refusal) return refusalError(provider, refusal.status, keys, refusal.cooldownMs);
    if (why === 'cooling') return errors.allKeysCooling(provider, retryAfterMs ?? 1_000);
    if (why === 'disabled') return errors.allKeysRejected(provider);
    if (why === 'empty') return errors.noProviderKeys(provider);
    return errors.upstreamUnreachable(provider);
  }

  private finish(error: Error): boolean {
    if (!this.done) {
      this.done = true;
      this.handler.onError?.(error);
    }
    return true;
  }

  private observe(status: number): void {
    // The caller giving up (its clients left) is no upstream failure; a timeout signal is.
    if (status === 0 && this.reason !== undefined && this.reason.name !== 'TimeoutError') return;
    this.policy.observer?.attempt(this.policy.provider, status, (performance.now() - this.startedAt) / 1000);
  }

  private budget(): RetryBudget {
    return (this.retries ??= new RetryBudget(this.policy.maxRetries));
  }

  /**
   * A body held in memory can be sent again; a stream only while nothing of it was read: a
   * streamed upload is never retried once consumed.
   */
  private canResend(): boolean {
    const body = this.opts.body;
    if (body === undefined || body === null || typeof body === 'string' || body instanceof Uint8Array) return true;
    const stream = body as { readableDidRead?: boolean; destroyed?: boolean };
    return stream.readableDidRead === false && stream.destroyed !== true;
  }
}

/**
 * The request's headers with the provider key first: whatever follows cannot push it out of a
 * server's header count limit, and a caller's own Authorization can never replace it.
 */
function withKey(headers: DispatchOptions['headers'], key: string): Headers | string[] {
  const authorization = `Bearer ${key}`;
  if (headers === undefined || headers === null) return { authorization };
  if (Array.isArray(headers)) {
    const out = ['authorization', authorization];
    for (let i = 0; i + 1 < headers.length; i += 2) {
      if (String(headers[i]).toLowerCase() !== 'authorization') out.push(String(headers[i]), String(headers[i + 1]));
    }
    return out;
  }
  if (typeof (headers as Iterable<unknown>)[Symbol.iterator] === 'function') {
    const out: Headers = { authorization };
    for (const [name, value] of headers as Iterable<[string, string | string[] | undefined]>) {
      if (name.toLowerCase() !== 'authorization') out[name] = value;
    }
    return out;
  }
  const out: Headers = { authorization, ...(headers as Headers) };
  out.authorization = authorization;
  return out;
}

function describe(error: unknown): { code?: string; message?: string } {
  const e = error as { code?: string; message?: string } | null;
  return { code: e?.code, message: e?.message };
}
