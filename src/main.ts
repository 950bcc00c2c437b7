/**
 * loadConfig() → buildServer() → listen. SIGTERM/SIGINT stop accepting, let requests in flight
 * (streams too) finish for up to SHUTDOWN_GRACE_MS, then exit 0.
 */
import { existsSync } from 'node:fs';
import closeWithGrace from 'close-with-grace';
import { ConfigError, loadConfig } from './config.js';
import { PricesFileError } from './pricing/prices.js';
import { buildServer } from './server.js';

async function main(): Promise<void> {
  // A .env in the working directory fills what the environment does not set (the environment wins).
  if (existsSync('.env')) process.loadEnvFile('.env');
  let config;
  try {
    config = loadConfig(process.env);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`gateway: configuration error: ${error.message}\n`);
      process.exit(1);
    }
    throw error;
  }
  let app;
  try {
    app = await buildServer(config);
  } catch (error) {
    // PRICES_FILE is configuration too: one line that names it, as for the variables.
    if (error instanceof PricesFileError) {
      process.stderr.write(`gateway: configuration error: ${error.message}\n`);
      process.exit(1);
    }
    throw error;
  }
  if (config.keysFile === undefined) {
    // Node's default for SIGHUP is to exit: an operator's `kill -HUP` must not stop the gateway.
    process.on('SIGHUP', () => app.log.warn('SIGHUP ignored: provider keys come from the environment; set KEYS_FILE to reload keys live'));
  }
  closeWithGrace({ delay: config.shutdownGraceMs }, async ({ signal, err }) => {
    if (err) app.log.error({ err }, 'fatal error: closing');
    else app.log.info({ signal }, 'shutting down: finishing requests in flight');
    // A keep-alive connection whose last response ended after close() began would hold the exit
    // until the client drops it: close such connections as soon as they fall idle.
    const closeIdle = setInterval(() => app.server.closeIdleConnections(), 100);
    try {
      await app.close();
    } finally {
      clearInterval(closeIdle);
    }
  });
  await app.listen({ host: config.host, port: config.port });
}

main().catch((error: unknown) => {
  process.stderr.write(`gateway: failed to start: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
