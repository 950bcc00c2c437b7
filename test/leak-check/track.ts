/**
 * What the test helpers call to put a gateway under the leak check: test/helpers/gateway.ts for
 * in-process gateways (log lines, responses, a last /metrics scrape when it closes),
 * test/helpers/gateway-process.ts for the real process (stdout, stderr, responses read from it).
 * Every secret-like value of the gateway's environment (and .env, and KEYS_FILE) is registered.
 * Outside a leak-checked test run every call is a no-op.
 */
import type { ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { addSource, append, dotenvValues, isRecording, leakState, openEntry, refreshKeysFile, registerSecret, type Source } from './recorder.js';
import { tapGatewayPort, tapPort, tapServer, untapGatewayPort, untapPort } from './wire-taps.js';

let gatewayCount = 0;

/** Secrets the tests share (the constants of test/helpers/gateway.ts). */
export function registerSharedSecrets(values: readonly string[], origin: string): void {
  for (const value of values) registerSecret(value, origin);
}

function startedWhere(): string {
  return `started in "${leakState().test}"`;
}

export interface TrackedGateway {
  /** One line the gateway logged. */
  logLine(line: string): void;
  /** Once built, before it listens: its server's responses and its /metrics are watched. */
  attach(app: FastifyInstance, metricsToken: string | undefined): void;
  /** Closes the gateway after a last /metrics scrape. */
  close(app: FastifyInstance): Promise<void>;
}

export function trackGateway(env: Record<string, string | undefined>): TrackedGateway {
  if (!isRecording()) {
    return { logLine: () => undefined, attach: () => undefined, close: (app) => app.close() };
  }
  gatewayCount++;
  const label = `in-process gateway #${gatewayCount} (${startedWhere()})`;
  let scrape: (() => Promise<void>) | undefined;
  const source: Source = addSource(label, env, () => scrape?.() ?? Promise.resolve());
  leakState().figures.gateways++;
  return {
    logLine(line) {
      if (!isRecording()) return;
      leakState().figures.logLines++;
      // The gateway logs each reload: the keys file then holds what it reloaded.
      refreshKeysFile(source);
      append(openEntry('log', label), line);
    },
    attach(app, metricsToken) {
      tapServer(app.server, source);
      app.server.once('listening', () => {
        const address = app.server.address();
        if (typeof address !== 'object' || !address) return;
        tapGatewayPort(address.port);
        app.server.once('close', () => untapGatewayPort(address.port));
      });
      let done = false;
      app.addHook('onClose', async () => {
        done = true;
      });
      scrape = async () => {
        if (done || !isRecording()) return;
        done = true;
        try {
          const answer = await app.inject({ method: 'GET', url: '/metrics', headers: metricsToken ? { authorization: `Bearer ${metricsToken}` } : {} });
          leakState().figures.metricScrapes++;
          append(openEntry('metrics', label), `${JSON.stringify(answer.headers)}\n${answer.body}`);
        } catch {
          // A gateway that cannot answer any more has nothing left to show.
        }
      };
    },
    async close(app) {
      refreshKeysFile(source);
      await scrape?.();
      await app.close();
    },
  };
}

/** The real gateway process: its output, and the responses the test process reads from it. */
export function trackGatewayProcess(child: ChildProcess, env: Record<string, string>, dotenv: string | undefined, cwd: string): void {
  if (!isRecording()) return;
  gatewayCount++;
  const label = `gateway process #${gatewayCount} (${startedWhere()})`;
  const fromDotenv = dotenv === undefined ? {} : dotenvValues(dotenv);
  // The environment wins over .env, as in the gateway; a relative KEYS_FILE is the child's.
  const merged = { ...fromDotenv, ...env };
  if (merged['KEYS_FILE'] !== undefined) merged['KEYS_FILE'] = resolve(cwd, merged['KEYS_FILE']);
  const source = addSource(label, merged);
  leakState().figures.processes++;
  let port: number | undefined;
  let partial = '';
  const line = (text: string) => {
    if (!text) return;
    leakState().figures.processLines++;
    append(openEntry('process-stdout', label), text);
    const listening = /Server listening at http:\/\/(?:127\.0\.0\.1|\[::1\]|localhost):(\d+)/.exec(text);
    if (listening?.[1] && port === undefined) {
      port = Number(listening[1]);
      tapPort(port, source);
    }
  };
  child.stdout?.on('data', (chunk: Buffer) => {
    if (!isRecording()) return;
    refreshKeysFile(source);
    const lines = (partial + chunk.toString('utf8')).split('\n');
    partial = lines.pop() ?? '';
    for (const text of lines) line(text);
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    if (!isRecording()) return;
    const text = chunk.toString('utf8');
    leakState().figures.processLines += text.split('\n').filter(Boolean).length;
    append(openEntry('process-stderr', label), text);
  });
  // 'close', not 'exit': the pipes are drained by then.
  child.once('close', () => {
    if (port !== undefined) untapPort(port);
    if (!isRecording()) return;
    line(partial);
    refreshKeysFile(source);
  });
}
