/**
 * Requests seen before, by their bytes. Everything the cached routes' pipeline derives from a request
 * body (validation, routing, the canonical cache key) is a pure function of the body's bytes,
 * the endpoint, the cache scope and the model lists. A cache hit is by nature a request repeated
 * byte for byte, so for a body that was already answered from the cache, parsing it, routing
 * it and hashing its canonical form again is needless work (about half of a hit's CPU before).
 * The cache itself is still asked every time: the memo says which key to read, never what is
 * stored under it.
 */
import { LRUCache } from 'lru-cache';
import type { PreparedRequest } from './prepare.js';

/** What a hit needs of a prepared request (not the parsed body: the memo holds no objects). */
export type HitRequest = Omit<PreparedRequest, 'body'>;

export interface KnownRequest {
  key: string;
  request: HitRequest;
  /** The model lists' generation when it was routed: a newer list may route it elsewhere. */
  routedAt: number;
}

/** Larger bodies are rare (long chat histories) and are worked out each time. */
export const KNOWN_REQUEST_MAX_BODY_BYTES = 64 * 1024;
const KNOWN_REQUESTS_MAX_BYTES = 4 * 1024 * 1024;

export class KnownRequests {
  private readonly entries = new LRUCache<string, KnownRequest>({
    maxSize: KNOWN_REQUESTS_MAX_BYTES,
    sizeCalculation: (_value, memoKey) => memoKey.length + 256,
  });

  /** The memo key of a body, or undefined when the body is too large to be remembered. */
  memoKeyOf(endpoint: string, scope: string, body: Buffer): string | undefined {
    if (body.byteLength > KNOWN_REQUEST_MAX_BODY_BYTES) return undefined;
    // latin1: one char per byte, so different bytes always make different keys (utf8 would not).
    return `${endpoint}\n${scope}\n${body.toString('latin1')}`;
  }

  get(memoKey: string, generation: number): KnownRequest | undefined {
    const known = this.entries.get(memoKey);
    return known && known.routedAt === generation ? known : undefined;
  }

  remember(memoKey: string, key: string, prepared: PreparedRequest, generation: number): void {
    const { endpoint, provider, model, asked, upstreamModel, stream, includeUsage } = prepared;
    const request: HitRequest = { endpoint, provider, model, asked, upstreamModel, stream, includeUsage };
    // The body's own cache controls (its max-age, its TTL) apply to every repeat of it.
    if (prepared.cacheControls) request.cacheControls = prepared.cacheControls;
    this.entries.set(memoKey, { key, request, routedAt: generation });
  }
}
