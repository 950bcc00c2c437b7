/**
 * `.env` in the working directory, read by the real gateway process started both ways users
 * start it (`npm start`, `node dist/main.js`): what it sets is used, what the environment sets
 * wins over it, and a bad value in it stops start-up with one line naming the variable (and
 * nothing of the file's secrets). The fake upstream runs in this test process.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startFakeUpstream, type FakeUpstream } from './helpers/fake-upstream.js';
import { buildDist, runGatewayProcess, startGatewayProcess, type GatewayProcess, type LaunchWay } from './helpers/gateway-process.js';
import { chat } from './helpers/upstream-e2e.js';

const DOTENV_OPENAI_KEY = 'sk-dotenv-openai-alpha-aaaaaaaaaaaaaa';
const ENV_OPENAI_KEY = 'sk-environment-openai-bravo-bbbbbbbbb';
const DOTENV_GROQ_KEY = 'gsk_dotenv_groq_charlie_cccccccccccc';

let fake: FakeUpstream;
let running: GatewayProcess | undefined;

beforeAll(async () => {
  fake = await startFakeUpstream();
  await buildDist(); // `npm run build`, once for the file
}, 180_000);
afterEach(() => {
  running?.kill();
  running = undefined;
  fake.reset();
});
afterAll(async () => {
  await fake?.close();
});

// npm and tsx start slowly on a loaded box; every wait inside a test is bounded below this, so a
// test that fails kills its process itself rather than leaving it behind.
const PROCESS_TEST_TIMEOUT_MS = 120_000;

describe.each<LaunchWay>(['npm-start', 'node-dist'])(
  'the gateway started by %s',
  (way) => {
    it('reads .env from its working directory, and the environment wins over it', async () => {
      const dotenv = [
        '# as in .env.example: comments, quotes and empty values are fine',
        `OPENAI_BASE_URL=${fake.openaiBaseUrl}`,
        `GROQ_BASE_URL="${fake.groqBaseUrl}"`,
        `OPENAI_API_KEYS=${DOTENV_OPENAI_KEY}`,
        `GROQ_API_KEYS=${DOTENV_GROQ_KEY}`,
        'REDIS_URL=',
        'CACHE_SCOPE=everyone', // invalid, but the environment's value wins
        '',
      ].join('\n');
      running = await startGatewayProcess({ OPENAI_API_KEYS: ENV_OPENAI_KEY, CACHE_SCOPE: 'per-key', LOG_LEVEL: 'info' }, { way, dotenv, timeoutMs: 60_000 });

      // The base URLs only the .env gives: the requests reach the fake at all.
      expect((await chat(running.url, { model: 'gpt-4o-mini' })).status).toBe(200);
      expect((await chat(running.url, { model: 'llama-3.1-8b-instant' })).status).toBe(200);
      const keys = fake.completionCalls().map((call) => call.key);
      // OPENAI_API_KEYS is in both: the environment's; GROQ_API_KEYS only in the .env: the .env's.
      expect(keys).toEqual([ENV_OPENAI_KEY, DOTENV_GROQ_KEY]);
    });

    it('a bad value in .env stops start-up with one line naming the variable', async () => {
      const dotenv = [`OPENAI_API_KEYS=${DOTENV_OPENAI_KEY}`, 'CACHE_TTL_SECONDS=one-day', ''].join('\n');
      const { code, stderr } = await runGatewayProcess({}, { way, dotenv, timeoutMs: 60_000 });
      expect(code).toBe(1);
      // npm adds its own "npm error …" lines after a failed script; the gateway's are the others.
      const lines = stderr.split('\n').filter((line) => line !== '' && !(way === 'npm-start' && line.startsWith('npm ')));
      expect(lines).toEqual([expect.stringMatching(/^gateway: configuration error: CACHE_TTL_SECONDS .*"one-day"/)]);
      expect(stderr).not.toContain(DOTENV_OPENAI_KEY);
    });
  },
  PROCESS_TEST_TIMEOUT_MS,
);
