import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Tests start real servers (redis-server, nginx, fake upstreams): give them room on a 2-core box.
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    maxWorkers: 2,
    reporters: ['default'],
    // The leak check over the whole run: every file's gateways are watched for keys in their
    // logs, responses and metrics (setup.ts), and the run fails on any finding (global-setup.ts).
    setupFiles: ['test/leak-check/setup.ts'],
    globalSetup: ['test/leak-check/global-setup.ts'],
  },
});
