/**
 * One upstream call and everyone waiting on it. The first request starts it; identical ones
 * join it (coalescing). Streamed bytes are fanned out to every subscriber as they arrive, and
 * a subscriber that joins late is first given every event already sent. The call is aborted
 * as soon as no subscriber is left, so no tokens are burned for nobody.
 */
import { GatewayError, errors } from '../errors.js';
import type { IncomingHttpHeaders } from 'node:http';
import type { RetryBudget, UpstreamClient } from '../upstream/client.js';
import { UpstreamCall, type UpstreamListener } from '../upstream/upstream-call.js';
import { transportErrorToGatewayError, isAbortError } from '../upstream/failures.js';
import { clientErrorBody } from '../upstream/error-body.js';
import { forwardedResponseHeaders, type ForwardedHeaders } from '../upstream/response-headers.js';
import type { PreparedRequest } from './prepare.js';
import type { CacheEntry } from '../cache/entry.js';
import { entryFromStream } from '../cache/entry-forms.js';
import { CACHED_ENDPOINT_PATHS } from '../endpoints.js';
import { asCompletion, isUsageOnlyChunk, type Completion, type Usage } from '../openai/completion-types.js';
import type { SseEvent } from '../openai/sse-parser.js';
import { streamRecorderFor, type StreamRecording } from '../openai/stream-recording.js';
import { responseJsonFacts } from '../openai/responses-json.js';
import { FanOut } from './fan-out.js';
import type { Follower } from './follow-flight.js';

export interface FlightHead {
  statusCode: number;
  headers: ForwardedHeaders;
}

export interface StreamEvent {
  /** The event as the upstream sent it, framed (`data: …\n\n`), ready to forward. */
  data: string;
  /** The usage-only chunk (choices empty): only clients that asked for usage get it. */
  usageOnly: boolean;
}

export type FlightOutcome =
  | {
      kind: 'completed';
      head: FlightHead;
      /** JSON flights: the body bytes as the upstream sent them. */
      json: Buffer | undefined;
      /** The answer as an object, when it has a completion's shape (embeddings do not). */
      completion: Completion | undefined;
      usage: Usage | undefined;
      /** What to store: undefined when the answer must not be cached (incomplete, errored). */
      entry: CacheEntry | undefined;
    }
  | { kind: 'upstream-error'; head: FlightHead; body: Buffer }
  | { kind: 'failed'; error: GatewayError; afterHead: boolean };

/** Where an attempt goes: a provider's client and the request as that provider gets it. */
export interface FlightTarget {
  client: UpstreamClient;
  request: PreparedRequest;
}

/**
 * Another model to ask when the first cannot answer (pipeline/fallback.ts decides which and
 * when). Asked only while nothing has reached a client and someone still waits.
 */
export interface FlightFallback {
  /** Where to send the first attempt instead of the request's own provider (known to be down); undefined: as asked. */
  first(request: PreparedRequest): FlightTarget | undefined;
  /**
   * An attempt ended with `outcome` (told of every outcome, to keep the providers' health);
   * `afterHead`: a stream's first event had left already. The target to ask next, or undefined
   * to end with this outcome.
   */
  next(outcome: FlightOutcome, afterHead: boolean, request: PreparedRequest): FlightTarget | undefined | Promise<FlightTarget | undefined>;
}

export interface FlightSubscriber {
  /** Stream flights: the 2xx head, before the first event. */
  onStreamStart?(head: FlightHead): void;
  onEvent?(event: StreamEvent): void;
  onDone(outcome: FlightOutcome): void;
  /** Receives everything but does not keep the call going: it stops once only passive ones are left. */
  passive?: boolean;
  /** The client request it answers (set for clients, not for the gateway's own listeners): who could pay for a new call. */
  client?: Follower;
}

export class Flight implements UpstreamListener {
  private readonly fanOut = new FanOut();
  readonly settled = this.fanOut.settled;
  /** The attempt under way (a 2xx whose body broke before anything was relayed is asked again). */
  private call: UpstreamCall | undefined;
  private aborted = false;
  /** Set while waiting to ask again: an abort cuts the wait short. */
  private retryWait: AbortController | undefined;
  /** The current attempt's answer: its head once it came, then its body as it arrives. */
  private answer: FlightHead | undefined;
  private reading: 'error' | 'json' | 'stream' = 'json';
  private chunks: Buffer[] = [];
  private recorder: StreamRecording | undefined;
  private upstreamJson = '';
  private fellBackTo = false;
  /** Set while the fallback decides where to go next: the flight is not over. */
  private choosing = false;
  private retries: RetryBudget;

  constructor(
    private client: UpstreamClient,
    private request: PreparedRequest,
    private readonly forwardHeaders: Record<string, string>,
    /** Called as each upstream attempt is sent (not when no key could be had). */
    private readonly onUpstreamCall?: () => void,
    private readonly fallback?: FlightFallback,
  ) {
    this.retries = client.retryBudget();
  }

  /** The request as sent to the provider answering now (a fallback's once the flight fell back). */
  get current(): PreparedRequest {
    return this.request;
  }

  /** True once another model than the one asked for was asked: its answer is not the asked model's. */
  get fellBack(): boolean {
    return this.fellBackTo;
  }

  /** How the flight ended; undefined while it is still running. */
  get result(): FlightOutcome | undefined {
    return this.fanOut.outcome;
  }

  subscribe(subscriber: FlightSubscriber): void {
    this.fanOut.join(subscriber);
  }

  /** A subscriber's client went away; with nobody left, the upstream call stops at once. */
  unsubscribe(subscriber: FlightSubscriber): void {
    if (!this.fanOut.leave(subscriber)) return;
    if (!this.fanOut.outcome && !this.aborted && !this.fanOut.hasActiveSubscriber) {
      this.aborted = true;
      // The reason an AbortController gives: failures.ts's isAbortError knows it.
      this.call?.abort(new DOMException('This operation was aborted', 'AbortError'));
      this.retryWait?.abort();
    }
  }

  /** Sends the upstream call; its outcome reaches the subscribers (who may subscribe before). */
  start(): this {
    const first = this.fallback?.first(this.request);
    if (first) this.switchTo(first);
    else {
      this.upstreamJson = JSON.stringify(this.upstreamBody());
      this.send();
    }
    return this;
  }

  /** The next attempt goes to another model (nothing has reached any client yet). */
  private switchTo(target: FlightTarget): void {
    this.fellBackTo = true;
    this.client = target.client;
    this.request = target.request;
    this.retries = target.client.retryBudget();
    this.upstreamJson = JSON.stringify(this.upstreamBody());
    this.send();
  }

  private send(): void {
    this.answer = undefined;
    this.chunks = [];
    this.recorder = undefined;
    this.call = new UpstreamCall(this);
    this.client.dispatch(
      {
        method: 'POST',
        path: CACHED_ENDPOINT_PATHS[this.request.endpoint],
        body: this.upstreamJson,
        headers: this.forwardHeaders,
        retries: this.retries,
        onSend: this.onUpstreamCall,
      },
      this.call,
    );
  }

  onHead(statusCode: number, headers: IncomingHttpHeaders): void {
    this.answer = { statusCode, headers: forwardedResponseHeaders(headers) };
    if (statusCode < 200 || statusCode >= 300) this.reading = 'error';
    else if (this.request.stream) {
      this.reading = 'stream';
      // The recorder parses (and notices an oversized or broken event, so such a stream is never stored).
      this.recorder = streamRecorderFor(this.request.endpoint);
    } else this.reading = 'json';
  }

  onChunk(chunk: Buffer): void {
    if (this.recorder) this.relay(this.answer!, this.recorder.push(chunk));
    else this.chunks.push(chunk);
  }

  onEnd(): void {
    const head = this.answer!;
    if (this.reading === 'error') {
      this.finish({ kind: 'upstream-error', head, body: clientErrorBody(this.client.provider.name, head.statusCode, this.body()) });
    } else if (this.recorder) {
      this.endStream(head, this.recorder);
    } else {
      this.finishJson(head, this.body());
    }
  }

  onFail(error: unknown): void {
    // A 2xx (or an error answer) whose body broke before any event was relayed has sent nothing
    // to any client (a stream's head leaves with its first event; JSON leaves whole): ask again.
    const untouched = this.answer !== undefined && this.fanOut.head === undefined && !(error instanceof GatewayError);
    if (untouched && !this.aborted) {
      void this.askAgain(error);
      return;
    }
    this.fail(error);
  }

  private async askAgain(error: unknown): Promise<void> {
    this.retryWait = new AbortController();
    const again = await this.client.retryBrokenAnswer(error, this.retries, this.retryWait.signal);
    this.retryWait = undefined;
    if (again && !this.aborted) this.send();
    else this.fail(error);
  }

  private fail(error: unknown): void {
    const gatewayError =
      error instanceof GatewayError
        ? error
        : isAbortError(error)
          ? errors.upstreamUnreachable(this.client.provider.name, error)
          : transportErrorToGatewayError(this.client.provider.name, error);
    this.finish({ kind: 'failed', error: gatewayError, afterHead: this.fanOut.head !== undefined });
  }

  private body(): Buffer {
    const chunks = this.chunks;
    this.chunks = [];
    return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
  }

  /**
   * Streams always ask for usage (exact token counts); clients that did not ask never see it.
   * A Responses stream always ends with its usage (and has no stream_options.include_usage).
   */
  private upstreamBody(): Record<string, unknown> {
    if (!this.request.stream || this.request.endpoint === 'responses') return this.request.body;
    const asked = this.request.body.stream_options;
    const options = typeof asked === 'object' && asked !== null ? asked : {};
    return { ...this.request.body, stream: true, stream_options: { ...options, include_usage: true } };
  }

  private relay(head: FlightHead, events: SseEvent[]): void {
    for (const event of events) {
      if (event.done) continue;
      this.announce(head);
      this.fanOut.send({ data: event.raw, usageOnly: isUsageOnlyChunk(event.chunk) });
    }
  }

  private endStream(head: FlightHead, recorder: StreamRecording): void {
    this.relay(head, recorder.end());
    if (!recorder.done) {
      this.finish({
        kind: 'failed',
        error: errors.upstreamBadResponse(this.client.provider.name, new Error('stream ended without [DONE]')),
        afterHead: this.fanOut.head !== undefined,
      });
      return;
    }
    this.announce(head);
    const completion = recorder.completion();
    this.finish({ kind: 'completed', head, json: undefined, completion, usage: recorder.usage, entry: entryFromStream(recorder, this.client.provider.name) });
  }

  /**
   * Subscribers start their streams with the first event, not with the upstream's head: until
   * then nothing has reached a client, so a broken answer can still be retried, or failed with
   * a proper status instead of a 200 stream holding only an error.
   */
  private announce(head: FlightHead): void {
    this.fanOut.announce(head);
  }

  private finishJson(head: FlightHead, json: Buffer): void {
    let completion: Completion | undefined;
    let parsed: { usage?: Usage; model?: unknown } | undefined;
    try {
      parsed = JSON.parse(json.toString('utf8')) as { usage?: Usage; model?: unknown };
      completion = asCompletion(parsed);
    } catch (cause) {
      this.finish({ kind: 'failed', error: errors.upstreamBadResponse(this.client.provider.name, cause), afterHead: false });
      return;
    }
    // A response object counts its tokens its own way, and is kept only once finished.
    const { usage, cacheable } = this.request.endpoint === 'responses' ? responseJsonFacts(parsed) : { usage: parsed?.usage, cacheable: true };
    const entry: CacheEntry = {
      storedAt: Date.now(),
      form: 'json',
      endpoint: this.request.endpoint,
      provider: this.client.provider.name,
      model: typeof parsed?.model === 'string' ? parsed.model : this.request.model,
      body: json,
      ...(usage ? { usage } : {}),
    };
    this.finish({ kind: 'completed', head, json, completion, usage, entry: cacheable ? entry : undefined });
  }

  private finish(outcome: FlightOutcome): void {
    if (this.fanOut.outcome || this.choosing) return;
    const next = this.fallback && !this.aborted ? this.fallback.next(outcome, this.fanOut.head !== undefined, this.request) : undefined;
    if (next === undefined) {
      this.settle(outcome);
      return;
    }
    this.choosing = true;
    if (!(next instanceof Promise)) {
      this.fallBackOrSettle(next, outcome);
      return;
    }
    next.then(
      (target) => this.fallBackOrSettle(target, outcome),
      () => this.fallBackOrSettle(undefined, outcome),
    );
  }

  private fallBackOrSettle(target: FlightTarget | undefined, outcome: FlightOutcome): void {
    this.choosing = false;
    // Every client may have left while the fallback was chosen: nobody to ask it for.
    if (target === undefined || this.aborted) this.settle(outcome);
    else this.switchTo(target);
  }

  private settle(outcome: FlightOutcome): void {
    this.fanOut.end(outcome);
  }
}
