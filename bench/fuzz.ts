/**
 * `npm run fuzz`: the seeded fuzzer of test/fuzz.test.ts at a larger size, against the gateway
 * in-process with a fake upstream, all on loopback. FUZZ_CASES (default 20,000), FUZZ_SEED
 * (default: a new one per run, printed), FUZZ_LARGE (26 MiB-class cases, default 1 per 1,000
 * cases, at least 6), FUZZ_CONCURRENCY (8), FUZZ_TIMEOUT_MS (10,000: longer without an answer
 * is a hang), FUZZ_MAX_SECONDS (900, for each of the two runs), FUZZ_ONLY (case indices to
 * replay, comma-separated). Then the same cases' cached-route requests sent with and without a
 * query string, before and once stored (test/fuzz/entry-paths.ts), every one compared. Prints both statistics blocks; exits 1 when any answer was wrong or two disagreed.
 */
import { randomInt } from 'node:crypto';
import { runCampaign, runEntryPathCampaign, settingsFromEnv } from '../test/fuzz/campaign.js';

const cases = Number(process.env.FUZZ_CASES ?? 20_000);
const settings = settingsFromEnv(process.env, {
  seed: randomInt(1, 2 ** 31 - 1),
  cases,
  largeCases: Math.max(6, Math.round(cases / 1_000)),
  concurrency: 8,
  answerTimeoutMs: 10_000,
  healthEvery: 200,
  maxDurationMs: 900_000,
});

console.log(
  `fuzz: seed ${settings.seed}, ${settings.only ? `replaying cases ${settings.only.join(',')} of ` : ''}${settings.cases} cases, ${settings.largeCases} large, concurrency ${settings.concurrency}`,
);
const env = { LOG_LEVEL: process.env.LOG_LEVEL ?? 'info' };
const { report, text, clientKeyLeaks } = await runCampaign(settings, env);
console.log(text);
const failed = report.violations.length > 0 || clientKeyLeaks > 0 || report.stoppedEarly;
const waysIn = await runEntryPathCampaign(settings, env);
console.log(waysIn.text);
process.exitCode = failed || waysIn.report.violations.length > 0 || waysIn.clientKeyLeaks > 0 || waysIn.report.stoppedEarly ? 1 : 0;
