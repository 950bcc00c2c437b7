/**
 * The gateway as its users see it: the real `openai` (v6) and `groq-sdk` clients, pointed at
 * the gateway the way users configure them, against a fake OpenAI + Groq upstream.
 */
import Groq from 'groq-sdk';
import OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import { answerFor } from './helpers/fake-upstream.js';
import { setUpFakeUpstream } from './helpers/fake-upstream-fixture.js';
import { startGateway, TEST_CLIENT_KEY, TEST_GROQ_KEYS, TEST_OPENAI_KEYS, type RunningGateway } from './helpers/gateway.js';
import { groqClient, openaiClient } from './helpers/sdk-clients.js';

const fixture = setUpFakeUpstream();

async function gateway(env: Record<string, string> = {}): Promise<RunningGateway> {
  return fixture.closeAfterTest(await startGateway(fixture.fake, { GATEWAY_API_KEYS: TEST_CLIENT_KEY, ...env }));
}

/** Fetch the model lists first, so a later failure injected for chat does not hit the /models fetch. */
async function warmedGateway(): Promise<RunningGateway> {
  const gw = await gateway();
  await openaiClient(gw).models.list();
  fixture.fake.reset();
  return gw;
}

describe('models list through the SDKs', () => {
  it('is the union of both providers, with OpenAI model objects', async () => {
    const gw = await gateway();
    const ids: string[] = [];
    for await (const model of openaiClient(gw).models.list()) {
      expect(model.object).toBe('model');
      expect(typeof model.created).toBe('number');
      expect(typeof model.owned_by).toBe('string');
      ids.push(model.id);
    }
    expect(ids.sort()).toEqual([...fixture.fake.options.openaiModels, ...fixture.fake.options.groqModels].sort());
  });

  it('groq-sdk with its base URL at the gateway root lists the same union', async () => {
    const gw = await gateway();
    const list = await groqClient(gw).models.list();
    expect(list.data.map((m) => m.id).sort()).toEqual([...fixture.fake.options.openaiModels, ...fixture.fake.options.groqModels].sort());
  });

  it('leaves out a provider whose /models fails instead of failing the whole list', async () => {
    // Groq's only key gets a 500 for everything: its list cannot be fetched.
    fixture.fake.keyResponses.set(TEST_GROQ_KEYS[0]!, { status: 500 });
    const gw = await gateway();
    const list = await openaiClient(gw).models.list();
    expect(list.data.map((m) => m.id).sort()).toEqual([...fixture.fake.options.openaiModels].sort());
  });
});

describe('chat completions through the SDKs', () => {
  it('openai SDK: JSON completion with the upstream answer and usage', async () => {
    const gw = await gateway();
    const messages = [{ role: 'user' as const, content: 'contract json question' }];
    const completion = await openaiClient(gw).chat.completions.create({ model: 'gpt-4o-mini', messages });
    expect(completion.object).toBe('chat.completion');
    expect(completion.choices[0]?.message.content).toBe(answerFor({ messages }));
    expect(completion.choices[0]?.finish_reason).toBe('stop');
    expect(completion.usage?.prompt_tokens).toBe(11);
    const upstream = fixture.fake.completionCalls();
    expect(upstream).toHaveLength(1);
    expect(upstream[0]?.flavour).toBe('openai');
  });

  it('openai SDK: a stream assembles to exactly the text the upstream sent (done-when check)', async () => {
    const gw = await gateway();
    const messages = [{ role: 'user' as const, content: 'Stream me: ünïcødé ✓ and "quotes" \\ back\nslash' }];
    const stream = await openaiClient(gw).chat.completions.create({ model: 'gpt-4o-mini', messages, stream: true });
    let text = '';
    let contentChunks = 0;
    let finish: string | null | undefined;
    const ids = new Set<string>();
    for await (const chunk of stream) {
      ids.add(chunk.id);
      const delta = chunk.choices[0]?.delta.content;
      if (delta) {
        text += delta;
        contentChunks++;
      }
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    const sent = fixture.fake.completionCalls()[0]?.json;
    expect(text).toBe(answerFor(sent));
    expect(text).toBe(answerFor({ messages }));
    expect(Buffer.from(text, 'utf8').equals(Buffer.from(answerFor({ messages }), 'utf8'))).toBe(true);
    expect(contentChunks).toBeGreaterThan(1); // really streamed, not one blob
    expect(finish).toBe('stop');
    expect(ids.size).toBe(1);
  });

  it('groq-sdk: JSON and stream for a Groq model go to the Groq side', async () => {
    const gw = await gateway();
    const groq = groqClient(gw);
    const messages = [{ role: 'user' as const, content: 'groq contract' }];
    const completion = await groq.chat.completions.create({ model: 'llama-3.1-8b-instant', messages });
    expect(completion.choices[0]?.message.content).toBe(answerFor({ messages }));

    const streamed = [{ role: 'user' as const, content: 'groq contract streamed' }];
    let text = '';
    for await (const chunk of await groq.chat.completions.create({ model: 'llama-3.1-8b-instant', messages: streamed, stream: true })) {
      text += chunk.choices[0]?.delta.content ?? '';
    }
    expect(text).toBe(answerFor({ messages: streamed }));
    expect(fixture.fake.completionCalls().map((r) => r.flavour)).toEqual(['groq', 'groq']);
  });
});

describe('legacy completions and embeddings through the openai SDK', () => {
  it('completions JSON', async () => {
    const gw = await gateway();
    const completion = await openaiClient(gw).completions.create({ model: 'gpt-3.5-turbo-instruct', prompt: 'legacy json prompt' });
    expect(completion.object).toBe('text_completion');
    expect(completion.choices[0]?.text).toBe(answerFor({ prompt: 'legacy json prompt' }));
  });

  it('completions stream assembles to the upstream text', async () => {
    const gw = await gateway();
    let text = '';
    let chunks = 0;
    for await (const chunk of await openaiClient(gw).completions.create({ model: 'gpt-3.5-turbo-instruct', prompt: 'legacy stream prompt', stream: true })) {
      text += chunk.choices[0]?.text ?? '';
      chunks++;
    }
    expect(text).toBe(answerFor({ prompt: 'legacy stream prompt' }));
    expect(chunks).toBeGreaterThan(1);
  });

  it('embeddings', async () => {
    const gw = await gateway();
    const result = await openaiClient(gw).embeddings.create({ model: 'text-embedding-3-small', input: ['alpha', 'beta'] });
    expect(result.object).toBe('list');
    expect(result.data).toHaveLength(2);
    expect(result.data[1]?.index).toBe(1);
    expect(result.data[0]?.embedding).toHaveLength(8);
    // The SDK asks for base64 by default and decodes it: the gateway must pass the request
    // field on and the base64 answer back untouched for these numbers to come out.
    const upstream = fixture.fake.completionCalls()[0];
    expect(upstream?.path).toBe('/v1/embeddings');
    expect(upstream?.json?.encoding_format).toBe('base64');
    expect(result.data[0]?.embedding[0]).toBeCloseTo(('a'.charCodeAt(0) % 97) / 97, 5);
    expect(result.data[1]?.embedding[0]).toBeCloseTo(('b'.charCodeAt(0) % 97) / 97, 5);
  });
});

describe('upstream failures as the SDKs raise them', () => {
  it('429 on every key: RateLimitError with the gateway retry-after, after trying the other key', async () => {
    const gw = await warmedGateway();
    for (const key of TEST_OPENAI_KEYS)
      fixture.fake.keyResponses.set(key, {
        status: 429,
        headers: { 'retry-after': '7' },
        body: { error: { message: 'Rate limit reached', type: 'requests', code: 'rate_limit_exceeded' } },
      });
    const error = await openaiClient(gw)
      .chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'limited' }] })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(error).toBeInstanceOf(OpenAI.RateLimitError);
    const rateLimited = error as InstanceType<typeof OpenAI.RateLimitError>;
    expect(rateLimited.status).toBe(429);
    expect(rateLimited.code).toBe('rate_limit_exceeded');
    const retryAfter = Number(rateLimited.headers?.get('retry-after'));
    expect(retryAfter).toBeGreaterThanOrEqual(6);
    expect(retryAfter).toBeLessThanOrEqual(7);
    // Both keys were tried before the client was told.
    expect(new Set(fixture.fake.completionCalls().map((r) => r.key))).toEqual(new Set(TEST_OPENAI_KEYS));
  });

  it('groq-sdk gets its RateLimitError too', async () => {
    const gw = await warmedGateway();
    fixture.fake.keyResponses.set(TEST_GROQ_KEYS[0]!, { status: 429, headers: { 'retry-after': '3' } });
    const error = await groqClient(gw)
      .chat.completions.create({ model: 'llama-3.1-8b-instant', messages: [{ role: 'user', content: 'limited groq' }] })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(error).toBeInstanceOf(Groq.RateLimitError);
  });

  it('401 on every provider key: 503 provider_keys_rejected (InternalServerError), never the provider body', async () => {
    const gw = await warmedGateway();
    // OpenAI's real 401 echoes a masked fragment of the key it was given.
    for (const key of TEST_OPENAI_KEYS) {
      fixture.fake.keyResponses.set(key, {
        status: 401,
        body: {
          error: { message: `Incorrect API key provided: ${key.slice(0, 7)}***${key.slice(-4)}.`, type: 'invalid_request_error', code: 'invalid_api_key' },
        },
      });
    }
    const error = await openaiClient(gw)
      .chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'rejected' }] })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    // Not AuthenticationError: the client's key is fine, the gateway's keys are not.
    expect(error).not.toBeInstanceOf(OpenAI.AuthenticationError);
    expect(error).toBeInstanceOf(OpenAI.InternalServerError);
    const apiError = error as InstanceType<typeof OpenAI.InternalServerError>;
    expect(apiError.status).toBe(503);
    expect(apiError.code).toBe('provider_keys_rejected');
    const said = JSON.stringify(apiError.error) + apiError.message;
    expect(said).not.toContain('Incorrect API key');
    for (const key of TEST_OPENAI_KEYS) expect(said).not.toContain(key.slice(-4));
    expect(new Set(fixture.fake.completionCalls().map((r) => r.key))).toEqual(new Set(TEST_OPENAI_KEYS));
  });

  it('after the keys were rejected, later requests get the same 503 without reaching upstream', async () => {
    const gw = await gateway();
    for (const key of TEST_OPENAI_KEYS) fixture.fake.keyResponses.set(key, { status: 401 });
    const client = openaiClient(gw);
    const first = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'r1' }] }).catch((e: unknown) => e);
    expect(first).toBeInstanceOf(OpenAI.InternalServerError);
    const calls = fixture.fake.completionCalls().length;
    const second = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'r2' }] }).catch((e: unknown) => e);
    expect((second as InstanceType<typeof OpenAI.APIError>).code).toBe('provider_keys_rejected');
    expect(fixture.fake.completionCalls()).toHaveLength(calls);
  });
});
