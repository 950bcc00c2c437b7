/**
 * How one answer reaches everyone waiting on it: the stream's head, each event as it comes, then
 * the outcome. A subscriber that joins late is first given the head and every event already sent
 * (a coalesced stream from its first byte); one that joins after the end gets the outcome at once.
 * A flight of this process and one followed from another replica both hand out their answer
 * through it, so the two cannot differ in what a late joiner sees.
 */
import type { FlightHead, FlightOutcome, FlightSubscriber, StreamEvent } from './flight.js';

export class FanOut {
  readonly settled: Promise<FlightOutcome>;
  private resolve!: (outcome: FlightOutcome) => void;
  private readonly subscribers = new Set<FlightSubscriber>();
  private streamHead: FlightHead | undefined;
  private readonly sent: StreamEvent[] = [];
  private final: FlightOutcome | undefined;

  constructor() {
    this.settled = new Promise((resolve) => (this.resolve = resolve));
  }

  /** The stream's head once its first event is due; undefined for JSON answers and before. */
  get head(): FlightHead | undefined {
    return this.streamHead;
  }

  /** Every event sent so far, in order. */
  get events(): readonly StreamEvent[] {
    return this.sent;
  }

  /** How it ended; undefined while it is still running. */
  get outcome(): FlightOutcome | undefined {
    return this.final;
  }

  get subscriberCount(): number {
    return this.subscribers.size;
  }

  /** Whether anyone left keeps the call going (passive subscribers do not). */
  get hasActiveSubscriber(): boolean {
    for (const subscriber of this.subscribers) if (!subscriber.passive) return true;
    return false;
  }

  /** Adds a subscriber and catches it up. False when it was over already (the subscriber got the outcome). */
  join(subscriber: FlightSubscriber): boolean {
    if (this.final) {
      subscriber.onDone(this.final);
      return false;
    }
    this.subscribers.add(subscriber);
    if (this.streamHead) {
      subscriber.onStreamStart?.(this.streamHead);
      for (const event of this.sent) subscriber.onEvent?.(event);
    }
    return true;
  }

  /** Everyone still waiting, in the order they joined. */
  waiting(): FlightSubscriber[] {
    return [...this.subscribers];
  }

  /** Answers one subscriber on its own, ahead of the others (refused while they go on). */
  drop(subscriber: FlightSubscriber, outcome: FlightOutcome): void {
    if (this.subscribers.delete(subscriber)) subscriber.onDone(outcome);
  }

  /** False when it was not subscribed (it left already, or the answer was handed out). */
  leave(subscriber: FlightSubscriber): boolean {
    return this.subscribers.delete(subscriber);
  }

  /** The stream starts for every subscriber; only the first head counts. */
  announce(head: FlightHead): void {
    if (this.streamHead) return;
    this.streamHead = head;
    for (const subscriber of this.subscribers) subscriber.onStreamStart?.(head);
  }

  send(event: StreamEvent): void {
    this.sent.push(event);
    for (const subscriber of this.subscribers) subscriber.onEvent?.(event);
  }

  /** Hands the outcome to every subscriber, once. False when it had ended already. */
  end(outcome: FlightOutcome): boolean {
    if (this.final) return false;
    this.final = outcome;
    const subscribers = [...this.subscribers];
    this.subscribers.clear();
    for (const subscriber of subscribers) subscriber.onDone(outcome);
    this.resolve(outcome);
    return true;
  }
}
