/**
 * KEYS_FILE hot reload through the real gateway, under continuous traffic: by file change and
 * by SIGHUP. No request may fail, the new key must be used, a removed key must never reach the
 * upstream again once the reload is in force, requests in flight finish on the key they
 * started with, and a malformed file is refused with a log line while the old keys go on.
 *
 * SIGHUP is sent to this very process (vitest runs each file in its own fork), wired to the
 * reload list as src/main.ts wires it (reloadOnHangup); the gateway, started with KEYS_FILE,
 * registers its key reload there. test/process-signals.test.ts signals the real process.
 */
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { reloadOnHangup } from '../src/reload/on-hangup.js';
import { answerFor } from './helpers/fake-upstream.js';
import { startGateway, TEST_OPENAI_KEYS, type RunningGateway } from './helpers/gateway.js';
import { chat, eventually, keyGauge, pause, setUpGatewayE2e, uniqueContent } from './helpers/upstream-e2e.js';

const OLD_A = 'sk-reload-old-alpha-aaaaaaaaaaaaaaaaaa';
const OLD_B = 'sk-reload-old-bravo-bbbbbbbbbbbbbbbbbb';
const NEW_C = 'sk-reload-new-charlie-cccccccccccccccc';
const NEW_D = 'sk-reload-new-delta-dddddddddddddddddd';
const GROQ_G = 'gsk_reload_groq_golf_gggggggggggggggggg';
const BROKEN_FRAGMENT = 'sk-reload-broken-echo-eeeeeeeeeeeeee';
const ALL_KEYS = [OLD_A, OLD_B, NEW_C, NEW_D, GROQ_G, BROKEN_FRAGMENT, ...TEST_OPENAI_KEYS];

let dir: string;
let keysFile: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'keys-reload-'));
  keysFile = join(dir, 'keys.json');
});

// Registered before the gateway's hooks: after-hooks run last in, first out, so the keys file
// is removed only once the gateway (which watches it) is closed.
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const e2e = setUpGatewayE2e(ALL_KEYS);

let stopReloadOnHangup: () => void = () => {};
beforeAll(() => {
  stopReloadOnHangup = reloadOnHangup(() => e2e.gateway?.app.log);
});
afterAll(() => stopReloadOnHangup());

/** Replace the file the way deploy tools do: write aside, then rename over it (atomic). */
async function writeKeys(keys: { openai?: string[]; groq?: string[] } | string): Promise<void> {
  const text = typeof keys === 'string' ? keys : JSON.stringify(keys);
  const aside = `${keysFile}.${process.hrtime.bigint()}.tmp`;
  await writeFile(aside, text);
  await rename(aside, keysFile);
}

async function start(keys: { openai?: string[]; groq?: string[] }): Promise<RunningGateway> {
  await writeKeys(keys);
  return e2e.startWarmGateway({
    KEYS_FILE: keysFile,
    // The environment's keys are ignored when KEYS_FILE is set: they must never be used.
    OPENAI_API_KEYS: TEST_OPENAI_KEYS.join(','),
  });
}

interface LogLine {
  msg: string;
  trigger?: string;
  err?: string;
  [field: string]: unknown;
}

function logLines(gw: RunningGateway): LogLine[] {
  return gw.logs.map((line) => JSON.parse(line) as LogLine);
}

/** Waits for the next log line with this message (and trigger); resolves once it was written. */
async function nextLog(gw: RunningGateway, msg: string, after: number, match: Record<string, string | RegExp> = {}): Promise<LogLine> {
  let found: LogLine | undefined;
  const matches = (line: LogLine) =>
    line.msg === msg && Object.entries(match).every(([field, value]) => (value instanceof RegExp ? value.test(String(line[field])) : line[field] === value));
  await eventually(
    () => {
      found = logLines(gw).slice(after).find(matches);
      return found !== undefined;
    },
    5_000,
    5,
  );
  return found!;
}

interface Outcome {
  content: string;
  sentAt: number;
  status: number;
  complete: boolean;
}

/**
 * Four clients asking without pause (JSON and streams, every question new), until stopped.
 * The fake answers with a little latency, so requests are always in flight.
 */
function startTraffic(gw: RunningGateway, maxMs = 6_000): { outcomes: Outcome[]; stop(): Promise<void> } {
  const outcomes: Outcome[] = [];
  let running = true;
  const deadline = performance.now() + maxMs;
  const loop = async (worker: number) => {
    for (let i = 0; running && performance.now() < deadline; i++) {
      const stream = (i + worker) % 2 === 0;
      const content = uniqueContent(`load-${worker}`);
      const sentAt = performance.now();
      const answer = await chat(gw.url, { stream, content });
      const complete = stream
        ? answer.text.includes('data: [DONE]') && !answer.text.includes('"error"')
        : (answer.json?.choices as Array<{ message?: { content?: string } }> | undefined)?.[0]?.message?.content === answerFor({ messages: [{ content }] });
      outcomes.push({ content, sentAt, status: answer.status, complete });
    }
  };
  const loops = [0, 1, 2, 3].map(loop);
  return {
    outcomes,
    stop: async () => {
      running = false;
      await Promise.all(loops);
    },
  };
}

function keyOfContent(content: string): string | undefined {
  return e2e.fake.completionCalls().find((record) => JSON.stringify(record.json?.messages ?? '').includes(content))?.key;
}

function expectNoFailures(outcomes: readonly Outcome[]): void {
  expect(outcomes.length).toBeGreaterThan(20);
  expect(outcomes.filter((outcome) => outcome.status !== 200 || !outcome.complete)).toEqual([]);
}

/** Every request the client sent after `appliedAt` reached the upstream with a key of `allowed`. */
function expectOnlyKeysAfter(outcomes: readonly Outcome[], appliedAt: number, allowed: readonly string[]): void {
  const after = outcomes.filter((outcome) => outcome.sentAt > appliedAt);
  expect(after.length).toBeGreaterThan(5);
  for (const outcome of after) expect(allowed).toContain(keyOfContent(outcome.content));
}

describe('reload under continuous traffic', () => {
  it('by file change: no request fails, the new key is used, the removed key is never used again', async () => {
    const gw = await start({ openai: [OLD_A, OLD_B], groq: [GROQ_G] });
    e2e.fake.options.latencyMs = 20;
    e2e.fake.options.chunkDelayMs = 5;
    const traffic = startTraffic(gw);
    await pause(400);
    const logsBefore = gw.logs.length;
    await writeKeys({ openai: [OLD_B, NEW_C], groq: [GROQ_G] });
    const reloaded = await nextLog(gw, 'provider keys reloaded', logsBefore);
    const appliedAt = performance.now();
    expect(reloaded.trigger).toBe('change');
    await pause(600);
    await traffic.stop();

    expectNoFailures(traffic.outcomes);
    const usedKeys = new Set(e2e.fake.completionCalls().map((record) => record.key));
    expect(usedKeys.has(NEW_C)).toBe(true);
    expect(usedKeys.has(OLD_A)).toBe(true);
    // The environment's keys lost to the file.
    for (const key of TEST_OPENAI_KEYS) expect(usedKeys.has(key)).toBe(false);
    expectOnlyKeysAfter(traffic.outcomes, appliedAt, [OLD_B, NEW_C]);
    expect(await keyGauge(gw.url, 'openai')).toEqual({ active: 2, cooling: 0, disabled: 0 });
    // The reload's log line names the change by key ids, never by key.
    expect(reloaded.openai).toEqual({ keys: 2, added: [expect.stringMatching(/^k_[0-9a-f]{10}$/)], removed: [expect.stringMatching(/^k_[0-9a-f]{10}$/)] });
  });

  it('by SIGHUP: the same guarantees', async () => {
    const gw = await start({ openai: [OLD_A], groq: [GROQ_G] });
    e2e.fake.options.latencyMs = 20;
    e2e.fake.options.chunkDelayMs = 5;
    const traffic = startTraffic(gw);
    await pause(400);
    const logsBefore = gw.logs.length;
    await writeKeys({ openai: [NEW_C, NEW_D], groq: [GROQ_G] });
    process.kill(process.pid, 'SIGHUP');
    await nextLog(gw, 'SIGHUP: reloading provider keys', logsBefore);
    await nextLog(gw, 'provider keys reloaded', logsBefore);
    const appliedAt = performance.now();
    await pause(600);
    await traffic.stop();

    expectNoFailures(traffic.outcomes);
    const usedKeys = new Set(e2e.fake.completionCalls().map((record) => record.key));
    expect(usedKeys.has(NEW_C) && usedKeys.has(NEW_D)).toBe(true);
    expectOnlyKeysAfter(traffic.outcomes, appliedAt, [NEW_C, NEW_D]);
    expect(await keyGauge(gw.url, 'openai')).toEqual({ active: 2, cooling: 0, disabled: 0 });
  });

  it('a malformed file is refused with a log line, and the old keys stay in force', async () => {
    const gw = await start({ openai: [OLD_A, OLD_B], groq: [GROQ_G] });
    e2e.fake.options.latencyMs = 20;
    const traffic = startTraffic(gw);
    await pause(300);

    const broken: Array<[string, RegExp]> = [
      [`{"openai": ["${BROKEN_FRAGMENT}", `, /not valid JSON/], // cut short
      [JSON.stringify({ openai: BROKEN_FRAGMENT }), /must be an array/],
      [JSON.stringify({ openai: [`${BROKEN_FRAGMENT} x`] }), /without whitespace/],
      [JSON.stringify({ opneai: [BROKEN_FRAGMENT] }), /unknown field "opneai"/],
    ];
    for (const [text, reason] of broken) {
      const logsBefore = gw.logs.length;
      await writeKeys(text);
      await nextLog(gw, 'keys file refused; the previous keys stay in force', logsBefore, { trigger: 'change', err: reason });
    }
    // SIGHUP reads the same broken file: refused too.
    const logsBefore = gw.logs.length;
    process.kill(process.pid, 'SIGHUP');
    // (The polling watcher may still log a refusal of its own for the last write: look for the signal's.)
    await nextLog(gw, 'keys file refused; the previous keys stay in force', logsBefore, { trigger: 'signal', err: /unknown field/ });
    const refusedAt = performance.now();
    await pause(400);
    await traffic.stop();

    expectNoFailures(traffic.outcomes);
    // The old keys served everything, before and after the refusals.
    expectOnlyKeysAfter(traffic.outcomes, refusedAt, [OLD_A, OLD_B]);
    const usedKeys = new Set(e2e.fake.completionCalls().map((record) => record.key));
    expect(usedKeys).toEqual(new Set([OLD_A, OLD_B]));
    expect(await keyGauge(gw.url, 'openai')).toEqual({ active: 2, cooling: 0, disabled: 0 });
    expect(logLines(gw).some((line) => line.msg === 'provider keys reloaded')).toBe(false);

    // A good file afterwards is taken.
    const beforeFix = gw.logs.length;
    await writeKeys({ openai: [NEW_C], groq: [GROQ_G] });
    await nextLog(gw, 'provider keys reloaded', beforeFix);
    e2e.fake.requests.length = 0;
    expect((await chat(gw.url)).status).toBe(200);
    expect(e2e.fake.completionCalls().map((record) => record.key)).toEqual([NEW_C]);
  });
});

describe('reload semantics', () => {
  it('a request in flight finishes on the key it started with, even when that key is removed', async () => {
    const gw = await start({ openai: [OLD_A], groq: [GROQ_G] });
    e2e.fake.options.chunkDelayMs = 120;
    const content = uniqueContent('in-flight');
    const streaming = chat(gw.url, { stream: true, content });
    await eventually(() => expect(keyOfContent(content)).toBe(OLD_A), 3_000, 5);

    const logsBefore = gw.logs.length;
    await writeKeys({ openai: [NEW_C], groq: [GROQ_G] });
    await nextLog(gw, 'provider keys reloaded', logsBefore);
    // The next request already uses the new key, while the old stream still runs.
    e2e.fake.options.chunkDelayMs = 0;
    const next = uniqueContent('after-reload');
    expect((await chat(gw.url, { content: next })).status).toBe(200);
    expect(keyOfContent(next)).toBe(NEW_C);

    const answer = await streaming;
    expect(answer.status).toBe(200);
    expect(answer.text).toContain('data: [DONE]');
    const record = e2e.fake.completionCalls().find((call) => call.key === OLD_A);
    expect(record?.aborted).toBe(false);
    expect(e2e.fake.completionCalls().filter((call) => call.key === OLD_A)).toHaveLength(1);
  });

  it('SIGHUP re-enables keys the provider rejected; a file change that changes nothing does not', async () => {
    const gw = await start({ openai: [OLD_A, OLD_B], groq: [GROQ_G] });
    e2e.fake.keyResponses.set(OLD_B, {
      status: 401,
      body: { error: { message: 'Incorrect API key provided', type: 'invalid_request_error', code: 'invalid_api_key' } },
    });
    for (let i = 0; i < 3; i++) expect((await chat(gw.url)).status).toBe(200);
    expect(await keyGauge(gw.url, 'openai')).toEqual({ active: 1, cooling: 0, disabled: 1 });
    e2e.fake.keyResponses.delete(OLD_B); // the operator fixed the key at the provider

    // Rewriting the same set is not a reload: the rejected key stays disabled.
    await writeKeys({ openai: [OLD_A, OLD_B], groq: [GROQ_G] });
    await pause(400);
    expect(await keyGauge(gw.url, 'openai')).toEqual({ active: 1, cooling: 0, disabled: 1 });

    const logsBefore = gw.logs.length;
    process.kill(process.pid, 'SIGHUP');
    await nextLog(gw, 'provider keys reloaded', logsBefore);
    expect(await keyGauge(gw.url, 'openai')).toEqual({ active: 2, cooling: 0, disabled: 0 });
    e2e.fake.requests.length = 0;
    for (let i = 0; i < 4; i++) expect((await chat(gw.url)).status).toBe(200);
    expect(new Set(e2e.fake.completionCalls().map((record) => record.key))).toEqual(new Set([OLD_A, OLD_B]));
  });

  it('a reload that leaves a provider without keys: its requests get 503 no_provider_keys, the other provider goes on', async () => {
    const gw = await start({ openai: [OLD_A], groq: [GROQ_G] });
    const logsBefore = gw.logs.length;
    await writeKeys({ groq: [GROQ_G] });
    await nextLog(gw, 'provider keys reloaded', logsBefore);
    const answer = await chat(gw.url, { model: 'openai/gpt-4o-mini' });
    expect(answer.status).toBe(503);
    expect(answer.json).toEqual({ error: expect.objectContaining({ code: 'no_provider_keys' }) });
    expect((await chat(gw.url, { prefix: '/openai/v1', model: 'llama-3.1-8b-instant' })).status).toBe(200);
  });
});

describe('without KEYS_FILE', () => {
  it('the environment keys are used, and buildServer installs no SIGHUP handler', async () => {
    const listeners = process.listenerCount('SIGHUP');
    e2e.gateway = await startGateway(e2e.fake);
    expect(process.listenerCount('SIGHUP')).toBe(listeners);
    for (let i = 0; i < 4; i++) expect((await chat(e2e.gateway.url)).status).toBe(200);
    expect(new Set(e2e.fake.completionCalls().map((record) => record.key))).toEqual(new Set(TEST_OPENAI_KEYS));
  });
});
