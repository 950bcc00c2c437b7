/**
 * Which provider a request's `model` goes to: exact ids from the live lists first, then a
 * forced `openai/` or `groq/` prefix (stripped before forwarding), then well-known prefixes;
 * anything else is a 404 model_not_found in OpenAI's shape, without an upstream call.
 */
import OpenAI from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { answerFor, startFakeUpstream, type FakeUpstream } from './helpers/fake-upstream.js';
import { startGateway, type RunningGateway } from './helpers/gateway.js';
import { groqClient, openaiClient } from './helpers/sdk-clients.js';

// Ids in no live list: only a prefix rule can place them.
const UNLISTED_OPENAI = ['gpt-4.1-nano', 'o1-mini', 'o3-mini', 'o4-mini', 'text-embedding-ada-002', 'chatgpt-4o-latest', 'dall-e-3', 'whisper-1', 'tts-1'];
const UNLISTED_GROQ = [
  'llama-guard-4-12b',
  'mixtral-8x7b-32768',
  'gemma2-9b-it',
  'qwen-qwq-32b',
  'deepseek-r1-distill-llama-70b',
  'moonshotai/kimi-k2-instruct',
  'meta-llama/llama-4-scout-17b-16e-instruct',
];

let fake: FakeUpstream;
let gw: RunningGateway;

beforeAll(async () => {
  fake = await startFakeUpstream({
    openaiModels: ['gpt-4o-mini', 'gpt-4o'],
    groqModels: ['llama-3.1-8b-instant', 'openai/gpt-oss-120b'],
  });
  gw = await startGateway(fake);
  // The gateway fetches and keeps these lists; the fake learns the unlisted ids only afterwards,
  // so it can answer them while the gateway's lists still do not contain them.
  const listed = (await openaiClient(gw).models.list()).data.map((m) => m.id);
  for (const id of [...UNLISTED_OPENAI, ...UNLISTED_GROQ]) expect(listed).not.toContain(id);
  fake.options.openaiModels.push(...UNLISTED_OPENAI);
  fake.options.groqModels.push(...UNLISTED_GROQ);
});
beforeEach(() => fake.reset());
afterAll(async () => {
  await gw.close();
  await fake.close();
});

async function chat(model: string, path = '/v1/chat/completions'): Promise<Response> {
  return fetch(gw.url + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'cache-control': 'no-store' },
    body: JSON.stringify({ model, messages: [{ role: 'user', content: `route ${model}` }] }),
  });
}

describe('exact ids from the live lists', () => {
  it('openai/gpt-oss-120b, listed by Groq, goes to Groq unchanged (exact id beats the forced prefix)', async () => {
    const completion = await openaiClient(gw).chat.completions.create({ model: 'openai/gpt-oss-120b', messages: [{ role: 'user', content: 'oss' }] });
    expect(completion.choices[0]?.message.content).toBe(answerFor({ messages: [{ content: 'oss' }] }));
    const [call] = fake.completionCalls();
    expect(call?.flavour).toBe('groq');
    expect(call?.json?.model).toBe('openai/gpt-oss-120b');
  });

  it('a listed id answers with X-Gateway-Provider naming its provider', async () => {
    const openai = await chat('gpt-4o');
    const groq = await chat('llama-3.1-8b-instant');
    expect([openai.status, groq.status]).toEqual([200, 200]);
    expect(openai.headers.get('x-gateway-provider')).toBe('openai');
    expect(groq.headers.get('x-gateway-provider')).toBe('groq');
  });
});

describe('forced provider prefix', () => {
  it('groq/<id> goes to Groq with the prefix stripped', async () => {
    const response = await chat('groq/llama-guard-4-12b');
    expect(response.status).toBe(200);
    expect(response.headers.get('x-gateway-provider')).toBe('groq');
    const [call] = fake.completionCalls();
    expect(call?.flavour).toBe('groq');
    expect(call?.json?.model).toBe('llama-guard-4-12b');
  });

  it('openai/<id> goes to OpenAI with the prefix stripped', async () => {
    const completion = await openaiClient(gw).chat.completions.create({ model: 'openai/gpt-4.1-nano', messages: [{ role: 'user', content: 'forced' }] });
    expect(completion.choices[0]?.message.content).toBe(answerFor({ messages: [{ content: 'forced' }] }));
    const [call] = fake.completionCalls();
    expect(call?.flavour).toBe('openai');
    expect(call?.json?.model).toBe('gpt-4.1-nano');
  });

  it('a forced prefix can send an OpenAI-looking id to Groq', async () => {
    fake.options.groqModels.push('gpt-4o-mini');
    const response = await chat('groq/gpt-4o-mini');
    expect(response.status).toBe(200);
    const [call] = fake.completionCalls();
    expect(call?.flavour).toBe('groq');
    expect(call?.json?.model).toBe('gpt-4o-mini');
  });
});

describe('well-known prefixes route ids no list has', () => {
  it.each(UNLISTED_OPENAI)('%s → OpenAI', async (model) => {
    const response = await chat(model);
    expect(response.status).toBe(200);
    const [call] = fake.completionCalls();
    expect(call?.flavour).toBe('openai');
    expect(call?.json?.model).toBe(model);
  });

  it.each(UNLISTED_GROQ)('%s → Groq', async (model) => {
    const response = await chat(model);
    expect(response.status).toBe(200);
    const [call] = fake.completionCalls();
    expect(call?.flavour).toBe('groq');
    expect(call?.json?.model).toBe(model);
  });

  it('the model decides, not the path layout: a gpt id through groq-sdk goes to OpenAI', async () => {
    await groqClient(gw).chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'layout' }] });
    expect(fake.completionCalls()[0]?.flavour).toBe('openai');
  });
});

describe('unroutable models', () => {
  it.each(['my-own-model', 'claude-3-opus', 'anthropic/claude-3', 'GPT4'])('%s → 404 model_not_found, OpenAI-shaped, no upstream call', async (model) => {
    const response = await chat(model);
    expect(response.status).toBe(404);
    expect(response.headers.get('content-type')).toMatch(/^application\/json/);
    const body = (await response.json()) as { error: { message: string; type: string; code: string } };
    expect(body.error.code).toBe('model_not_found');
    expect(body.error.type).toBe('invalid_request_error');
    expect(body.error.message).toContain(model);
    expect(fake.completionCalls()).toHaveLength(0);
  });

  it('the openai SDK raises NotFoundError for it', async () => {
    const error = await openaiClient(gw)
      .chat.completions.create({ model: 'nobody-serves-this', messages: [{ role: 'user', content: 'x' }] })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.NotFoundError);
    expect((error as InstanceType<typeof OpenAI.NotFoundError>).code).toBe('model_not_found');
  });

  it('embeddings and completions route the same way', async () => {
    const embeddings = await fetch(`${gw.url}/v1/embeddings`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'mystery-embedder', input: 'x' }),
    });
    const completions = await fetch(`${gw.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'mystery-writer', prompt: 'x' }),
    });
    expect([embeddings.status, completions.status]).toEqual([404, 404]);
    expect(((await embeddings.json()) as { error: { code: string } }).error.code).toBe('model_not_found');
    expect(fake.completionCalls()).toHaveLength(0);
  });
});
