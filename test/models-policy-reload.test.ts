/**
 * MODELS_FILE re-read while the gateway serves: a changed file is in force for the next request
 * (a request already routed keeps its route), under continuous traffic with no failed request;
 * a file that cannot be used is refused with one log line and the policy in force stays; SIGHUP
 * re-reads it in the real process. Requests remembered by their bytes (the hit memo) are routed
 * again under the new policy.
 */
import { describe, expect, it } from 'vitest';
import { fakeUpstreamEnv, startGateway, type RunningGateway } from './helpers/gateway.js';
import { setUpFakeUpstream } from './helpers/fake-upstream-fixture.js';
import { startGatewayProcess } from './helpers/gateway-process.js';
import { waitForModelLists } from './helpers/metrics-scrape.js';
import { type ModelsFile, writeModelsFile } from './helpers/models-file.js';
import { chat, eventually, pause, uniqueContent } from './helpers/upstream-e2e.js';

const fixture = setUpFakeUpstream();

const TO_OPENAI = { aliases: { chat: 'gpt-4o-mini' }, allow: ['gpt-4o-mini'] };
const TO_GROQ = { aliases: { chat: 'groq/llama-3.1-8b-instant' }, allow: ['gpt-4o-mini', 'llama-*'] };

async function gateway(models: ModelsFile): Promise<RunningGateway> {
  const gw = fixture.closeAfterTest(
    await startGateway(fixture.fake, { MODELS_FILE: models.path }, { modelsFileWatch: { debounceMs: 20, pollIntervalMs: 100 } }),
  );
  await waitForModelLists(gw.url);
  return gw;
}

async function modelAnswering(gw: RunningGateway, content = uniqueContent('probe')): Promise<string | null> {
  return (await chat(gw.url, { model: 'chat', content })).headers.get('x-gateway-model');
}

describe('a changed MODELS_FILE', () => {
  it('is in force at once, under continuous traffic with no failed request; a malformed one is refused and the old policy stays', async () => {
    const models = await writeModelsFile(TO_OPENAI);
    const gw = await gateway(models);
    fixture.fake.options.latencyMs = 5;
    let running = true;
    const failures: string[] = [];
    let answered = 0;
    // Misses and hits, by the alias and by an id both policies allow, JSON and stream.
    const loop = async (worker: number): Promise<void> => {
      for (let i = 0; running; i++) {
        const model = i % 2 === 0 ? 'chat' : 'gpt-4o-mini';
        const content = i % 3 === 0 ? `repeated ${worker}` : uniqueContent(`traffic-${worker}`);
        try {
          const answer = await chat(gw.url, { model, content, stream: i % 4 === 1 });
          if (answer.status !== 200) failures.push(`${model}: ${answer.status} ${answer.text.slice(0, 200)}`);
          answered++;
        } catch (error) {
          failures.push(`${model}: ${String(error)}`);
        }
      }
    };
    const workers = [0, 1, 2, 3].map(loop);
    for (let round = 0; round < 6; round++) {
      await pause(150);
      await models.replace(round % 2 === 0 ? TO_GROQ : TO_OPENAI);
    }
    // Ends on TO_OPENAI: wait until it is in force.
    await eventually(async () => (await modelAnswering(gw)) === 'gpt-4o-mini', 5_000, 20);
    await models.replace('{"aliases": {"chat": ');
    await eventually(() => gw.logs.some((line) => line.includes('models file refused')), 5_000, 20);
    await pause(200);
    running = false;
    await Promise.all(workers);
    expect(failures).toEqual([]);
    expect(answered).toBeGreaterThan(50);
    const refusal = gw.logs
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .find((line) => line.msg === 'models file refused; the previous model policy stays in force');
    expect(refusal).toMatchObject({ level: 50, path: models.path, trigger: 'change', err: expect.stringContaining('not valid JSON') });
    expect(await modelAnswering(gw)).toBe('gpt-4o-mini');
    const reloads = gw.logs.filter((line) => line.includes('"model policy reloaded"'));
    expect(reloads.length).toBeGreaterThanOrEqual(1);
  });

  it('routes a request remembered by its bytes again under the new policy', async () => {
    const models = await writeModelsFile(TO_OPENAI);
    const gw = await gateway(models);
    const content = uniqueContent('remembered');
    const first = await chat(gw.url, { model: 'chat', content });
    const hit = await chat(gw.url, { model: 'chat', content });
    expect([first.headers.get('x-cache'), hit.headers.get('x-cache'), hit.headers.get('x-gateway-model')]).toEqual(['MISS', 'HIT', 'gpt-4o-mini']);
    await models.replace(TO_GROQ);
    await eventually(async () => (await modelAnswering(gw)) === 'llama-3.1-8b-instant', 5_000, 20);
    const rerouted = await chat(gw.url, { model: 'chat', content });
    expect([rerouted.headers.get('x-cache'), rerouted.headers.get('x-gateway-model'), rerouted.headers.get('x-gateway-provider')]).toEqual([
      'MISS',
      'llama-3.1-8b-instant',
      'groq',
    ]);
    // And an allow list narrowed: the id it no longer names is refused at once.
    await models.replace({ allow: ['llama-*'] });
    await eventually(async () => (await chat(gw.url, { model: 'gpt-4o-mini', content })).status === 404, 5_000, 20);
  });
});

describe('SIGHUP', () => {
  it('re-reads MODELS_FILE in the real process', async () => {
    const models = await writeModelsFile(TO_OPENAI);
    const gateway = await startGatewayProcess({ ...fakeUpstreamEnv(fixture.fake), MODELS_FILE: models.path, LOG_LEVEL: 'info' });
    try {
      const before = gateway.logs().length;
      gateway.signal('SIGHUP');
      // Only a signal makes a reload with trigger "signal" (the watcher's are "change").
      await eventually(
        () =>
          gateway
            .logs()
            .slice(before)
            .some((line) => line.msg === 'model policy reloaded' && line.trigger === 'signal'),
        15_000,
        20,
      );
      expect(
        gateway
          .logs()
          .slice(before)
          .some((line) => line.msg === 'SIGHUP: reloading the model policy'),
      ).toBe(true);
      expect((await chat(gateway.url, { model: 'chat' })).headers.get('x-gateway-model')).toBe('gpt-4o-mini');
      // Still serving after it.
      expect((await fetch(`${gateway.url}/healthz`)).status).toBe(200);
    } finally {
      gateway.kill();
    }
  });
});
