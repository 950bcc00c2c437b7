/**
 * Regeneration memory shared by the replicas of one Redis: Open WebUI's "regenerate" may reach
 * another replica than the first request did, which must still know that this chat already sent
 * it. Each replica keeps its own bounded memory (regeneration.ts) and tells the others, through
 * Redis pub/sub, every pair it newly remembers; they learn it within milliseconds, long before a
 * user clicks regenerate. The decision stays local and synchronous: no Redis round trip is added
 * to any request, and the pairs of one loop turn go out as one message. A replica started later
 * (or while Redis was away) misses the pairs told meanwhile: as on a restart, that costs at most
 * one cached answer where a regenerated one was asked for.
 */
import type { RedisClient } from './redis-connection.js';
import { RedisStore } from './redis-store.js';
import type { CacheStore } from './store.js';
import { RegenerationTracker } from './regeneration.js';

export const REGENERATIONS_CHANNEL = 'cachegate:regenerations';

export interface Regenerations {
  tracker: RegenerationTracker;
  close(): Promise<void>;
}

/** The tracker, shared through the store's Redis when there is one. */
export function regenerationsFor(store: CacheStore | undefined): Regenerations {
  if (!(store instanceof RedisStore)) return { tracker: new RegenerationTracker(), close: async () => {} };
  const publisher = store.redisClient();
  let pending: string[] | undefined;
  const tracker = new RegenerationTracker({
    onRemember: (pair) => {
      if (pending === undefined) {
        pending = [];
        setImmediate(() => {
          const pairs = (pending ?? []).join(',');
          pending = undefined;
          // Fail open: a pair not shared costs at most one cached answer.
          publisher.publish(REGENERATIONS_CHANNEL, pairs).catch(() => {});
        });
      }
      pending.push(pair);
    },
  });
  const subscriber = listen(publisher.duplicate(), (pairs) => {
    for (const pair of pairs.split(',')) if (pair) tracker.learn(pair);
  });
  return {
    tracker,
    async close() {
      subscriber.disconnect();
    },
  };
}

function listen(subscriber: RedisClient, learn: (pairs: string) => void): RedisClient {
  subscriber.on('error', () => {
    // Connection trouble: the client re-dials on its own; the store reports Redis's state.
  });
  subscriber.on('message', (channel: string, message: string) => {
    if (channel === REGENERATIONS_CHANNEL) learn(message);
  });
  // On every (re)connection: a subscription asked for while the connection was down fails.
  subscriber.on('ready', () => {
    subscriber.subscribe(REGENERATIONS_CHANNEL).catch(() => {});
  });
  subscriber.connect().catch(() => {});
  return subscriber;
}
