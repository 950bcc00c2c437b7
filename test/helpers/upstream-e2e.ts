/**
 * Small tools for the end-to-end upstream tests (key pool, retries, timeouts, reloads):
 * the per-file fake upstream and per-test gateway, one chat call through the gateway, a gauge
 * read from /metrics, polling, key-leak checks.
 */
import { afterEach, expect } from 'vitest';
import type { FakeUpstream } from './fake-upstream.js';
import { setUpFakeUpstream } from './fake-upstream-fixture.js';
import { startGateway, TEST_GROQ_KEYS, TEST_OPENAI_KEYS, type RunningGateway } from './gateway.js';

let sequence = 0;

/** A message text no other request of this process uses, so the cache never answers it. */
export function uniqueContent(label = 'req'): string {
  sequence++;
  return `${label}-${process.pid}-${sequence}-${Math.random().toString(36).slice(2, 8)}`;
}

export interface ChatResult {
  status: number;
  headers: Headers;
  text: string;
  json: Record<string, unknown> | undefined;
  content: string;
}

export interface ChatOptions {
  model?: string;
  /** `/v1` (OpenAI layout, default) or `/openai/v1` (Groq layout). */
  prefix?: string;
  stream?: boolean;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  content?: string;
}

/** One chat completion through the gateway with a unique message (cache-busting). */
export async function chat(gatewayUrl: string, options: ChatOptions = {}): Promise<ChatResult> {
  const content = options.content ?? uniqueContent();
  const response = await fetch(`${gatewayUrl}${options.prefix ?? '/v1'}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...options.headers },
    body: JSON.stringify({
      model: options.model ?? 'gpt-4o-mini',
      messages: [{ role: 'user', content }],
      ...(options.stream ? { stream: true } : {}),
    }),
    signal: options.signal,
  });
  const text = await response.text();
  let json: Record<string, unknown> | undefined;
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    json = undefined;
  }
  return { status: response.status, headers: response.headers, text, json, content };
}

/** The value of one sample of a Prometheus text exposition, e.g. ('gateway_upstream_keys', {provider:'openai', state:'cooling'}). */
export function sampleValue(exposition: string, name: string, labels: Record<string, string>): number | undefined {
  const wanted = Object.entries(labels).map(([label, value]) => `${label}="${value}"`);
  for (const line of exposition.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const parts = line.slice(name.length + 1, line.indexOf('}')).split(',');
    if (wanted.every((pair) => parts.includes(pair))) return Number(line.slice(line.indexOf('}') + 1).trim());
  }
  return undefined;
}

/** One sample of the gateway's /metrics. */
export async function metricValue(gatewayUrl: string, name: string, labels: Record<string, string>): Promise<number | undefined> {
  return sampleValue(await (await fetch(`${gatewayUrl}/metrics`)).text(), name, labels);
}

/** gateway_upstream_keys of one provider, all three states from one scrape. */
export async function keyGauge(gatewayUrl: string, provider: string): Promise<Record<'active' | 'cooling' | 'disabled', number | undefined>> {
  const text = await (await fetch(`${gatewayUrl}/metrics`)).text();
  const state = (name: string) => sampleValue(text, 'gateway_upstream_keys', { provider, state: name });
  return { active: state('active'), cooling: state('cooling'), disabled: state('disabled') };
}

export const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `check` until it stops throwing (or returns true), up to `timeoutMs`. */
export async function eventually(check: () => unknown, timeoutMs = 10_000, everyMs = 20): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const result = await check();
      if (result !== false) return;
      if (Date.now() > deadline) throw new Error('condition not met in time');
    } catch (error) {
      if (Date.now() > deadline) throw error;
    }
    await pause(everyMs);
  }
}

/** No key, nor a recognisable piece of one, anywhere in `text` (logs, bodies, metrics). */
export function expectNoKeyMaterial(text: string, keys: readonly string[]): void {
  for (const key of keys) {
    expect(text).not.toContain(key);
    expect(text).not.toContain(key.slice(0, 12));
    expect(text).not.toContain(key.slice(-12));
  }
}

/**
 * Closes a test gateway without waiting for the test client's spare keep-alive connections
 * (fetch opens one ahead after an aborted request; the server would wait for it to time out).
 * Only for the end of a test, when no request of the test is in flight any more.
 */
export async function stopGateway(gateway: { app: { server: { closeAllConnections(): void } }; close(): Promise<void> }): Promise<void> {
  const closing = gateway.close();
  gateway.app.server.closeAllConnections();
  await closing;
}

/**
 * The end of a test's gateway: no key material in anything it logged, then closed (see
 * stopGateway). Checked before closing so the failure names the test that leaked.
 */
export async function closeCheckedGateway(gateway: RunningGateway, keys: readonly string[]): Promise<void> {
  expectNoKeyMaterial(gateway.logs.join('\n'), keys);
  await stopGateway(gateway);
}

/** One fake upstream for a test file, and the gateway the running test started against it. */
export interface GatewayE2e {
  /** Started before the file's first test, closed after its last (see setUpFakeUpstream). */
  readonly fake: FakeUpstream;
  /** The running test's gateway (if it started one): closed by closeCheckedGateway after the test. */
  gateway: RunningGateway | undefined;
  /**
   * Starts `gateway` and has it fetch its model lists once, then forgets those requests, so
   * what a test queues on the fake (failures, slowness) only meets its completions.
   */
  startWarmGateway(env?: Record<string, string>): Promise<RunningGateway>;
}

/**
 * Registers the hooks of an end-to-end upstream test file and gives its shared state: the fake
 * upstream of setUpFakeUpstream, and after each test the test's gateway checked for `keys` in
 * its logs and closed (before the fake is reset).
 */
export function setUpGatewayE2e(keys: readonly string[] = [...TEST_OPENAI_KEYS, ...TEST_GROQ_KEYS]): GatewayE2e {
  const upstream = setUpFakeUpstream();
  const e2e: GatewayE2e = {
    get fake(): FakeUpstream {
      return upstream.fake;
    },
    gateway: undefined,
    async startWarmGateway(env = {}) {
      const gateway = await startGateway(e2e.fake, env);
      e2e.gateway = gateway;
      expect((await chat(gateway.url)).status).toBe(200);
      e2e.fake.requests.length = 0;
      return gateway;
    },
  };

  // Registered after the fixture's hooks, so (vitest runs after-hooks last in, first out) it
  // runs before the fake is reset.
  afterEach(async () => {
    if (e2e.gateway) {
      await closeCheckedGateway(e2e.gateway, keys);
      e2e.gateway = undefined;
    }
  });

  return e2e;
}
