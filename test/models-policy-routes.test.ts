/**
 * Aliases and the allow list (MODELS_FILE) wherever a model is named: /v1/models (both layouts,
 * through the openai SDK and the groq-sdk) lists only the allowed models and every alias (owned
 * by "gateway"); the cached routes and the passthrough serve an alias as its target and refuse
 * with 404 model_not_found any model the allow list does not serve, before anything is sent
 * upstream. Every cached-route answer names the model that answered in X-Gateway-Model.
 */
import { describe, expect, it } from 'vitest';
import { multipartBody, tinyWav } from './helpers/audio.js';
import { setUpFakeUpstream } from './helpers/fake-upstream-fixture.js';
import { startGateway, type RunningGateway } from './helpers/gateway.js';
import { scrape, waitForModelLists } from './helpers/metrics-scrape.js';
import { writeModelsFile } from './helpers/models-file.js';
import { groqClient, openaiClient } from './helpers/sdk-clients.js';
import { chat, uniqueContent } from './helpers/upstream-e2e.js';

const fixture = setUpFakeUpstream();

const POLICY = {
  aliases: { fast: 'groq/llama-3.1-8b-instant', smart: 'gpt-4o', stt: 'whisper-1' },
  allow: ['gpt-4o-mini', 'llama-*', 'text-embedding-3-small'],
};

async function gateway(): Promise<RunningGateway> {
  const models = await writeModelsFile(POLICY);
  const gw = fixture.closeAfterTest(await startGateway(fixture.fake, { MODELS_FILE: models.path }));
  await waitForModelLists(gw.url);
  return gw;
}

const LISTED = ['gpt-4o-mini', 'text-embedding-3-small', 'llama-3.1-8b-instant', 'llama-3.3-70b-versatile', 'fast', 'smart', 'stt'];

describe('the metrics', () => {
  it('has gateway_fallbacks_total and gateway_provider_up from start-up: zero fallbacks between any pair, every provider up', async () => {
    const metrics = await scrape((await gateway()).url);
    expect(metrics.types.get('gateway_fallbacks_total')).toBe('counter');
    expect(metrics.types.get('gateway_provider_up')).toBe('gauge');
    const pairs = metrics.select('gateway_fallbacks_total').map((sample) => [sample.labels.provider, sample.labels.to_provider, sample.value]);
    expect(pairs.sort()).toEqual([
      ['groq', 'groq', 0],
      ['groq', 'openai', 0],
      ['openai', 'groq', 0],
      ['openai', 'openai', 0],
    ]);
    expect(metrics.select('gateway_provider_up').map((sample) => [sample.labels.provider, sample.value])).toEqual([
      ['openai', 1],
      ['groq', 1],
    ]);
  });
});

describe('/v1/models', () => {
  it('lists the allowed models and the aliases, through both SDKs', async () => {
    const gw = await gateway();
    const viaOpenai = [];
    for await (const model of openaiClient(gw).models.list()) viaOpenai.push(model);
    expect(viaOpenai.map((m) => m.id)).toEqual(LISTED);
    expect(viaOpenai.filter((m) => m.owned_by === 'gateway').map((m) => m.id)).toEqual(['fast', 'smart', 'stt']);
    const viaGroq = await groqClient(gw).models.list();
    expect(viaGroq.data.map((m) => m.id)).toEqual(LISTED);
    expect(await openaiClient(gw).models.retrieve('fast')).toMatchObject({ id: 'fast', object: 'model', owned_by: 'gateway' });
    await expect(openaiClient(gw).models.retrieve('gpt-4o')).rejects.toMatchObject({ status: 404, code: 'model_not_found' });
  });
});

describe('the cached routes', () => {
  it('refuse a model the allow list does not serve with 404 model_not_found, upstream untouched', async () => {
    const gw = await gateway();
    const client = openaiClient(gw);
    const before = fixture.fake.completionCalls().length;
    const messages = [{ role: 'user' as const, content: 'hi' }];
    for (const model of ['gpt-4o', 'openai/gpt-4o', 'whisper-1', 'openai/gpt-oss-120b']) {
      await expect(client.chat.completions.create({ model, messages }), model).rejects.toMatchObject({ status: 404, code: 'model_not_found' });
    }
    await expect(client.chat.completions.create({ model: 'gpt-4o', messages, stream: true })).rejects.toMatchObject({ status: 404 });
    await expect(client.completions.create({ model: 'gpt-3.5-turbo-instruct', prompt: 'hi' })).rejects.toMatchObject({ status: 404 });
    await expect(client.embeddings.create({ model: 'text-embedding-3-large', input: 'hi' })).rejects.toMatchObject({ status: 404 });
    expect(fixture.fake.completionCalls().length).toBe(before);
    // Allowed ones are served, with and without a forced prefix.
    const allowed = await chat(gw.url, { model: 'groq/llama-3.3-70b-versatile' });
    expect([allowed.status, allowed.headers.get('x-gateway-model'), allowed.headers.get('x-gateway-provider')]).toEqual([
      200,
      'llama-3.3-70b-versatile',
      'groq',
    ]);
  });

  it('serve an alias as its target (one cache entry with the target), naming the model that answered', async () => {
    const gw = await gateway();
    const content = uniqueContent('alias');
    const { data, response } = await groqClient(gw)
      .chat.completions.create({ model: 'fast', messages: [{ role: 'user', content }] })
      .withResponse();
    expect(data.model).toBe('llama-3.1-8b-instant');
    expect(response.headers.get('x-gateway-model')).toBe('llama-3.1-8b-instant');
    expect(response.headers.get('x-gateway-provider')).toBe('groq');
    expect(response.headers.get('x-gateway-fallback')).toBeNull();
    const sent = fixture.fake.completionCalls().at(-1);
    expect([sent?.flavour, sent?.json?.model]).toEqual(['groq', 'llama-3.1-8b-instant']);
    // The target asked directly, or the alias again as a stream: the same entry, a hit naming the model.
    for (const [model, stream] of [
      ['llama-3.1-8b-instant', false],
      ['groq/llama-3.1-8b-instant', false],
      ['fast', true],
    ] as const) {
      const hit = await chat(gw.url, { model, content, stream });
      expect([model, hit.status, hit.headers.get('x-cache'), hit.headers.get('x-gateway-model')]).toEqual([model, 200, 'HIT', 'llama-3.1-8b-instant']);
    }
    // Embeddings (a batch, cached per input) name their model too, miss and hit.
    for (const cache of ['MISS', 'HIT']) {
      const { response: embedded } = await openaiClient(gw)
        .embeddings.create({ model: 'text-embedding-3-small', input: [content, `${content} 2`] })
        .withResponse();
      expect([embedded.headers.get('x-cache'), embedded.headers.get('x-gateway-model')]).toEqual([cache, 'text-embedding-3-small']);
    }
    // An alias whose target the allow list does not name is served all the same.
    const smart = await chat(gw.url, { model: 'smart' });
    expect([smart.status, smart.headers.get('x-gateway-model'), smart.json?.model]).toEqual([200, 'gpt-4o', 'gpt-4o']);
  });
});

describe('the passthrough', () => {
  it('sends an alias as its target and refuses a model the allow list does not serve', async () => {
    const gw = await gateway();
    const upload = (model: string) => {
      const { body, contentType } = multipartBody({ model }, { name: 'file', filename: 'a.wav', type: 'audio/wav', data: tinyWav() });
      return fetch(`${gw.url}/v1/audio/transcriptions`, { method: 'POST', headers: { 'content-type': contentType }, body: new Uint8Array(body) });
    };
    const aliased = await upload('stt');
    expect(aliased.status).toBe(200);
    expect(aliased.headers.get('x-gateway-provider')).toBe('openai');
    expect(aliased.headers.get('x-gateway-model')).toBe('whisper-1');
    const forwarded = fixture.fake.requests.at(-1);
    expect(forwarded?.path).toBe('/v1/audio/transcriptions');
    expect(forwarded?.raw.toString('latin1')).toContain('name="model"\r\n\r\nwhisper-1\r\n');
    const count = fixture.fake.requests.length;
    const refused = await upload('whisper-large-v3');
    expect(refused.status).toBe(404);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('model_not_found');
    expect(fixture.fake.requests.length).toBe(count);
  });
});
