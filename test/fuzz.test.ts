/**
 * The seeded fuzzer at the size `npm test` affords (`npm run fuzz` runs more): at least 2,000
 * cases over every route — JSON field mutations, raw-byte mutations, HTTP framing and headers,
 * 26 MiB bodies — against the real gateway and a fake upstream. Every answer is a correct one or
 * a 4xx in OpenAI's shape, no 5xx, no hang, /healthz answers throughout, the client's key never
 * goes upstream. Then every request of those cases that names a cached route is sent with and
 * without a query string (test/fuzz/entry-paths.ts), before and once its answer is stored, and
 * must get the same answer, none of them reaching Fastify. The statistics are printed; FUZZ_SEED (default fixed, so CI runs are
 * repeatable) and FUZZ_CASES change the run, and every failure prints the command to replay it.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { expect, it } from 'vitest';
import { runCampaign, runEntryPathCampaign, settingsFromEnv, type CampaignSettings } from './fuzz/campaign.js';
import { generateCase } from './fuzz/run.js';
import { TEST_CLIENT_KEY } from './helpers/gateway.js';

const settings = settingsFromEnv(process.env, {
  seed: 20_240_611,
  cases: 2_000,
  largeCases: 6,
  concurrency: 6,
  answerTimeoutMs: 10_000,
  healthEvery: 100,
  maxDurationMs: 120_000,
});

it(`fuzz: ${settings.cases} seeded cases (seed ${settings.seed}): correct answers or OpenAI-shaped 4xx, never a 5xx or a hang`, async () => {
  const { report, text, clientKeyLeaks } = await runCampaign(settings);
  console.log(text);
  expect(report.stoppedEarly, text).toBe(false);
  expect(report.cases).toBeGreaterThanOrEqual(settings.only ? settings.only.length : Math.min(settings.cases, 2_000));
  expect(report.healthProbes).toBeGreaterThan(settings.cases / settings.healthEvery);
  expect(clientKeyLeaks, text).toBe(0);
  expect(report.violations.length, text).toBe(0);
}, 180_000);

it(`fuzz ways in: every cached-route request of the ${settings.cases} cases gets the same answer with a query string as without, and once stored as before, none reaching Fastify`, async () => {
  const { report, text, clientKeyLeaks } = await runEntryPathCampaign(settings);
  console.log(text);
  expect(report.stoppedEarly, text).toBe(false);
  if (!settings.only) {
    expect(report.cases).toBe(settings.cases);
    expect(report.inputs, text).toBeGreaterThanOrEqual(Math.min(1_000, settings.cases / 2));
    // Not a vacuous comparison: a good share of the pairs were two hits of one stored answer.
    expect(report.byteCompared, text).toBeGreaterThan(report.inputs / 10);
    expect(report.hitPairs, text).toBeGreaterThanOrEqual(report.byteCompared);
  }
  // The cached routes' pipeline owns every one of them (the count is live: see the test below).
  expect(report.seenByFastify, text).toBe(0);
  expect(clientKeyLeaks, text).toBe(0);
  expect(report.violations.length, text).toBe(0);
}, 180_000);

/**
 * A rule only one way in applies, as the hit fast path's own copy of Fastify's content-type rule
 * once was: a request with a query string and any Content-Type but exactly `application/json`
 * is refused, before the gateway's own request listener sees it.
 */
function strictMediaTypeWithQuery(app: FastifyInstance): void {
  const [gateway] = app.server.listeners('request') as Array<(request: IncomingMessage, response: ServerResponse) => void>;
  app.server.removeAllListeners('request');
  app.server.on('request', (request: IncomingMessage, response: ServerResponse) => {
    const type = request.headers['content-type'];
    if (!request.url?.includes('?') || type === undefined || type === 'application/json') return gateway!(request, response);
    response.writeHead(415, { 'content-type': 'application/json', connection: 'close' });
    response.end(JSON.stringify({ error: { message: 'strict media type', type: 'invalid_request_error', code: 'unsupported_media_type' } }));
  });
}

/** Fastify's hooks see a cached-route request: the count of those is live, not always 0. */
function cachedRoutesToFastify(app: FastifyInstance): void {
  const [gateway] = app.server.listeners('request') as Array<(request: IncomingMessage, response: ServerResponse) => void>;
  app.server.removeAllListeners('request');
  // Fastify's own handler, reached through its routing (the cached-route guard answers).
  app.server.on('request', (request: IncomingMessage, response: ServerResponse) => {
    if (!request.url?.includes('?x=1')) return gateway!(request, response);
    void app.routing(request, response);
  });
}

it('fuzz ways in: an answer only one way in gives is a disagreement, reported with its case number and the command that replays it', async () => {
  // The corpus's cases that send a JSON media type spelt otherwise (with parameters, in capitals).
  const ctx = { port: 0, clientKey: TEST_CLIENT_KEY, seed: settings.seed };
  const only: number[] = [];
  for (let index = 0; only.length < 4 && index < 20_000; index++) {
    if (/^agree: Content-Type "(application\/json;|APPLICATION\/JSON)/.test(generateCase(ctx, index, new Map(), 1_000_000).label)) only.push(index);
  }
  const small: CampaignSettings = {
    seed: settings.seed,
    cases: 20_000,
    largeCases: 0,
    concurrency: 2,
    answerTimeoutMs: 10_000,
    healthEvery: 100,
    maxDurationMs: 60_000,
    only,
  };
  const { report, text } = await runEntryPathCampaign(small, {}, { beforeListen: strictMediaTypeWithQuery });
  const disagreements = report.violations.filter((v) => v.kind === 'disagreement');
  expect(only.length).toBe(4);
  expect(new Set(disagreements.map((v) => v.index)), text).toEqual(new Set(only));
  expect(text).toMatch(/e\.g\. case \d+: with and without a query: status: as sent 200 \(X-Cache HIT\) .*; \?x=1 415/);
  expect(text).toContain(`replay: FUZZ_SEED=${settings.seed} FUZZ_CASES=20000 FUZZ_LARGE=0 FUZZ_ONLY=`);

  // And a cached-route request that reached Fastify would be counted.
  const routed = await runEntryPathCampaign(small, {}, { beforeListen: cachedRoutesToFastify });
  expect(routed.report.seenByFastify, routed.text).toBeGreaterThan(0);
}, 60_000);
