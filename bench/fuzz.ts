/**
 * `npm run fuzz`: the seeded fuzzer of test/fuzz.test.ts at a larger size, against the gateway
 * in-process with a fake upstream, all on loopback. FUZZ_CASES (default 20,000), FUZZ_SEED
 * (default: a new one per run, printed), FUZZ_LARGE (26 MiB-class cases, default 1 per 1,000
 * cases, at least 6), FUZZ_CONCURRENCY (8), FUZZ_TIMEOUT_MS (10,000: longer without an answer
 * is a hang), FUZZ_MAX_SECONDS (900), FUZZ_ONLY (case indices to replay, comma-separated).
 * Prints the statistics; exits 1 when any answer was wrong.
 */
import { randomInt } from 'node:crypto';
import { runCampaign, settingsFromEnv } from '../test/fuzz/campaign.js';

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

console.log(`fuzz: seed ${settings.seed}, ${settings.only ? `replaying cases ${settings.only.join(',')} of ` : ''}${settings.cases} cases, ${settings.largeCases} large, concurrency ${settings.concurrency}`);
const { report, text, clientKeyLeaks } = await runCampaign(settings, { LOG_LEVEL: process.env.LOG_LEVEL ?? 'info' });
console.log(text);
process.exitCode = report.violations.length > 0 || clientKeyLeaks > 0 || report.stoppedEarly ? 1 : 0;
