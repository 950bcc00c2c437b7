/**
 * Coalescing across replicas on a shared Redis (the protocol: replica-flights.ts). Only a miss
 * that is about to call upstream on a Redis-backed gateway comes here, so hits, and a gateway on
 * the embedded cache, pay nothing. The miss takes the key's lease: as leader it calls upstream as
 * any miss does, and publishes the answer only once a follower has announced itself (a lone
 * replica sends no answer to Redis). Finding the lease taken, it follows the leader's stream
 * (COALESCED, streams from the first byte); when the leader dies, it calls upstream itself.
 */
import { decodeEntry, encodeEntry } from '../cache/entry.js';
import type { CachePolicy } from '../cache/policy.js';
import { errors, GatewayError } from '../errors.js';
import type { Flight, FlightHead, FlightOutcome, FlightSubscriber, StreamEvent } from './flight.js';
import { type FollowableFlight, type Follower, follow, joinFlight, launchFlight, startFlight } from './follow-flight.js';
import type { PipelineDeps } from './pipeline-deps.js';
import type { PreparedRequest } from './prepare.js';
import { type AnsweredBy, FOLLOWER_WATCH_MS, type FlightRecord, LEASE_MS, POLL_MS, RENEW_MS, type ReplicaFlights, type StreamRead } from './replica-flights.js';
import { type StreamContinuation, StreamResume } from './stream-resume.js';
import { FanOut } from './fan-out.js';

/**
 * Lets a paid upstream call start (`start`), or refuses it (a budget is spent: the client is
 * answered, then `refused` runs). Asked only when this replica is about to call upstream itself,
 * so a request that follows another replica's call is never refused by a budget.
 */
export type PaidCallGate = (start: () => void, refused: () => void) => void;

const ADMIT_ALL: PaidCallGate = (start) => start();

/**
 * Calls upstream for `follower` on a Redis-backed gateway, coordinated with the other replicas:
 * the follower's writer follows the chosen flight; `gone` tells whether the client left
 * meanwhile. Redis not answering: the replica calls upstream on its own (fail open).
 */
export function flyAcrossReplicas(
  replicas: ReplicaFlights,
  follower: Follower,
  key: string,
  policy: CachePolicy,
  deps: PipelineDeps,
  gone: () => boolean,
  admit: PaidCallGate = ADMIT_ALL,
): void {
  replicas.claim(key).then(
    (claim) => {
      const local = deps.flights.get(key);
      if (gone() || (local && !local.result)) {
        if (claim.leader) void replicas.finish(key, claim.token).catch(() => {});
        // An identical request of this replica started meanwhile: ride on it.
        if (!gone()) joinFlight(local!, follower, deps);
        return;
      }
      if (claim.leader) {
        const release = (): void => void replicas.finish(key, claim.token).catch(() => {});
        admit(() => {
          if (gone()) return release();
          follower.writer.reached('MISS');
          const flight = launchFlight(follower, key, policy, true, deps);
          lead(replicas, flight, key, claim.token);
          follow(flight, follower, deps, 'miss');
          flight.start();
        }, release);
        return;
      }
      follower.writer.reached('COALESCED');
      replicas.announceFollower(key, claim.token);
      // Identical requests of this replica following the same leader share one reader of its stream.
      const following = followedBy(replicas);
      const shared = following.get(key);
      if (shared?.joinable(claim.token)) {
        follow(shared, follower, deps, 'hit');
        return;
      }
      const remote = new RemoteFlight(replicas, follower, key, claim.token, policy, deps);
      following.set(key, remote);
      void remote.settled.then(() => {
        if (following.get(key) === remote) following.delete(key);
      });
      follow(remote, follower, deps, 'hit');
      remote.start();
    },
    () => {
      if (gone()) return;
      admit(
        () => {
          if (gone()) return;
          follower.writer.reached('MISS');
          startFlight(follower, key, policy, true, deps);
        },
        () => {},
      );
    },
  );
}

const followedByReplicas = new WeakMap<ReplicaFlights, Map<string, RemoteFlight>>();

/** The other replicas' flights this replica follows, by cache key. */
function followedBy(replicas: ReplicaFlights): Map<string, RemoteFlight> {
  let following = followedByReplicas.get(replicas);
  if (!following) {
    following = new Map();
    followedByReplicas.set(replicas, following);
  }
  return following;
}

/**
 * Publishes a leading flight for the followers on other replicas: nothing while none announced
 * itself (the lease is renewed, that is all), then what was sent so far and every record as it
 * comes. Followers keep the call going when the leader's own clients leave.
 */
function lead(replicas: ReplicaFlights, flight: Flight, key: string, token: string): void {
  let live = false;
  let settled = false;
  const backlog: FlightRecord[] = [];
  const send = (records: FlightRecord[]): Promise<void> => replicas.publish(key, token, records).catch(() => {});
  const goLive = (): void => {
    if (live || settled) return;
    live = true;
    // Remote followers wait on this call: it goes on even when this replica's clients leave.
    flight.subscribe({ onDone: () => {} });
    void send(backlog.splice(0));
  };
  const add = (record: FlightRecord): void => {
    if (live) void send([record]);
    else backlog.push(record);
  };
  // Renewing also answers how many followers wait; a stream looks often until the first comes.
  let watching = flight.current.stream;
  const renew = (): void => {
    replicas.renew(key, token).then((followers) => {
      if (followers <= 0) return;
      goLive();
      if (watching && !settled) {
        watching = false;
        clearInterval(renewal);
        renewal = setInterval(renew, RENEW_MS).unref();
      }
    }, noop);
  };
  let renewal = setInterval(renew, watching ? FOLLOWER_WATCH_MS : RENEW_MS).unref();
  flight.subscribe({
    passive: true,
    onStreamStart: (head) => add({ kind: 'head', head, by: answeredBy(flight) }),
    onEvent: (event) => add({ kind: 'event', data: event.data, usageOnly: event.usageOnly }),
    onDone: (outcome) => {
      clearInterval(renewal);
      settled = true;
      const last = recordOf(outcome, answeredBy(flight));
      if (live) {
        void send([last])
          .then(() => replicas.finish(key, token))
          .catch(noop);
        return;
      }
      replicas.finish(key, token).then((followers) => {
        if (followers > 0) void send([...backlog.splice(0), last]);
      }, noop);
    },
  });
}

function answeredBy(flight: Flight): AnsweredBy {
  const { provider, model, upstreamModel } = flight.current;
  return { provider, model, upstreamModel, fellBack: flight.fellBack };
}

function recordOf(outcome: FlightOutcome, by: AnsweredBy): FlightRecord {
  switch (outcome.kind) {
    case 'completed':
      return outcome.entry
        ? { kind: 'completed', head: outcome.head, by, entry: encodeEntry(outcome.entry).toString('base64') }
        : { kind: 'completed', head: outcome.head, by, ...(outcome.json ? { json: outcome.json.toString('utf8') } : {}) };
    case 'upstream-error':
      return { kind: 'upstream-error', head: outcome.head, body: outcome.body.toString('utf8') };
    case 'failed': {
      const { error } = outcome;
      return { kind: 'failed', statusCode: error.statusCode, type: error.type, code: error.code, message: error.message, headers: { ...error.headers } };
    }
  }
}

/**
 * Another replica's flight, read from its Redis stream, followed like a flight of this process.
 * When the leader dies (its lease lapses with no outcome, or, before anything reached this
 * client, its call failed), the request takes the lease and calls upstream itself (or follows
 * whoever took it first). A stream its clients already received part of goes on from the new
 * call only where that call provably continues it (stream-resume.ts); otherwise it ends with an
 * error, as a broken upstream stream does.
 */
export class RemoteFlight implements FollowableFlight {
  private readonly fanOut = new FanOut();
  readonly settled = this.fanOut.settled;
  private lastId = '0';
  private failingSince: number | undefined;
  /** Who answered the leader's call, once it said. */
  private by: AnsweredBy | undefined;
  private stopped = false;
  /** Set while the lease is claimed again after the leader was lost (no polling meanwhile). */
  private lost = false;
  /** Set once the leader answered something: from then on every follower here is coalesced for real. */
  private confirmed = false;
  /** This replica's own call, once the leader was lost. */
  private own: { flight: FollowableFlight; relay: FlightSubscriber } | undefined;
  /** Set once the leader died mid-stream: what the clients received, continued from the next call. */
  private resume: StreamContinuation | undefined;

  constructor(
    private readonly replicas: ReplicaFlights,
    private readonly follower: Follower,
    private readonly key: string,
    private token: string,
    private readonly policy: CachePolicy,
    private readonly deps: PipelineDeps,
  ) {}

  get result(): FlightOutcome | undefined {
    return this.fanOut.outcome;
  }

  /** Whether another request of this replica may follow the same leader through this reader. */
  joinable(token: string): boolean {
    return token === this.token && !this.fanOut.outcome && !this.stopped && !this.lost && !this.own;
  }

  get current(): PreparedRequest {
    if (this.own) return this.own.flight.current;
    const asked = this.follower.prepared;
    const by = this.by;
    return by ? { ...asked, provider: by.provider as PreparedRequest['provider'], model: by.model, upstreamModel: by.upstreamModel } : asked;
  }

  get fellBack(): boolean {
    return this.own?.flight.fellBack ?? this.by?.fellBack ?? false;
  }

  start(): void {
    this.poll();
  }

  subscribe(subscriber: FlightSubscriber): void {
    if (this.confirmed && !this.fanOut.outcome) this.countCoalesced(1);
    this.fanOut.join(subscriber);
  }

  private countCoalesced(requests: number): void {
    if (requests > 0) this.deps.metrics.cacheCoalesced.inc({ endpoint: this.follower.prepared.endpoint }, requests);
  }

  unsubscribe(subscriber: FlightSubscriber): void {
    if (!this.fanOut.leave(subscriber) || this.fanOut.subscriberCount > 0) return;
    this.stopped = true;
    if (this.own) this.own.flight.unsubscribe(this.own.relay);
  }

  private readonly poll = (): void => {
    if (this.stopped || this.fanOut.outcome || this.lost) return;
    this.replicas.read(this.key, this.token, this.lastId).then(this.onRead, this.onReadFailed);
  };

  private readonly onRead = (read: StreamRead): void => {
    if (this.stopped || this.fanOut.outcome || this.lost) return;
    this.failingSince = undefined;
    this.lastId = read.lastId;
    for (const record of read.records) {
      this.apply(record);
      if (this.fanOut.outcome || this.stopped || this.lost) return;
    }
    if (read.records.length === 0 && read.holder !== this.token) {
      this.leaderLost();
      return;
    }
    setTimeout(this.poll, POLL_MS).unref();
  };

  /** Redis not answering for as long as a lease lasts: the leader cannot be followed. */
  private readonly onReadFailed = (): void => {
    if (this.stopped || this.fanOut.outcome || this.lost) return;
    this.failingSince ??= Date.now();
    if (Date.now() - this.failingSince > LEASE_MS) this.leaderLost();
    else setTimeout(this.poll, POLL_MS).unref();
  };

  private apply(record: FlightRecord): void {
    if (!this.confirmed) {
      // Coalesced for real: the leader is answering these requests.
      this.confirmed = true;
      this.countCoalesced(this.fanOut.subscriberCount);
    }
    switch (record.kind) {
      case 'head':
        this.by = record.by;
        this.announce(record.head);
        return;
      case 'event':
        this.relay({ data: record.data, usageOnly: record.usageOnly });
        return;
      case 'completed': {
        this.by = record.by;
        const entry = record.entry === undefined ? undefined : decodeEntry(Buffer.from(record.entry, 'base64'));
        const json = entry?.form === 'json' ? entry.body : record.json === undefined ? undefined : Buffer.from(record.json);
        this.finish({ kind: 'completed', head: record.head, json, completion: undefined, usage: entry?.usage, entry });
        return;
      }
      case 'upstream-error':
        this.finish({ kind: 'upstream-error', head: record.head, body: Buffer.from(record.body) });
        return;
      case 'failed':
        // The leader's call broke (or was stopped): like a broken answer, asked again when nothing was relayed.
        if (!this.fanOut.head) this.leaderLost();
        else
          this.finish({
            kind: 'failed',
            error: new GatewayError(record.statusCode, record.type, record.code, record.message, record.headers),
            afterHead: true,
          });
        return;
    }
  }

  private leaderLost(): void {
    this.lost = true;
    if (this.fanOut.head) {
      // The clients have part of the answer: the next call's stream must continue exactly that.
      this.resume = StreamResume.after(this.follower.prepared.endpoint, this.fanOut.events);
      if (!this.resume) {
        this.failMidStream('the replica answering this stream stopped');
        return;
      }
    }
    this.replicas.claim(this.key).then(
      (claim) => {
        if (this.stopped) {
          if (claim.leader) void this.replicas.finish(this.key, claim.token).catch(noop);
          return;
        }
        if (claim.leader) this.callUpstream(claim.token);
        else {
          // Another follower took over first: follow it from its first record.
          this.token = claim.token;
          this.lastId = '0';
          this.lost = false;
          this.replicas.announceFollower(this.key, claim.token);
          this.poll();
        }
      },
      () => {
        if (!this.stopped) this.callUpstream(undefined);
      },
    );
  }

  /**
   * This replica's own upstream call for the clients still waiting (leading the others when it
   * holds the lease). Before anything reached them it is a paid call like any miss: paid by the
   * first client whose user may spend, while the clients of a user past a budget get the refusal
   * and nothing is sent upstream for them. Mid-stream nobody is refused: a stream in progress is
   * never cut by a budget (the call is counted, like any call already in flight at the cap).
   */
  private callUpstream(token: string | undefined): void {
    const release = (): void => {
      if (token !== undefined) void this.replicas.finish(this.key, token).catch(noop);
    };
    const payer = this.fanOut.waiting().find((subscriber) => subscriber.client)?.client;
    if (this.stopped || !payer) {
      release();
      // Only the gateway's own listeners are left: they are told the call ends here.
      if (!this.stopped) this.failMidStream('no client is left to call upstream for');
      return;
    }
    if (this.fanOut.head) {
      this.callUpstreamNow(token, payer);
      return;
    }
    const user = payer.user ?? 'anonymous';
    const admitted = (refusal: GatewayError | undefined): void => {
      if (this.stopped) release();
      else if (!refusal) this.callUpstreamNow(token, payer);
      else this.refuse(user, refusal, token, release);
    };
    const admission = this.deps.limits.admitPaidCall(user);
    if (admission instanceof Promise) admission.then(admitted, () => admitted(undefined));
    else admitted(admission);
  }

  /** `user` may not pay: its clients get the refusal, and the next user still waiting may pay. */
  private refuse(user: string, refusal: GatewayError, token: string | undefined, release: () => void): void {
    const refused: FlightOutcome = { kind: 'failed', error: refusal, afterHead: false };
    const waiting = this.fanOut.waiting();
    const others = waiting.filter((subscriber) => subscriber.client && (subscriber.client.user ?? 'anonymous') !== user);
    // Like any request refused before an upstream call: a BYPASS, not an answer that rode on one.
    for (const subscriber of waiting) if (!others.includes(subscriber)) subscriber.client?.writer.reached('BYPASS');
    if (others.length === 0) {
      release();
      this.finish(refused);
      return;
    }
    for (const subscriber of waiting) if (!others.includes(subscriber)) this.fanOut.drop(subscriber, refused);
    this.callUpstream(token);
  }

  private callUpstreamNow(token: string | undefined, payer: Follower): void {
    // One client pays for the call (its answer is a MISS); the others of this replica ride on it.
    payer.writer.reached('MISS');
    if (!this.confirmed) this.countCoalesced(this.fanOut.subscriberCount - 1);
    // The request as this reader's first client sent it: a stream already under way stays one.
    const flight = launchFlight({ ...payer, prepared: this.follower.prepared }, this.key, this.policy, true, this.deps);
    if (token !== undefined) lead(this.replicas, flight, this.key, token);
    const relay: FlightSubscriber = {
      onStreamStart: (head) => this.announce(head),
      onEvent: (event) => this.relay(event),
      onDone: (outcome) => this.finish(outcome),
    };
    this.own = { flight, relay };
    flight.subscribe(relay);
    flight.start();
  }

  private announce(head: FlightHead): void {
    this.fanOut.announce(head);
  }

  private relay(streamed: StreamEvent): void {
    if (!this.fanOut.head || this.fanOut.outcome) return;
    let event = streamed;
    if (this.resume) {
      const step = this.resume.next(event);
      if (step.kind === 'diverged') this.diverged(step.reason);
      if (step.kind !== 'relay') return;
      event = step.event;
    }
    this.fanOut.send(event);
  }

  /** The new call's answer is not the one the clients got the start of: never spliced onto it. */
  private diverged(reason: string): void {
    if (this.fanOut.outcome) return;
    this.deps.log.warn({ id: this.follower.requestId, reason }, 'stream not resumed after its replica stopped: the new answer differs from the part sent');
    this.failMidStream('the replica answering this stream stopped, and a new answer differs from the part already sent');
  }

  private failMidStream(why: string): void {
    const provider = this.follower.prepared.provider;
    this.finish({ kind: 'failed', error: errors.upstreamBadResponse(provider, new Error(why)), afterHead: true });
  }

  private finish(outcome: FlightOutcome): void {
    if (this.fanOut.outcome) return;
    // A resumed stream ends well only when the new call answered and went past all that was sent.
    if (this.resume && (outcome.kind === 'upstream-error' || (outcome.kind === 'completed' && !this.resume.covered))) {
      if (outcome.kind === 'upstream-error') this.failMidStream('the replica answering this stream stopped, and a new call was refused');
      else this.diverged('a shorter answer');
      return;
    }
    this.stopped = true;
    this.fanOut.end(outcome);
  }
}

function noop(): void {}
