/**
 * One upstream call read as it arrives, through undici's handler interface: the head, each
 * chunk of the body, its end or its failure, as calls on a listener. A caller that consumes the
 * answer at once (the cached routes' flight) skips what undici's request() adds per call: an
 * async resource, a Readable for the body and its async iterator, a promise, and an AbortSignal
 * with its listener (~25 µs of a miss's CPU, measured with bench/miss-path.ts).
 */
import type { IncomingHttpHeaders } from 'node:http';
import { util, type Dispatcher } from 'undici';

export interface UpstreamListener {
  /** The final head (1xx heads are skipped). */
  onHead(statusCode: number, headers: IncomingHttpHeaders): void;
  onChunk(chunk: Buffer): void;
  onEnd(): void;
  /**
   * The call failed, before or after its head (or a listener method threw: the call is then
   * aborted with that error). Nothing is called after onEnd or onFail.
   */
  onFail(error: unknown): void;
}

export class UpstreamCall implements Dispatcher.DispatchHandler {
  private abortConnection: ((reason?: Error) => void) | undefined;
  private reason: Error | undefined;
  private ended = false;

  constructor(private readonly listener: UpstreamListener) {}

  /** Stops the call wherever it is (queued, connecting, between retries, reading the body). */
  abort(reason: Error): void {
    if (this.ended || this.reason) return;
    this.reason = reason;
    this.abortConnection?.(reason);
  }

  onConnect(abort: (reason?: Error) => void): void {
    if (this.reason) {
      abort(this.reason);
      return;
    }
    this.abortConnection = abort;
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[]): boolean {
    if (statusCode < 200 || this.ended) return true;
    // A throw here is turned by undici into an abort of the request with it: onError follows.
    this.listener.onHead(statusCode, util.parseHeaders(rawHeaders) as IncomingHttpHeaders);
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (!this.ended) this.listener.onChunk(chunk);
    return true;
  }

  onComplete(): void {
    if (this.ended) return;
    this.ended = true;
    try {
      this.listener.onEnd();
    } catch (error) {
      this.listener.onFail(error);
    }
  }

  onError(error: Error): void {
    if (this.ended) return;
    this.ended = true;
    this.listener.onFail(error);
  }
}
