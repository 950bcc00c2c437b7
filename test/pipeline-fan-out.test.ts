/**
 * The one place a flight's answer is handed out, whether the call runs in this process or is
 * followed from another replica: late joiners are caught up from the first byte, the outcome is
 * given once, and passive subscribers do not count as someone waiting.
 */
import { describe, expect, it } from 'vitest';
import { FanOut } from '../src/pipeline/fan-out.js';
import type { FlightHead, FlightOutcome, FlightSubscriber } from '../src/pipeline/flight.js';

const head: FlightHead = { statusCode: 200, headers: {} as FlightHead['headers'] };
const outcome: FlightOutcome = { kind: 'upstream-error', head, body: Buffer.from('{}') };

function recorder(passive = false): FlightSubscriber & { seen: string[] } {
  const seen: string[] = [];
  return {
    seen,
    passive,
    onStreamStart: () => seen.push('head'),
    onEvent: (event) => seen.push(event.data),
    onDone: (done) => seen.push(`done:${done.kind}`),
  };
}

describe('FanOut', () => {
  it('gives a late joiner the head and every event already sent, then what follows', () => {
    const fanOut = new FanOut();
    const early = recorder();
    expect(fanOut.join(early)).toBe(true);
    fanOut.announce(head);
    fanOut.send({ data: 'a', usageOnly: false });
    fanOut.send({ data: 'b', usageOnly: false });
    const late = recorder();
    fanOut.join(late);
    fanOut.send({ data: 'c', usageOnly: false });
    fanOut.end(outcome);
    expect(early.seen).toEqual(['head', 'a', 'b', 'c', 'done:upstream-error']);
    expect(late.seen).toEqual(early.seen);
  });

  it('hands the outcome out once, and at once to whoever joins after the end', async () => {
    const fanOut = new FanOut();
    const subscriber = recorder();
    fanOut.join(subscriber);
    expect(fanOut.end(outcome)).toBe(true);
    expect(fanOut.end({ ...outcome, body: Buffer.from('other') })).toBe(false);
    expect(subscriber.seen).toEqual(['done:upstream-error']);
    const after = recorder();
    expect(fanOut.join(after)).toBe(false);
    expect(after.seen).toEqual(['done:upstream-error']);
    expect(await fanOut.settled).toBe(outcome);
  });

  it('announces the stream once, and counts only active subscribers as waiting', () => {
    const fanOut = new FanOut();
    const active = recorder();
    const passive = recorder(true);
    fanOut.join(active);
    fanOut.join(passive);
    fanOut.announce(head);
    fanOut.announce({ ...head, statusCode: 201 });
    expect(fanOut.head).toBe(head);
    expect(active.seen).toEqual(['head']);
    expect(fanOut.hasActiveSubscriber).toBe(true);
    expect(fanOut.leave(active)).toBe(true);
    expect(fanOut.leave(active)).toBe(false);
    expect(fanOut.hasActiveSubscriber).toBe(false);
    expect(fanOut.subscriberCount).toBe(1);
  });
});
