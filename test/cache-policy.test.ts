/** Request cache headers and regeneration detection. */
import { describe, expect, it } from 'vitest';
import { ageSeconds, isFreshEnough, parseCachePolicy } from '../src/cache/policy.js';
import { RegenerationTracker } from '../src/cache/regeneration.js';

const defaults = { ttlSeconds: 86_400 };

describe('parseCachePolicy', () => {
  it('looks up and stores with the default TTL when no header is sent', () => {
    expect(parseCachePolicy({}, defaults)).toEqual({ lookup: true, store: true, ttlSeconds: 86_400 });
  });

  it('no-cache skips the lookup but stores; no-store does neither', () => {
    expect(parseCachePolicy({ 'cache-control': 'no-cache' }, defaults)).toEqual({
      lookup: false,
      store: true,
      ttlSeconds: 86_400,
      bypassReason: 'no-cache',
    });
    expect(parseCachePolicy({ 'cache-control': 'no-store' }, defaults)).toMatchObject({
      lookup: false,
      store: false,
      bypassReason: 'no-store',
    });
  });

  it('reads several directives, any case, spaces and repeated headers; no-store wins', () => {
    expect(parseCachePolicy({ 'cache-control': ' No-Cache , NO-STORE' }, defaults).bypassReason).toBe('no-store');
    expect(parseCachePolicy({ 'cache-control': ['max-age=5', 'no-cache'] }, defaults).bypassReason).toBe('no-cache');
    expect(parseCachePolicy({ 'Cache-Control': 'max-age=60' }, defaults).maxAgeSeconds).toBe(60);
    expect(parseCachePolicy({ 'cache-control': 'max-age="30", private' }, defaults).maxAgeSeconds).toBe(30);
  });

  it('honours Pragma: no-cache only without Cache-Control', () => {
    expect(parseCachePolicy({ pragma: 'no-cache' }, defaults).bypassReason).toBe('no-cache');
    expect(parseCachePolicy({ pragma: 'no-cache', 'cache-control': 'max-age=5' }, defaults).lookup).toBe(true);
  });

  it('X-Cache-TTL sets the stored lifetime; 0 means no expiry', () => {
    expect(parseCachePolicy({ 'x-cache-ttl': '120' }, defaults).ttlSeconds).toBe(120);
    expect(parseCachePolicy({ 'X-Cache-TTL': '0' }, defaults).ttlSeconds).toBe(0);
  });

  it('ignores invalid values instead of failing', () => {
    for (const bad of ['-1', 'abc', '1.5', '', '1e3', '99999999999']) {
      expect(parseCachePolicy({ 'x-cache-ttl': bad }, defaults).ttlSeconds).toBe(86_400);
      const policy = parseCachePolicy({ 'cache-control': `max-age=${bad}` }, defaults);
      expect(policy.maxAgeSeconds).toBeUndefined();
      expect(policy.lookup).toBe(true);
    }
    expect(parseCachePolicy({ 'cache-control': ',,=,foo' }, defaults)).toEqual({ lookup: true, store: true, ttlSeconds: 86_400 });
  });
});

describe('isFreshEnough / ageSeconds', () => {
  it('accepts only entries younger than max-age', () => {
    const now = 1_000_000;
    expect(isFreshEnough({}, now - 10_000_000, now)).toBe(true);
    expect(isFreshEnough({ maxAgeSeconds: 10 }, now - 9_999, now)).toBe(true);
    expect(isFreshEnough({ maxAgeSeconds: 10 }, now - 10_000, now)).toBe(false);
    expect(isFreshEnough({ maxAgeSeconds: 0 }, now, now)).toBe(false);
    expect(ageSeconds(now - 9_999, now)).toBe(9);
    expect(ageSeconds(now + 5_000, now)).toBe(0); // clock skew between gateway replicas
  });
});

describe('RegenerationTracker', () => {
  it('flags a request the same chat already sent, not one from another chat', () => {
    const tracker = new RegenerationTracker();
    expect(tracker.seen('chat-1', 'k')).toBe(false);
    tracker.remember('chat-1', 'k');
    expect(tracker.seen('chat-1', 'k')).toBe(true);
    expect(tracker.seen('chat-2', 'k')).toBe(false);
    expect(tracker.seen('chat-1', 'other')).toBe(false);
    expect(tracker.checkAndRemember('chat-2', 'k')).toBe(false);
    expect(tracker.checkAndRemember('chat-2', 'k')).toBe(true);
  });

  it('is bounded in count and forgets after its TTL', async () => {
    const tracker = new RegenerationTracker({ maxEntries: 3, ttlMs: 50 });
    for (const id of ['a', 'b', 'c', 'd']) tracker.remember(id, 'k');
    expect(tracker.size).toBe(3);
    expect(tracker.seen('a', 'k')).toBe(false);
    expect(tracker.seen('d', 'k')).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 120));
    expect(tracker.seen('d', 'k')).toBe(false);
  });
});
