/**
 * The seeded fuzzer at the size `npm test` affords (`npm run fuzz` runs more): at least 2,000
 * cases over every route — JSON field mutations, raw-byte mutations, HTTP framing and headers,
 * 26 MiB bodies — against the real gateway and a fake upstream. Every answer is a correct one or
 * a 4xx in OpenAI's shape, no 5xx, no hang, /healthz answers throughout, the client's key never
 * goes upstream. The statistics are printed; FUZZ_SEED (default fixed, so CI runs are
 * repeatable) and FUZZ_CASES change the run, and every failure prints the command to replay it.
 */
import { expect, it } from 'vitest';
import { runCampaign, settingsFromEnv } from './fuzz/campaign.js';

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
