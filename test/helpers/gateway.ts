/**
 * Starts the real gateway (buildServer + listen on a free loopback port) against a fake
 * upstream, capturing every log line so tests can read (and grep) them.
 */
import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { loadConfig, type Config } from '../../src/config.js';
import { buildServer, type ServerDeps } from '../../src/server.js';
import type { FakeUpstream } from './fake-upstream.js';
import { registerSharedSecrets, trackGateway } from '../leak-check/track.js';

export const TEST_OPENAI_KEYS = ['sk-test-openai-key-one-0000000000', 'sk-test-openai-key-two-1111111111'];
export const TEST_GROQ_KEYS = ['gsk-test-groq-key-one-2222222222'];
export const TEST_CLIENT_KEY = 'gw-client-key-test-3333333333';
registerSharedSecrets([...TEST_OPENAI_KEYS, ...TEST_GROQ_KEYS, TEST_CLIENT_KEY], 'the shared keys of test/helpers/gateway.ts');

export interface RunningGateway {
  url: string;
  /** OpenAI SDK baseURL: url + '/v1'. */
  baseURL: string;
  app: FastifyInstance;
  config: Config;
  logs: string[];
  close(): Promise<void>;
}

/** Any provider double with the two base URLs (the fake upstream, a scripted provider, a proxy). */
export type ProviderDouble = Pick<FakeUpstream, 'openaiBaseUrl' | 'groqBaseUrl'>;

export function fakeUpstreamEnv(fake: ProviderDouble): Record<string, string> {
  return {
    OPENAI_BASE_URL: fake.openaiBaseUrl,
    GROQ_BASE_URL: fake.groqBaseUrl,
    OPENAI_API_KEYS: TEST_OPENAI_KEYS.join(','),
    GROQ_API_KEYS: TEST_GROQ_KEYS.join(','),
  };
}

export interface StartOptions {
  /** Runs on the built app before it listens (e.g. a test's own Fastify hook). */
  beforeListen?: (app: FastifyInstance) => void;
}

export async function startGateway(
  fake: ProviderDouble,
  env: Record<string, string | undefined> = {},
  deps: ServerDeps = {},
  options: StartOptions = {},
): Promise<RunningGateway> {
  const fullEnv = { LOG_LEVEL: 'info', PORT: '0', ...fakeUpstreamEnv(fake), ...env };
  const config = loadConfig(fullEnv);
  // The leak check (test/leak-check/) searches its log lines, responses and /metrics for keys.
  const leakCheck = trackGateway(fullEnv);
  const logs: string[] = [];
  const logDestination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (!line) continue;
        logs.push(line);
        leakCheck.logLine(line);
      }
      callback();
    },
  });
  const app = await buildServer(config, { logDestination, ...deps });
  leakCheck.attach(app, config.metricsToken);
  options.beforeListen?.(app);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  const url = `http://127.0.0.1:${port}`;
  return { url, baseURL: `${url}/v1`, app, config, logs, close: () => leakCheck.close(app) };
}
