/**
 * A provider's per-key rate limiter in front of the fake upstream: a real HTTP server that
 * counts completion requests per bearer key in fixed windows, answers 429 with the reset hint
 * a test picked (each of the forms OpenAI and Groq use) when a key is over its limit, and
 * forwards everything else unchanged (streams included) to the fake behind it.
 *
 * Point the gateway's OPENAI_BASE_URL / GROQ_BASE_URL at `openaiBaseUrl` / `groqBaseUrl`.
 */
import { request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { FakeUpstream } from './fake-upstream.js';
import { bearerKey, closeNow, createWholeBodyServer, listenOnLoopback } from './provider-double-server.js';

export type ResetHint =
  | 'retry-after' // seconds, rounded up (OpenAI, Groq)
  | 'retry-after-ms' // OpenAI
  | 'http-date' // retry-after as an HTTP date (RFC 9110)
  | 'reset-requests' // x-ratelimit-reset-requests with x-ratelimit-remaining-requests: 0
  | 'reset-tokens' // x-ratelimit-reset-tokens with x-ratelimit-remaining-tokens: 0
  | 'groq-message' // only "Please try again in 1.234s." in the error message
  | 'none'; // a bare 429: the gateway must apply its default cooldown

export interface KeyLimit {
  /** Completion requests a key may make per window. */
  limit: number;
  windowMs: number;
  hint: ResetHint;
}

export interface LimiterRecord {
  key: string | undefined;
  path: string;
  /** performance.now() when the request reached the limiter. */
  at: number;
  /** 429 when the limiter refused it, else undefined (forwarded). */
  status: 429 | undefined;
  /** For a 429: ms until the key's window resets, as the hint says. */
  resetMs?: number;
  /** The message text the request carried (tests make it unique per request). */
  content: string | undefined;
}

export interface KeyLimiter {
  url: string;
  openaiBaseUrl: string;
  groqBaseUrl: string;
  limits: Map<string, KeyLimit>;
  /** Every completion request seen, forwarded or refused, in arrival order. */
  records: LimiterRecord[];
  /**
   * Breakages for the next completion requests, first in first out: `after-head` sends a 200
   * SSE head (flushed) and resets the connection before any body byte; `mid-json` sends a 200
   * JSON head and half a body, then resets.
   */
  breakNext: Array<'after-head' | 'mid-json'>;
  /** Forget limits, windows and records (between tests). */
  reset(): void;
  close(): Promise<void>;
}

const COMPLETION_PATH = /\/(chat\/completions|completions|embeddings)$/;

interface Window {
  startedAt: number;
  used: number;
}

export async function startKeyLimiter(fake: FakeUpstream, limits: Map<string, KeyLimit> = new Map()): Promise<KeyLimiter> {
  const windows = new Map<string, Window>();
  const target = new URL(fake.url);
  const limiter: KeyLimiter = {
    url: '',
    openaiBaseUrl: '',
    groqBaseUrl: '',
    limits,
    records: [],
    breakNext: [],
    reset() {
      limiter.limits.clear();
      limiter.records.length = 0;
      limiter.breakNext.length = 0;
      windows.clear();
    },
    close: () => closeNow(server),
  };

  const server = createWholeBodyServer((req, res, body) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (req.method !== 'POST' || !COMPLETION_PATH.test(path)) return forward(req, res, body);
    const key = bearerKey(req);
    const now = performance.now();
    const record: LimiterRecord = { key, path, at: now, status: undefined, content: contentOf(body) };
    limiter.records.push(record);
    const limit = key === undefined ? undefined : limiter.limits.get(key);
    if (key !== undefined && limit !== undefined) {
      let window = windows.get(key);
      if (window === undefined || now - window.startedAt >= limit.windowMs) {
        window = { startedAt: now, used: 0 };
        windows.set(key, window);
      }
      if (window.used >= limit.limit) {
        // The exact wait until this key is accepted again; hints round it up, never down.
        const resetMs = Math.max(1, Math.ceil(window.startedAt + limit.windowMs - now));
        record.status = 429;
        record.resetMs = resetMs;
        return refuse(res, limit.hint, resetMs);
      }
      window.used++;
    }
    const breakage = limiter.breakNext.shift();
    if (breakage !== undefined) return breakAnswer(res, breakage);
    forward(req, res, body);
  });

  function forward(req: IncomingMessage, res: ServerResponse, body: Buffer): void {
    const upstream = httpRequest({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    // The gateway went away (client abort, timeout): let the fake behind see it too.
    res.on('close', () => {
      if (!res.writableFinished) upstream.destroy();
    });
    upstream.end(body);
  }

  Object.assign(limiter, await listenOnLoopback(server));
  return limiter;
}

function breakAnswer(res: ServerResponse, breakage: 'after-head' | 'mid-json'): void {
  if (breakage === 'after-head') {
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' });
    res.flushHeaders();
  } else {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': '4096' });
    res.write('{"id":"chatcmpl-broken","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"Half an ans');
  }
  // Long enough for the head (and bytes) to reach the gateway, then a reset.
  setTimeout(() => res.socket?.resetAndDestroy(), 30);
}

function refuse(res: ServerResponse, hint: ResetHint, resetMs: number): void {
  const seconds = (resetMs / 1000).toFixed(3);
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  let message = 'Rate limit reached for requests. Limit 1, Used 1, Requested 1.';
  switch (hint) {
    case 'retry-after':
      headers['retry-after'] = String(Math.ceil(resetMs / 1000));
      break;
    case 'retry-after-ms':
      headers['retry-after-ms'] = String(resetMs);
      break;
    case 'http-date':
      // An HTTP date has whole seconds: round up so the date is never before the reset.
      headers['retry-after'] = new Date(Math.ceil((Date.now() + resetMs) / 1000) * 1000).toUTCString();
      break;
    case 'reset-requests':
      // OpenAI sends both resets; only the budget that ran out (at 0) is the right wait.
      Object.assign(headers, {
        'x-ratelimit-limit-requests': '1',
        'x-ratelimit-remaining-requests': '0',
        'x-ratelimit-reset-requests': `${resetMs}ms`,
        'x-ratelimit-limit-tokens': '200000',
        'x-ratelimit-remaining-tokens': '199000',
        'x-ratelimit-reset-tokens': '45s',
      });
      break;
    case 'reset-tokens':
      Object.assign(headers, {
        'x-ratelimit-limit-requests': '500',
        'x-ratelimit-remaining-requests': '499',
        'x-ratelimit-reset-requests': '1m30s',
        'x-ratelimit-limit-tokens': '100',
        'x-ratelimit-remaining-tokens': '0',
        'x-ratelimit-reset-tokens': `${seconds}s`,
      });
      message = 'Rate limit reached for tokens per min (TPM): Limit 100, Used 100, Requested 20.';
      break;
    case 'groq-message':
      message = `Rate limit reached for model \`llama-3.1-8b-instant\` in organization \`org_fake\` service tier \`on_demand\` on requests per minute (RPM): Limit 1, Used 1, Requested 1. Please try again in ${seconds}s. Need more tokens? Visit https://console.groq.com/settings/billing to upgrade your plan.`;
      break;
    case 'none':
      break;
  }
  const body = JSON.stringify({ error: { message, type: 'requests', code: 'rate_limit_exceeded', param: null } });
  res.writeHead(429, { ...headers, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

function contentOf(body: Buffer): string | undefined {
  try {
    const json = JSON.parse(body.toString('utf8')) as { messages?: Array<{ content?: unknown }>; input?: unknown; prompt?: unknown };
    const last = json.messages?.at(-1)?.content ?? json.prompt ?? json.input;
    return typeof last === 'string' ? last : undefined;
  } catch {
    return undefined;
  }
}
