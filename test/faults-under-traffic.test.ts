/**
 * Faults under light traffic, on both cache stores: the upstream resets connections before any
 * answer, hangs, answers 500, or cuts its answers mid-way; Redis is killed and started again.
 * While each fault lasts, four clients keep sending (JSON and streams, through fetch and the real
 * openai SDK, cached and fresh prompts), and every answer is judged: correct, a proper error
 * (OpenAI's shape; a stream already under way ends with an error event the SDK raises), or
 * wrong. None may be wrong. Once the fault is gone, a request that failed during it is a MISS
 * (nothing broken was cached), then a complete HIT. The figures are printed as a table.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { BACKENDS, chat, chatBody, parseStream, streamText, unique, until, untilStored, useGateway, type E2eSetup } from './helpers/cache-e2e.js';
import { answerFor } from './helpers/fake-upstream.js';
import { OPENAI_SERVER_ERROR, type FaultProxy, type UpstreamFault } from './helpers/fault-proxy.js';
import { formatTable, sendJudged, startTraffic, tally, wrongOnes, type Outcome, type Tally } from './helpers/fault-traffic.js';
import type { RunningGateway } from './helpers/gateway.js';
import OpenAI from 'openai';

/** Short, so a hung upstream costs the traffic little; long enough for a busy box's fake to answer. */
const HEADERS_TIMEOUT_MS = 750;
/** No answer may take longer: the headers timeout or two retries with their backoff, plus slack. */
const BOUND_MS = 8_000;
const CLIENTS = 4;
const PER_CLIENT = 8;

interface FaultSpec {
  fault: UpstreamFault;
  name: string;
  serverError?: FaultProxy['serverError'];
}

/** What a CDN or load balancer in front of a provider sends when the provider is down. */
const HTML_BAD_GATEWAY = {
  status: 502,
  contentType: 'text/html',
  body: '<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center><hr><center>cloudflare</center></body></html>',
};

const UPSTREAM_FAULTS: readonly FaultSpec[] = [
  { fault: 'reset', name: 'upstream reset before the headers' },
  { fault: 'hang', name: 'upstream hang (headers timeout)' },
  { fault: 'server-error', name: 'upstream 500' },
  {
    fault: 'server-error',
    name: 'upstream 502 HTML page',
    serverError: HTML_BAD_GATEWAY,
  },
  { fault: 'cut', name: 'upstream cut mid-answer' },
];

const rows: Array<[string, string, number, number, number, number, string]> = [];

afterAll(() => {
  if (rows.length === 0) return;
  const header = ['store', 'fault', 'sent', 'correct', 'proper error', 'wrong', 'X-Cache of the correct'] as const;
  process.stdout.write(`\nfaults under traffic (${CLIENTS} clients):\n${formatTable([header, ...rows])}\n`);
});

function record(store: string, fault: string, counts: Tally): void {
  rows.push([store, fault, counts.sent, counts.correct, counts.properError, counts.wrong, counts.cache]);
}

const sdkFor = (gateway: RunningGateway): OpenAI => new OpenAI({ apiKey: 'any', baseURL: gateway.baseURL, maxRetries: 0, timeout: BOUND_MS });

/** Prompts answered once and now in the cache (the first request a MISS, a repeat a HIT). */
async function cachedPrompts(gateway: RunningGateway, count: number): Promise<string[]> {
  const prompts = Array.from({ length: count }, () => unique('cached'));
  for (const prompt of prompts) {
    expect((await chat(gateway, chatBody(prompt))).xCache).toBe('MISS');
    expect((await untilStored(() => chat(gateway, chatBody(prompt)))).xCache).toBe('HIT');
  }
  return prompts;
}

/**
 * After the fault: `jsonPrompt` and `streamPrompt` (which failed, or were served uncached, during
 * it) are a MISS with the whole answer, then a HIT: the same bytes for JSON, the same content for
 * a stream.
 */
async function expectMissThenHit(gateway: RunningGateway, jsonPrompt: string, streamPrompt: string): Promise<void> {
  const fresh = await chat(gateway, chatBody(jsonPrompt));
  expect(fresh.status).toBe(200);
  expect(fresh.xCache).toBe('MISS');
  expect((JSON.parse(fresh.text) as { choices: Array<{ message: { content: string } }> }).choices[0]?.message.content).toBe(
    answerFor({ messages: [{ content: jsonPrompt }] }),
  );
  const hit = await untilStored(() => chat(gateway, chatBody(jsonPrompt)));
  expect(hit.xCache).toBe('HIT');
  expect(hit.text).toBe(fresh.text);

  const streamBody = chatBody(streamPrompt, { stream: true });
  const freshStream = await chat(gateway, streamBody);
  expect(freshStream.xCache).toBe('MISS');
  const parsed = parseStream(freshStream.text);
  expect(parsed.done).toBe(true);
  expect(streamText(parsed)).toBe(answerFor({ messages: [{ content: streamPrompt }] }));
  const streamHit = await untilStored(() => chat(gateway, streamBody));
  expect(streamHit.xCache).toBe('HIT');
  const replayed = parseStream(streamHit.text);
  expect(replayed.done).toBe(true);
  expect(streamText(replayed)).toBe(streamText(parsed));
}

function expectNoneWrong(outcomes: readonly Outcome[]): void {
  expect(wrongOnes(outcomes)).toEqual([]);
}

async function upstreamFault(setup: E2eSetup, store: string, { fault, name, serverError }: FaultSpec): Promise<void> {
  const { gateway } = setup;
  const proxy = setup.faults!;
  proxy.serverError = serverError ?? OPENAI_SERVER_ERROR;
  const repeated = await cachedPrompts(gateway, 3);
  const probe = { json: unique('probe-json'), stream: unique('probe-stream') };

  proxy.fault = fault;
  const sdk = sdkFor(gateway);
  const [outcomes, probeJson, probeStream] = await Promise.all([
    startTraffic(gateway, { repeated, clients: CLIENTS, perClient: PER_CLIENT, boundMs: BOUND_MS }).done,
    sendJudged(gateway, sdk, 'json', probe.json, BOUND_MS),
    sendJudged(gateway, sdk, 'stream', probe.stream, BOUND_MS),
  ]);
  proxy.fault = undefined;

  const counts = tally(outcomes);
  record(store, name, counts);
  expectNoneWrong([...outcomes, probeJson, probeStream]);
  // The fault was felt (fresh prompts failed properly) and the cache kept answering meanwhile.
  expect(counts.properError).toBeGreaterThan(0);
  expect(outcomes.filter((o) => o.verdict === 'correct' && o.xCache === 'HIT').length).toBeGreaterThan(0);
  expect([probeJson.verdict, probeStream.verdict]).toEqual(['proper-error', 'proper-error']);
  if (fault === 'cut') {
    // Some streams were cut after their first bytes had reached the client: an error event, not a retry.
    expect(outcomes.filter((o) => o.verdict === 'proper-error' && o.status === 200).length).toBeGreaterThan(0);
  }
  if (fault === 'hang') {
    // Every hung upstream request was given up by the gateway, not left open.
    expect(await until(() => proxy.hanging === 0, 5_000)).toBe(true);
  }
  await expectMissThenHit(gateway, probe.json, probe.stream);
}

for (const store of BACKENDS) {
  describe(`faults under traffic, ${store} cache`, () => {
    const setup = useGateway(store, {
      faulty: true,
      env: { UPSTREAM_HEADERS_TIMEOUT_MS: String(HEADERS_TIMEOUT_MS), UPSTREAM_MAX_RETRIES: '2', REDIS_COMMAND_TIMEOUT_MS: '1000' },
    });

    for (const spec of UPSTREAM_FAULTS) {
      const title = `${spec.name}: every answer correct or a proper error, then MISS and a whole HIT`;
      it(title, () => upstreamFault(setup, store, spec));
    }

    if (store === 'redis') {
      it('Redis killed and restarted: BYPASS while it is down, HIT again after, nothing wrong', async () => {
        const { gateway } = setup;
        const redis = setup.redis!;
        const repeated = await cachedPrompts(gateway, 3);
        let stopping = false;
        const traffic = startTraffic(gateway, { repeated, clients: CLIENTS, perClient: 200, boundMs: BOUND_MS, stop: () => stopping });
        const countSince = (since: number, xCache: string): number => traffic.outcomes.filter((o) => o.startedAt > since && o.xCache === xCache).length;
        try {
          expect(await until(() => traffic.outcomes.length >= 4, 10_000)).toBe(true);
          redis.kill();
          const killedAt = performance.now();
          expect(await until(() => countSince(killedAt, 'BYPASS') >= 4, 10_000)).toBe(true);
          const probe = { json: unique('probe-json'), stream: unique('probe-stream') };
          const sdk = sdkFor(gateway);
          const during = [await sendJudged(gateway, sdk, 'json', probe.json, BOUND_MS), await sendJudged(gateway, sdk, 'stream', probe.stream, BOUND_MS)];
          expect(during.map((o) => [o.verdict, o.xCache])).toEqual([
            ['correct', 'BYPASS'],
            ['correct', 'BYPASS'],
          ]);

          await redis.restart();
          const restartedAt = performance.now();
          // The store re-dials on its own (capped back-off) and the traffic fills it again.
          expect(await until(() => countSince(restartedAt, 'HIT') >= 2, 15_000)).toBe(true);
          stopping = true;
          const outcomes = await traffic.done;
          const counts = tally(outcomes);
          record(store, 'Redis killed, restarted', counts);
          expectNoneWrong(outcomes);
          expect(counts.sent).toBeGreaterThanOrEqual(8);
          await expectMissThenHit(gateway, probe.json, probe.stream);
        } finally {
          stopping = true;
          await traffic.done;
        }
      });
    }
  });
}
