/**
 * End to end: which requests share a cache entry, counted at the fake upstream. Same body
 * (also with other key order, `user` or `stream`) → one upstream call; any field that can change the
 * answer (temperature, seed, tools, a field the gateway does not know) → its own call. Embeddings and
 * legacy completions (both forms) hit too. Run against the embedded store and a real Redis.
 */
import { describe, expect, it } from 'vitest';
import { BACKENDS, chat, chatBody, parseStream, post, streamText, unique, untilStored, useGateway } from './helpers/cache-e2e.js';
import { answerFor } from './helpers/fake-upstream.js';

describe.each(BACKENDS)('cache keys end to end (%s backend)', (backend) => {
  const setup = useGateway(backend);

  it('answers the same body twice with one upstream call; the second is a HIT with the same completion', async () => {
    const body = chatBody(unique());
    const first = await chat(setup.gateway, body);
    expect(first.status).toBe(200);
    expect(first.xCache).toBe('MISS');
    const second = await chat(setup.gateway, body);
    expect(second.status).toBe(200);
    expect(second.xCache).toBe('HIT');
    expect(JSON.parse(second.text)).toEqual(JSON.parse(first.text));
    expect(setup.fake.completionCalls()).toHaveLength(1);
  });

  it('answers a repeat sent the moment a large answer arrived from that answer, while its entry is still being written', async () => {
    // A big entry is compressed off the event loop before it is stored: the repeat arrives first.
    const content = Array.from({ length: 40_000 }, (_, i) => `w${(i * 7919) % 100_003}`).join(' ');
    setup.fake.queue.push({
      status: 200,
      body: {
        id: 'chatcmpl-large',
        object: 'chat.completion',
        created: 1_700_000_999,
        model: 'gpt-4o-mini',
        choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }],
        usage: { prompt_tokens: 3, completion_tokens: 40_000, total_tokens: 40_003 },
      },
    });
    const body = chatBody(unique('large'));
    const first = await chat(setup.gateway, body);
    expect(first.xCache).toBe('MISS');
    const repeat = await chat(setup.gateway, body);
    expect(repeat.xCache).toBe('HIT');
    expect(JSON.parse(repeat.text)).toEqual(JSON.parse(first.text));
    expect(setup.fake.completionCalls()).toHaveLength(1);
  });

  it('shares one entry across key order, `user` and `stream` differences', async () => {
    const prompt = unique();
    const first = await chat(setup.gateway, { model: 'gpt-4o-mini', temperature: 0.5, messages: [{ role: 'user', content: prompt }] });
    expect(first.xCache).toBe('MISS');
    const reordered = await chat(setup.gateway, { messages: [{ content: prompt, role: 'user' }], temperature: 0.5, model: 'gpt-4o-mini' });
    const withUser = await chat(setup.gateway, { model: 'gpt-4o-mini', temperature: 0.5, messages: [{ role: 'user', content: prompt }], user: 'alice' });
    const streamed = await chat(setup.gateway, {
      model: 'gpt-4o-mini',
      temperature: 0.5,
      messages: [{ role: 'user', content: prompt }],
      stream: true,
      user: 'bob',
    });
    const streamFalse = await chat(setup.gateway, { stream: false, model: 'gpt-4o-mini', messages: [{ role: 'user', content: prompt }], temperature: 0.5 });
    for (const response of [reordered, withUser, streamed, streamFalse]) {
      expect(response.status).toBe(200);
      expect(response.xCache).toBe('HIT');
    }
    expect(streamText(parseStream(streamed.text))).toBe(answerFor({ messages: [{ content: prompt }], temperature: 0.5 }));
    expect(setup.fake.completionCalls()).toHaveLength(1);
  });

  it.each([
    ['temperature', { temperature: 0.2 }, { temperature: 0.9 }],
    ['seed', { seed: 1 }, { seed: 2 }],
    ['tools', {}, { tools: [{ type: 'function', function: { name: 'lookup', parameters: { type: 'object', properties: {} } } }] }],
    ['an unknown field', {}, { some_future_option: { level: 'high' } }],
    ['a nested value', { response_format: { type: 'text' } }, { response_format: { type: 'json_object' } }],
  ])('gives a request that differs in %s its own upstream call', async (_name, a, b) => {
    const prompt = unique();
    const first = await chat(setup.gateway, chatBody(prompt, a));
    const second = await chat(setup.gateway, chatBody(prompt, b));
    expect([first.xCache, second.xCache]).toEqual(['MISS', 'MISS']);
    expect(setup.fake.completionCalls()).toHaveLength(2);
    // Each still has its own entry.
    const again = await chat(setup.gateway, chatBody(prompt, b));
    expect(again.xCache).toBe('HIT');
    expect(setup.fake.completionCalls()).toHaveLength(2);
  });

  it('does not share entries across providers or routes for an equal body', async () => {
    const prompt = unique();
    await chat(setup.gateway, chatBody(prompt, { model: 'gpt-4o-mini' }));
    const groq = await chat(setup.gateway, chatBody(prompt, { model: 'llama-3.1-8b-instant' }));
    expect(groq.xCache).toBe('MISS');
    const legacy = await post(setup.gateway, '/v1/completions', { model: 'gpt-4o-mini', prompt });
    expect(legacy.status).toBe(200);
    expect(setup.fake.completionCalls()).toHaveLength(3);
  });

  it('hits for embeddings, with the same vectors (cached per input: a batch all cached bills nothing)', async () => {
    const body = { model: 'text-embedding-3-small', input: [unique('embed'), unique('second input')] };
    const first = await post(setup.gateway, '/v1/embeddings', body);
    expect(first.status).toBe(200);
    expect(first.xCache).toBe('MISS');
    const second = await post(setup.gateway, '/v1/embeddings', { input: body.input, model: body.model, user: 'someone' });
    expect(second.xCache).toBe('HIT');
    expect(JSON.parse(second.text)).toEqual({ ...JSON.parse(first.text), usage: { prompt_tokens: 0, total_tokens: 0 } });
    expect(setup.fake.completionCalls()).toHaveLength(1);
    const other = await post(setup.gateway, '/v1/embeddings', { ...body, input: [body.input[0]] });
    expect(other.xCache).toBe('HIT');
    const another = await post(setup.gateway, '/v1/embeddings', { ...body, dimensions: 4 });
    expect(another.xCache).toBe('MISS');
    expect(setup.fake.completionCalls()).toHaveLength(2);
  });

  it('hits for legacy completions filled as JSON and answered as JSON and as a stream', async () => {
    const prompt = unique('legacy');
    const body = { model: 'gpt-3.5-turbo-instruct', prompt, max_tokens: 50 };
    const first = await post(setup.gateway, '/v1/completions', body);
    expect(first.xCache).toBe('MISS');
    const filled = JSON.parse(first.text) as { choices: Array<{ text: string }>; usage: unknown };
    const json = await post(setup.gateway, '/v1/completions', body);
    expect(json.xCache).toBe('HIT');
    expect(JSON.parse(json.text)).toEqual(filled);
    const stream = await post(setup.gateway, '/v1/completions', { ...body, stream: true, stream_options: { include_usage: true } });
    expect(stream.xCache).toBe('HIT');
    expect(stream.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const parsed = parseStream(stream.text);
    expect(parsed.done).toBe(true);
    expect(streamText(parsed)).toBe(filled.choices[0]?.text);
    expect(parsed.chunks.at(-1)?.usage).toEqual(filled.usage);
    for (const chunk of parsed.chunks) expect(chunk.object).toBe('text_completion');
    expect(setup.fake.completionCalls()).toHaveLength(1);
  });

  it('hits for legacy completions filled as a stream and answered as a stream and as JSON', async () => {
    const prompt = unique('legacy-stream');
    const body = { model: 'gpt-3.5-turbo-instruct', prompt, stream: true };
    const first = await post(setup.gateway, '/v1/completions', body);
    expect(first.xCache).toBe('MISS');
    const firstText = streamText(parseStream(first.text));
    expect(firstText).toBe(answerFor({ prompt }));
    const again = await untilStored(() => post(setup.gateway, '/v1/completions', body));
    expect(again.xCache).toBe('HIT');
    expect(streamText(parseStream(again.text))).toBe(firstText);
    const json = await post(setup.gateway, '/v1/completions', { model: body.model, prompt });
    expect(json.xCache).toBe('HIT');
    const completion = JSON.parse(json.text) as { object: string; choices: Array<{ text: string; finish_reason: string }>; usage: { total_tokens: number } };
    expect(completion.object).toBe('text_completion');
    expect(completion.choices[0]).toMatchObject({ text: firstText, finish_reason: 'stop' });
    expect(completion.usage.total_tokens).toBeGreaterThan(0);
    expect(setup.fake.completionCalls()).toHaveLength(1);
  });
});
