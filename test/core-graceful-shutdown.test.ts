/**
 * SIGTERM on the real process: a stream in flight finishes completely ([DONE] included), new
 * connections are refused (or answered 503) from then on, and the process exits 0 without
 * waiting for the grace period to run out.
 */
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { answerFor, startFakeUpstream, type FakeUpstream } from './helpers/fake-upstream.js';
import { fakeUpstreamEnv } from './helpers/gateway.js';
import { startGatewayProcess } from './helpers/gateway-process.js';
import { chatContentOf, readSse } from './helpers/sse-reader.js';

let fake: FakeUpstream;

beforeAll(async () => {
  // A slow stream: 5 content chunks 400 ms apart, so SIGTERM lands well inside it.
  fake = await startFakeUpstream({ chunkDelayMs: 400, chunks: 5 });
});
afterAll(async () => {
  await fake.close();
});

/** A request on a brand-new connection: 'refused' when nothing listens any more. */
function freshConnectionStatus(url: string): Promise<number | 'refused' | 'reset'> {
  return new Promise((resolve) => {
    const req = request(`${url}/healthz`, { agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', (error: NodeJS.ErrnoException) => resolve(error.code === 'ECONNREFUSED' ? 'refused' : 'reset'));
    req.end();
  });
}

describe('graceful stop', () => {
  it('SIGTERM mid-stream: the stream completes, new connections are turned away, exit code 0', async () => {
    // The grace period is far longer than the test may take: a clean exit must not rely on it.
    const gateway = await startGatewayProcess({ ...fakeUpstreamEnv(fake), SHUTDOWN_GRACE_MS: '60000', LOG_LEVEL: 'info' });
    expect(await freshConnectionStatus(gateway.url)).toBe(200);

    const messages = [{ role: 'user', content: 'finish me during shutdown' }];
    const response = await fetch(`${gateway.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-4o-mini', messages, stream: true }),
    });
    expect(response.status).toBe(200);

    let signalled = false;
    let streamDone = false;
    const turnedAway: Array<number | 'refused' | 'reset'> = [];
    let checkedWhileStreaming = false;
    const afterSignal = (async () => {
      // Wait for the signal, then probe with fresh connections until the gateway turns them away.
      while (!signalled) await new Promise((resolve) => setTimeout(resolve, 10));
      for (let attempt = 0; attempt < 100; attempt++) {
        const status = await freshConnectionStatus(gateway.url);
        if (status !== 200) {
          turnedAway.push(status);
          checkedWhileStreaming = !streamDone;
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })();

    const events = await readSse(response, (event) => {
      if (signalled || event.data === '[DONE]') return;
      const chunk = JSON.parse(event.data) as { choices: Array<{ delta: { content?: string } }> };
      if (chunk.choices[0]?.delta.content) {
        // First content chunk is here: the upstream still has four to go.
        signalled = true;
        gateway.child.kill('SIGTERM');
      }
    });
    streamDone = true;
    await afterSignal;

    expect(signalled).toBe(true);
    expect(events.at(-1)?.data).toBe('[DONE]');
    expect(chatContentOf(events)).toBe(answerFor({ messages }));
    expect(turnedAway).toHaveLength(1);
    // A connection accepted in the instant before the listener closed is dropped while idle
    // (reset): as much a refusal as ECONNREFUSED or a 503.
    expect(['refused', 'reset', 503]).toContain(turnedAway[0]);
    expect(checkedWhileStreaming).toBe(true);

    const exit = await gateway.exited;
    expect(exit).toEqual({ code: 0, signal: null });
    expect(gateway.stdout.some((line) => line.includes('shutting down'))).toBe(true);
  });

  it('SIGTERM with only idle keep-alive connections: exits 0 promptly', async () => {
    const gateway = await startGatewayProcess({ ...fakeUpstreamEnv(fake), SHUTDOWN_GRACE_MS: '60000' });
    // Leave a keep-alive connection open and idle (fetch's pool keeps it).
    const response = await fetch(`${gateway.url}/v1/models`);
    expect(response.status).toBe(200);
    await response.arrayBuffer();
    gateway.child.kill('SIGTERM');
    // The keep-alive timeout is 65 s: exiting within the test timeout means idle sockets were closed.
    expect(await gateway.exited).toEqual({ code: 0, signal: null });
  });
});
