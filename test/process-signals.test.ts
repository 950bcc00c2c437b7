/**
 * Signals sent to the real gateway process, started both ways users start it (`npm start` and
 * `node dist/main.js`), as the README tells an operator to send them: `kill -HUP <pid>` reloads
 * KEYS_FILE under traffic without a failed request and never stops the process (with or without
 * KEYS_FILE); saving KEYS_FILE alone rotates the keys; SIGTERM lets a stream finish, then exits 0;
 * SIGQUIT and SIGUSR2 are not graceful stops. The fake upstream runs in this test process.
 */
import { rename, writeFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { answerFor, startFakeUpstream, type FakeUpstream } from './helpers/fake-upstream.js';
import { buildDist, startGatewayProcess, type GatewayProcess, type LaunchWay } from './helpers/gateway-process.js';
import { chatContentOf, readSse } from './helpers/sse-reader.js';
import { chat, eventually, uniqueContent } from './helpers/upstream-e2e.js';

const OLD_KEY = 'sk-process-old-alpha-aaaaaaaaaaaaaaaa';
const NEW_KEY = 'sk-process-new-bravo-bbbbbbbbbbbbbbbb';
const ENV_KEY = 'sk-process-env-charlie-cccccccccccccc';

let fake: FakeUpstream;
let dir: string;
let running: GatewayProcess | undefined;

beforeAll(async () => {
  fake = await startFakeUpstream();
  dir = await mkdtemp(join(tmpdir(), 'process-signals-'));
  await buildDist(); // `npm run build`, once for the file
}, 180_000);
afterEach(() => {
  running?.kill();
  running = undefined;
  fake.reset();
  fake.options.latencyMs = 0;
  fake.options.chunkDelayMs = 0;
});
afterAll(async () => {
  await fake?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function start(way: LaunchWay, env: Record<string, string> = {}): Promise<GatewayProcess> {
  running = await startGatewayProcess(
    { OPENAI_BASE_URL: fake.openaiBaseUrl, GROQ_BASE_URL: fake.groqBaseUrl, LOG_LEVEL: 'info', SHUTDOWN_GRACE_MS: '60000', ...env },
    { way, timeoutMs: 60_000 },
  );
  return running;
}

function keyOf(content: string): string | undefined {
  return fake.completionCalls().find((call) => JSON.stringify(call.json?.messages ?? '').includes(content))?.key;
}

async function nextLog(gateway: GatewayProcess, after: number, match: (line: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
  let found: Record<string, unknown> | undefined;
  await eventually(
    () => {
      found = gateway.logs().slice(after).find(match);
      return found !== undefined;
    },
    15_000,
    10,
  );
  return found!;
}

interface Outcome {
  status: number;
  complete: boolean;
}

/** Four clients asking without pause (JSON and streams, every question new) until stopped. */
function startTraffic(url: string): { outcomes: Outcome[]; stop(): Promise<void> } {
  const outcomes: Outcome[] = [];
  let on = true;
  const loop = async (worker: number) => {
    for (let i = 0; on; i++) {
      const stream = (i + worker) % 2 === 0;
      const content = uniqueContent(`traffic-${worker}`);
      const answer = await chat(url, { stream, content }).catch(() => ({ status: 0, text: '', json: undefined }));
      const complete = stream
        ? answer.text.includes('data: [DONE]') && !answer.text.includes('"error"')
        : (answer.json?.choices as Array<{ message?: { content?: string } }> | undefined)?.[0]?.message?.content === answerFor({ messages: [{ content }] });
      outcomes.push({ status: answer.status, complete });
    }
  };
  const loops = [0, 1, 2, 3].map(loop);
  return {
    outcomes,
    stop: async () => {
      on = false;
      await Promise.all(loops);
    },
  };
}

async function healthz(url: string): Promise<number> {
  return (await fetch(`${url}/healthz`)).status;
}

/** KEYS_FILE replaced the way editors and deploy tools do: written aside, renamed over it. */
async function writeKeysFile(path: string, openai: string[]): Promise<void> {
  const aside = `${path}.${process.hrtime.bigint()}.tmp`;
  await writeFile(aside, JSON.stringify({ openai }));
  await rename(aside, path);
}

// npm and tsx start slowly on a loaded box; every wait inside a test is bounded below this, so a
// test that fails kills its process itself rather than leaving it behind.
const PROCESS_TEST_TIMEOUT_MS = 120_000;

describe.each<LaunchWay>(['npm-start', 'node-dist'])(
  'the gateway started by %s',
  (way) => {
    it('kill -HUP <pid> with KEYS_FILE: keys reloaded under continuous traffic, no request fails, the process keeps serving', async () => {
      const keysFile = join(dir, `keys-${way}.json`);
      await writeKeysFile(keysFile, [OLD_KEY]);
      // The environment's key must lose to the file, before and after the reload.
      const gateway = await start(way, { KEYS_FILE: keysFile, OPENAI_API_KEYS: ENV_KEY });
      if (way === 'npm-start') expect(gateway.pid).not.toBe(gateway.child.pid); // npm → sh → tsx → node
      const before = uniqueContent('before');
      expect((await chat(gateway.url, { content: before })).status).toBe(200);
      expect(keyOf(before)).toBe(OLD_KEY);

      fake.options.latencyMs = 20;
      fake.options.chunkDelayMs = 5;
      const traffic = startTraffic(gateway.url);
      await eventually(() => traffic.outcomes.length >= 20, 20_000, 10);
      const logsBefore = gateway.logs().length;
      await writeKeysFile(keysFile, [NEW_KEY]);
      gateway.signal('SIGHUP');
      // Only a signal makes a reload with trigger "signal" (the file watcher's are "change").
      await nextLog(gateway, logsBefore, (line) => line.msg === 'SIGHUP: reloading provider keys');
      await nextLog(gateway, logsBefore, (line) => line.msg === 'provider keys reloaded' && line.trigger === 'signal');
      const countAtReload = traffic.outcomes.length;
      await eventually(() => traffic.outcomes.length >= countAtReload + 20, 20_000, 10);
      await traffic.stop();

      expect(traffic.outcomes.filter((outcome) => outcome.status !== 200 || !outcome.complete)).toEqual([]);
      const after = uniqueContent('after');
      expect((await chat(gateway.url, { content: after })).status).toBe(200);
      expect(keyOf(after)).toBe(NEW_KEY);
      expect(fake.completionCalls().some((call) => call.key === ENV_KEY)).toBe(false);
      expect(await healthz(gateway.url)).toBe(200);
      expect(gateway.child.exitCode).toBe(null);
      expect(gateway.logs().some((line) => line.msg?.startsWith('shutting down'))).toBe(false);
      console.log(`[process-signals] ${way}: ${traffic.outcomes.length} requests under kill -HUP, 0 failed`);
    });

    it('kill -HUP <pid> without KEYS_FILE: says there is nothing to reload and keeps serving', async () => {
      const gateway = await start(way, { OPENAI_API_KEYS: ENV_KEY });
      const logsBefore = gateway.logs().length;
      gateway.signal('SIGHUP');
      const line = await nextLog(gateway, logsBefore, (l) => typeof l.msg === 'string' && l.msg.includes('nothing to reload'));
      expect(line.msg).toContain('still serving');
      // A second one too: nothing about SIGHUP is once-only.
      gateway.signal('SIGHUP');
      await nextLog(gateway, logsBefore + 1, (l) => typeof l.msg === 'string' && l.msg.includes('nothing to reload'));
      const answer = await chat(gateway.url);
      expect(answer.status).toBe(200);
      expect(fake.completionCalls().at(-1)?.key).toBe(ENV_KEY);
      expect(await healthz(gateway.url)).toBe(200);
      expect(gateway.child.exitCode).toBe(null);
    });

    it("the README's rotation: saving KEYS_FILE in place alone puts the new key in use", async () => {
      const keysFile = join(dir, `keys-edit-${way}.json`);
      await writeFile(keysFile, JSON.stringify({ openai: [OLD_KEY] }));
      const gateway = await start(way, { KEYS_FILE: keysFile });
      const logsBefore = gateway.logs().length;
      // An editor saving in place (same inode), no signal.
      await writeFile(keysFile, JSON.stringify({ openai: [NEW_KEY] }));
      await nextLog(gateway, logsBefore, (line) => line.msg === 'provider keys reloaded' && line.trigger === 'change');
      const content = uniqueContent('edited');
      expect((await chat(gateway.url, { content })).status).toBe(200);
      expect(keyOf(content)).toBe(NEW_KEY);
    });

    it('SIGTERM mid-stream: the stream completes, then the process exits 0', async () => {
      const gateway = await start(way, { OPENAI_API_KEYS: ENV_KEY });
      fake.options.chunkDelayMs = 300;
      const messages = [{ role: 'user', content: uniqueContent('finish me') }];
      const response = await fetch(`${gateway.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'gpt-4o-mini', messages, stream: true }),
      });
      expect(response.status).toBe(200);
      let signalled = false;
      const events = await readSse(response, (event) => {
        if (!signalled && event.data !== '[DONE]') {
          signalled = true;
          gateway.signal('SIGTERM');
        }
      });
      expect(signalled).toBe(true);
      expect(events.at(-1)?.data).toBe('[DONE]');
      expect(chatContentOf(events)).toBe(answerFor({ messages }));
      // Under npm start, npm's exit mirrors the gateway's (npm → sh → tsx → node, each passing it on).
      expect(await gateway.exited).toEqual({ code: 0, signal: null });
      expect(gateway.logs().some((line) => line.msg === 'shutting down: finishing requests in flight' && line.signal === 'SIGTERM')).toBe(true);
    });

    it.each<NodeJS.Signals>(['SIGQUIT', 'SIGUSR2'])('%s is not a graceful stop: Node ends the process at once', async (signal) => {
      const gateway = await start(way, { OPENAI_API_KEYS: ENV_KEY });
      gateway.signal(signal);
      const exit = await gateway.exited;
      if (way === 'node-dist') expect(exit).toEqual({ code: null, signal });
      else expect(exit.code).not.toBe(0); // npm reports its child's death by a signal as a failure
      expect(gateway.logs().some((line) => line.msg?.startsWith('shutting down'))).toBe(false);
    });
  },
  PROCESS_TEST_TIMEOUT_MS,
);
