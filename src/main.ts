/**
 * loadConfig() → buildServer() → listen, and what each signal does:
 * - SIGHUP re-reads every file registered in reload/on-hangup.ts (KEYS_FILE, MODELS_FILE, LIMITS_FILE) and never stops the process;
 * - SIGTERM and SIGINT stop accepting, let requests in flight (streams too) finish for up to
 *   SHUTDOWN_GRACE_MS, then exit 0; a second one exits 1 at once;
 * - every other signal keeps Node's default: SIGQUIT (Ctrl-\) and SIGUSR2 end the process at
 *   once, the hard stop for when a graceful one takes too long; SIGUSR1 starts the inspector.
 */
import { existsSync } from 'node:fs';
import closeWithGrace from 'close-with-grace';
import type { FastifyInstance } from 'fastify';
import { type Config, ConfigError, loadConfig } from './config.js';
import { LimitsFileError } from './limits/limits-file.js';
import { ModelsFileError } from './models-policy/models-file.js';
import { PricesFileError } from './pricing/prices.js';
import { reloadOnHangup } from './reload/on-hangup.js';
import { buildServer } from './server.js';

// close-with-grace stops on every signal of this list unless skipped. Typed as a Record so that a
// signal a newer close-with-grace adds to its list fails the type check until it is placed here.
const NOT_A_STOP: Record<Exclude<closeWithGrace.Signals, 'SIGTERM' | 'SIGINT'>, true> = {
  SIGHUP: true,
  SIGQUIT: true,
  SIGUSR2: true,
  // Faults the kernel raises: JavaScript cannot run a graceful stop after them.
  SIGILL: true,
  SIGTRAP: true,
  SIGABRT: true,
  SIGBUS: true,
  SIGFPE: true,
  SIGSEGV: true,
};

function refuseToStart(message: string): never {
  process.stderr.write(`gateway: configuration error: ${message}\n`);
  process.exit(1);
}

async function main(): Promise<void> {
  let app: FastifyInstance | undefined;
  // First of all: Node's default for SIGHUP is to exit, and `kill -HUP` must never stop the gateway,
  // not even while it starts.
  reloadOnHangup(() => app?.log);

  // A .env in the working directory fills what the environment does not set (the environment wins).
  if (existsSync('.env')) process.loadEnvFile('.env');
  let config: Config;
  try {
    config = loadConfig(process.env);
  } catch (error) {
    if (error instanceof ConfigError) refuseToStart(error.message);
    throw error;
  }
  try {
    app = await buildServer(config);
  } catch (error) {
    // PRICES_FILE and LIMITS_FILE are configuration too: one line that names them, as for the variables.
    if (error instanceof PricesFileError || error instanceof LimitsFileError) refuseToStart(error.message);
    // MODELS_FILE too: a model policy that cannot be used must not be guessed at.
    if (error instanceof ModelsFileError) refuseToStart(error.message);
    throw error;
  }
  const server = app;
  closeWithGrace({ delay: config.shutdownGraceMs, skip: Object.keys(NOT_A_STOP) as closeWithGrace.Signals[] }, async ({ signal, err }) => {
    if (err) server.log.error({ err }, 'fatal error: closing');
    else server.log.info({ signal }, 'shutting down: finishing requests in flight');
    // A keep-alive connection whose last response ended after close() began would hold the exit
    // until the client drops it: close such connections as soon as they fall idle.
    const closeIdle = setInterval(() => server.server.closeIdleConnections(), 100);
    try {
      await server.close();
    } finally {
      clearInterval(closeIdle);
    }
  });
  await server.listen({ host: config.host, port: config.port });
  // The pid to signal: under `npm start` the gateway is not the process npm started, and pino's
  // lines carry no pid otherwise.
  server.log.info({ pid: process.pid }, `gateway running: kill -HUP ${process.pid} reloads KEYS_FILE, kill -TERM ${process.pid} stops`);
}

main().catch((error: unknown) => {
  process.stderr.write(`gateway: failed to start: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
