/**
 * The load generators, all in the driver process: autocannon for throughput (with every
 * response time kept at full precision, since its own histogram rounds to whole milliseconds),
 * and small undici loops for what autocannon cannot see: time to first byte of a stream,
 * response headers (X-Cache), and one-shot concurrent storms.
 */
import autocannon from 'autocannon';
import { Client, type Pool } from 'undici';

export interface LatencySummary {
  count: number;
  p50Ms: number;
  p99Ms: number;
  meanMs: number;
}

export function summarize(latenciesMs: readonly number[]): LatencySummary {
  if (latenciesMs.length === 0) return { count: 0, p50Ms: 0, p99Ms: 0, meanMs: 0 };
  const sorted = Float64Array.from(latenciesMs).sort();
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
  const sum = sorted.reduce((total, value) => total + value, 0);
  return { count: sorted.length, p50Ms: at(0.5), p99Ms: at(0.99), meanMs: sum / sorted.length };
}

/** One autocannon run: every 2xx response time, exactly. */
export interface LoadRun {
  latenciesMs: number[];
  seconds: number;
  errors: number;
  non2xx: number;
}

export interface LoadOptions {
  url: string;
  path: string;
  connections: number;
  seconds: number;
  /** A fixed body, or one made per request (unique bodies: cache misses). */
  body: string | (() => string);
  headers?: Record<string, string>;
}

const JSON_HEADERS = { 'content-type': 'application/json' };

/** Drives `url` with autocannon for `seconds`; the response times of 2xx answers are kept exactly. */
export function runLoad(options: LoadOptions): Promise<LoadRun> {
  const headers = { ...JSON_HEADERS, ...options.headers };
  const makeBody = options.body;
  const request =
    typeof makeBody === 'string'
      ? { method: 'POST', path: options.path, headers, body: makeBody }
      : { method: 'POST', path: options.path, headers, setupRequest: (r: object) => ({ ...r, body: makeBody() }) };
  const latenciesMs: number[] = [];
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const instance = autocannon(
      { url: options.url, connections: options.connections, duration: options.seconds, timeout: 10, requests: [request] },
      (error, result) => {
        if (error) {
          reject(error);
          return;
        }
        resolve({ latenciesMs, seconds: (performance.now() - started) / 1000, errors: result.errors + result.timeouts, non2xx: result.non2xx });
      },
    );
    instance.on('response', (_client: unknown, statusCode: number, _bytes: number, responseTimeMs: number) => {
      if (statusCode >= 200 && statusCode < 300) latenciesMs.push(responseTimeMs);
    });
  });
}

export interface TimedResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  /** From sending the request to the first body byte. */
  firstByteMs: number;
  totalMs: number;
  body: string;
}

/** One POST over `dispatcher`, timing the first body byte (the first SSE event of a stream) and the end. */
export async function timedPost(dispatcher: Client | Pool, path: string, body: string, headers: Record<string, string> = {}): Promise<TimedResponse> {
  const started = performance.now();
  const response = await dispatcher.request({ method: 'POST', path, body, headers: { ...JSON_HEADERS, ...headers } });
  let firstByteMs = -1;
  const chunks: Buffer[] = [];
  for await (const chunk of response.body) {
    if (firstByteMs < 0) firstByteMs = performance.now() - started;
    chunks.push(chunk as Buffer);
  }
  const totalMs = performance.now() - started;
  return {
    status: response.statusCode,
    headers: response.headers,
    firstByteMs: Math.max(0, firstByteMs),
    totalMs,
    body: Buffer.concat(chunks).toString('utf8'),
  };
}

export interface SequentialRun {
  firstBytesMs: number[];
  totalsMs: number[];
  seconds: number;
  errors: number;
}

/**
 * Concurrency 1: one request after another on one kept-alive connection for `seconds` (at most
 * `maxRequests`), so a difference between two targets is the latency one of them adds.
 */
export async function runSequential(
  origin: string,
  path: string,
  seconds: number,
  makeBody: () => string,
  headers: Record<string, string> = {},
  maxRequests = 100_000,
): Promise<SequentialRun> {
  const client = new Client(origin, { keepAliveTimeout: 30_000 });
  const firstBytesMs: number[] = [];
  const totalsMs: number[] = [];
  let errors = 0;
  const started = performance.now();
  const deadline = started + seconds * 1000;
  try {
    while (performance.now() < deadline && totalsMs.length + errors < maxRequests) {
      const response = await timedPost(client, path, makeBody(), headers);
      if (response.status !== 200) {
        errors++;
        continue;
      }
      firstBytesMs.push(response.firstByteMs);
      totalsMs.push(response.totalMs);
    }
  } finally {
    await client.close();
  }
  return { firstBytesMs, totalsMs, seconds: (performance.now() - started) / 1000, errors };
}
