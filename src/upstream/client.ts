/**
 * Calls one provider through its policy dispatcher (upstream-policy.ts: key lease, rotation,
 * cooldown, retries, counting). What it returns has not been read yet, so a caller can stream
 * it. It never returns a 401, 403 or 429: when no key is left to try, the gateway's own error
 * is thrown (provider-refusal.ts).
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Dispatcher } from 'undici';
import type { Logger } from 'pino';
import { GatewayError } from '../errors.js';
import type { Provider } from '../providers/index.js';
import { RetryBudget, wait } from './backoff.js';
import { isAbortError, transportErrorToGatewayError } from './failures.js';
import type { UpstreamCall } from './upstream-call.js';
import type { PolicyRequestOptions } from './upstream-policy.js';

export type UpstreamBody = Dispatcher.ResponseData['body'];

export interface UpstreamRequest extends PolicyRequestOptions {
  method: 'GET' | 'POST';
  /** Path below the provider's base URL, e.g. /chat/completions */
  path: string;
  body?: Buffer | string;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

export interface UpstreamResponse {
  statusCode: number;
  headers: IncomingHttpHeaders;
  body: UpstreamBody;
}

export { RetryBudget };

export class UpstreamClient {
  constructor(
    readonly provider: Provider,
    /** The provider's Pool composed with the upstream policy. */
    private readonly dispatcher: Dispatcher,
    private readonly maxRetries: number,
    private readonly log: Logger,
  ) {}

  async send(request: UpstreamRequest): Promise<UpstreamResponse> {
    const options: Dispatcher.RequestOptions & PolicyRequestOptions = { ...this.optionsOf(request), signal: request.signal ?? null };
    try {
      const response = await this.dispatcher.request(options);
      return { statusCode: response.statusCode, headers: response.headers, body: response.body };
    } catch (error) {
      if (error instanceof GatewayError || request.signal?.aborted || isAbortError(error)) throw error;
      throw transportErrorToGatewayError(this.provider.name, error);
    }
  }

  /**
   * send() for a caller that reads the answer as it arrives (upstream-call.ts): the same request,
   * through the same policy; its outcome, a failure included, reaches `call`'s listener only.
   */
  dispatch(request: Omit<UpstreamRequest, 'signal'>, call: UpstreamCall): void {
    try {
      this.dispatcher.dispatch(this.optionsOf(request), call);
    } catch (error) {
      // Options undici refuses: request() would have rejected with the same error.
      call.onError(error as Error);
    }
  }

  private optionsOf(request: Omit<UpstreamRequest, 'signal'>): Dispatcher.DispatchOptions & PolicyRequestOptions {
    return {
      method: request.method,
      path: this.provider.basePath + request.path,
      headers:
        request.body === undefined || request.headers?.['content-type'] !== undefined
          ? request.headers
          : { ...request.headers, 'content-type': 'application/json' },
      body: request.body ?? null,
      retries: request.retries,
      onSend: request.onSend,
    };
  }

  retryBudget(): RetryBudget {
    return new RetryBudget(this.maxRetries);
  }

  /**
   * A 2xx answer whose body broke (connection reset, socket closed) before any of it reached a
   * client may be asked again: the policy's rule for a failed connection, from the same budget,
   * after the same backoff. True when the caller should send() again (with `budget`).
   */
  async retryBrokenAnswer(error: unknown, budget: RetryBudget, signal: AbortSignal | undefined): Promise<boolean> {
    if (signal?.aborted) return false;
    const delay = budget.afterTransportError(error);
    if (delay === undefined) return false;
    this.log.warn(
      { provider: this.provider.name, key: budget.keyId, err: describe(error) },
      'upstream answer broke before the first byte reached the client; retrying',
    );
    await wait(delay, signal);
    return !signal?.aborted;
  }
}

function describe(error: unknown): { code?: string; message?: string } {
  const e = error as { code?: string; message?: string } | null;
  return { code: e?.code, message: e?.message };
}
