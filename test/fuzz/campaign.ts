/**
 * One fuzz campaign end to end, shared by the test and `npm run fuzz`: a fake upstream, the
 * gateway in-process (embedded cache, client keys on), the cases, the report, and a check that
 * the client's key never reached the upstream; then the same cases sent both ways into the
 * gateway (entry-paths.ts). Settings come from FUZZ_* variables so a failure printed by either
 * can be replayed with the same numbers.
 */
import type { FastifyInstance } from 'fastify';
import { startFakeUpstream } from '../helpers/fake-upstream.js';
import { startGateway, TEST_CLIENT_KEY, type StartOptions } from '../helpers/gateway.js';
import { compareEntryPaths, formatEntryPathReport, type EntryPathReport } from './entry-paths.js';
import { releaseLargeBodies } from './large.js';
import { formatReport, runFuzz, type FuzzReport } from './run.js';

export interface CampaignSettings {
  seed: number;
  cases: number;
  largeCases: number;
  concurrency: number;
  answerTimeoutMs: number;
  healthEvery: number;
  maxDurationMs: number;
  only?: number[];
}

export interface CampaignResult {
  report: FuzzReport;
  text: string;
  /** Upstream requests that carried the client's gateway key (must be none). */
  clientKeyLeaks: number;
  upstreamRequests: number;
}

const number = (value: string | undefined, fallback: number): number => {
  if (value === undefined || value === '') return fallback;
  const parsed = Number(value);
  if (!Number.isFinite(parsed)) throw new Error(`not a number: ${value}`);
  return parsed;
};

/** FUZZ_SEED, FUZZ_CASES, FUZZ_LARGE, FUZZ_CONCURRENCY, FUZZ_TIMEOUT_MS, FUZZ_MAX_SECONDS, FUZZ_ONLY over `defaults`. */
export function settingsFromEnv(env: NodeJS.ProcessEnv, defaults: CampaignSettings): CampaignSettings {
  const only = env.FUZZ_ONLY ? env.FUZZ_ONLY.split(',').map((s) => number(s.trim(), 0)) : undefined;
  return {
    seed: number(env.FUZZ_SEED, defaults.seed) >>> 0,
    cases: number(env.FUZZ_CASES, defaults.cases),
    largeCases: number(env.FUZZ_LARGE, defaults.largeCases),
    concurrency: number(env.FUZZ_CONCURRENCY, defaults.concurrency),
    answerTimeoutMs: number(env.FUZZ_TIMEOUT_MS, defaults.answerTimeoutMs),
    healthEvery: defaults.healthEvery,
    maxDurationMs: number(env.FUZZ_MAX_SECONDS, defaults.maxDurationMs / 1000) * 1000,
    ...(only ? { only } : {}),
  };
}

export function replayCommand(settings: CampaignSettings, indices: number[]): string {
  return `FUZZ_SEED=${settings.seed} FUZZ_CASES=${settings.cases} FUZZ_LARGE=${settings.largeCases} FUZZ_ONLY=${indices.join(',')} npm run fuzz`;
}

export async function runCampaign(settings: CampaignSettings, env: Record<string, string> = {}): Promise<CampaignResult> {
  const fake = await startFakeUpstream();
  const gateway = await startGateway(fake, { LOG_LEVEL: 'info', GATEWAY_API_KEYS: TEST_CLIENT_KEY, ...env });
  try {
    const port = Number(new URL(gateway.url).port);
    const report = await runFuzz({
      port,
      clientKey: TEST_CLIENT_KEY,
      seed: settings.seed,
      cases: settings.cases,
      largeCases: settings.largeCases,
      bodyLimit: gateway.config.bodyLimitBytes,
      concurrency: settings.concurrency,
      answerTimeoutMs: settings.answerTimeoutMs,
      healthEvery: settings.healthEvery,
      maxDurationMs: settings.maxDurationMs,
      ...(settings.only ? { only: settings.only } : {}),
    });
    const clientKeyLeaks = fake.requests.filter((r) => r.raw.includes(TEST_CLIENT_KEY) || JSON.stringify(r.headers).includes(TEST_CLIENT_KEY)).length;
    let text = formatReport(report, (indices) => replayCommand(settings, indices));
    text += `\nfuzz: upstream requests ${fake.requests.length}, carrying the client's key: ${clientKeyLeaks}`;
    return { report, text, clientKeyLeaks, upstreamRequests: fake.requests.length };
  } finally {
    releaseLargeBodies();
    gateway.app.server.closeAllConnections();
    await gateway.close();
    await fake.close();
  }
}

export interface EntryPathResult {
  report: EntryPathReport;
  text: string;
  clientKeyLeaks: number;
}

/**
 * The same cases, every cached-route request of them sent as it is and with a query string,
 * against a gateway per worker that counts the requests reaching Fastify (entry-paths.ts says why).
 */
export async function runEntryPathCampaign(
  settings: CampaignSettings,
  env: Record<string, string> = {},
  gatewayOptions: StartOptions = {},
): Promise<EntryPathResult> {
  const fake = await startFakeUpstream();
  const seen = new Map<FastifyInstance, number>();
  const counting: StartOptions = {
    beforeListen: (app) => {
      seen.set(app, 0);
      app.addHook('onRequest', (_request, _reply, done) => {
        seen.set(app, (seen.get(app) ?? 0) + 1);
        done();
      });
      gatewayOptions.beforeListen?.(app);
    },
  };
  const gateways = await Promise.all(
    Array.from({ length: settings.concurrency }, () => startGateway(fake, { LOG_LEVEL: 'info', GATEWAY_API_KEYS: TEST_CLIENT_KEY, ...env }, {}, counting)),
  );
  const portOf = (url: string) => Number(new URL(url).port);
  try {
    const report = await compareEntryPaths({
      ports: gateways.map((g) => portOf(g.url)),
      fastifyRequests: (port) => seen.get(gateways.find((g) => portOf(g.url) === port)?.app as FastifyInstance) ?? 0,
      clientKey: TEST_CLIENT_KEY,
      seed: settings.seed,
      cases: settings.cases,
      largeCases: settings.largeCases,
      bodyLimit: (gateways[0] as (typeof gateways)[number]).config.bodyLimitBytes,
      answerTimeoutMs: settings.answerTimeoutMs,
      maxDurationMs: settings.maxDurationMs,
      ...(settings.only ? { only: settings.only } : {}),
    });
    const clientKeyLeaks = fake.requests.filter((r) => r.raw.includes(TEST_CLIENT_KEY) || JSON.stringify(r.headers).includes(TEST_CLIENT_KEY)).length;
    let text = formatEntryPathReport(report, (indices) => replayCommand(settings, indices));
    text += `\nfuzz ways in: upstream requests ${fake.requests.length}, carrying the client's key: ${clientKeyLeaks}`;
    return { report, text, clientKeyLeaks };
  } finally {
    releaseLargeBodies();
    await Promise.all(
      gateways.map(async (gateway) => {
        gateway.app.server.closeAllConnections();
        await gateway.close();
      }),
    );
    await fake.close();
  }
}
