/**
 * End to end: a cache entry answers both forms whatever filled it. JSON fill → SSE hit
 * (read by the real openai SDK, and checked chunk by chunk), SSE fill → JSON hit (the assembled
 * completion: content, finish_reason, the original usage, system_fingerprint, Groq's x_groq),
 * SSE fill → SSE hit; tool calls and long answers too. Run against the embedded store and Redis.
 */
import OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import {
  BACKENDS,
  chat,
  chatBody,
  parseStream,
  post,
  streamText,
  unique,
  untilStored,
  useGateway,
  type Chunk,
  type ParsedStream,
} from './helpers/cache-e2e.js';
import { answerFor } from './helpers/fake-upstream.js';

/** A prompt long enough that the echoed answer needs several content chunks on replay. */
function longPrompt(): string {
  return `${unique('long')} ${'lorem ipsum dolor sit amet '.repeat(12)}`.trim();
}

interface ChatCompletionJson {
  id: string;
  object: string;
  created: number;
  model: string;
  system_fingerprint?: string;
  choices: Array<{ index: number; message: { role: string; content: string | null; tool_calls?: unknown[] }; finish_reason: string }>;
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
  x_groq?: { id: string };
}

/** The shape every proper chat stream has, whatever produced it. */
function expectWellFormedChatStream(stream: ParsedStream, expected: { text: string; usage?: unknown }): void {
  expect(stream.done).toBe(true);
  expect(stream.data.filter((d) => d === '[DONE]')).toHaveLength(1);
  const { chunks } = stream;
  const first = chunks[0] as Chunk;
  for (const chunk of chunks) {
    expect(chunk.object).toBe('chat.completion.chunk');
    expect({ id: chunk.id, created: chunk.created, model: chunk.model }).toEqual({ id: first.id, created: first.created, model: first.model });
  }
  expect(first.choices?.[0]?.delta?.['role']).toBe('assistant');
  const contentChunks = chunks.filter((c) => typeof c.choices?.[0]?.delta?.['content'] === 'string' && c.choices[0].delta['content'] !== '');
  expect(contentChunks.length).toBeGreaterThanOrEqual(2);
  const finishes = chunks.filter((c) => c.choices?.some((choice) => choice.finish_reason));
  expect(finishes).toHaveLength(1);
  expect(finishes[0]?.choices?.[0]?.finish_reason).toBe('stop');
  expect(streamText(stream)).toBe(expected.text);
  const usageChunks = chunks.filter((c) => c.usage);
  if (expected.usage === undefined) {
    expect(usageChunks).toHaveLength(0);
  } else {
    // The usage chunk is the last one before [DONE], with no choices.
    expect(usageChunks).toHaveLength(1);
    expect(chunks.at(-1)).toBe(usageChunks[0]);
    expect(usageChunks[0]?.choices).toEqual([]);
    expect(usageChunks[0]?.usage).toEqual(expected.usage);
  }
}

describe.each(BACKENDS)('cache entries answer both forms (%s backend)', (backend) => {
  const setup = useGateway(backend);
  const sdk = (): OpenAI => new OpenAI({ apiKey: 'unused-by-gateway', baseURL: setup.gateway.baseURL, maxRetries: 0, timeout: 10_000 });

  it('JSON fill → SSE hit: the openai SDK reads the same text; the stream is well formed', async () => {
    const prompt = longPrompt();
    const { data: filled, response: fillResponse } = await sdk()
      .chat.completions.create(chatBody(prompt) as never as OpenAI.ChatCompletionCreateParamsNonStreaming)
      .withResponse();
    expect(fillResponse.headers.get('x-cache')).toBe('MISS');
    const text = filled.choices[0]?.message.content ?? '';
    expect(text).toBe(answerFor({ messages: [{ content: prompt }] }));

    const { data: stream, response } = await sdk()
      .chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: prompt }], stream: true })
      .withResponse();
    expect(response.headers.get('x-cache')).toBe('HIT');
    let sdkText = '';
    let finish: string | null | undefined;
    for await (const chunk of stream) {
      sdkText += chunk.choices[0]?.delta.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
      expect(chunk.id).toBe(filled.id);
    }
    expect(sdkText).toBe(text);
    expect(finish).toBe('stop');

    // The same hit on the wire: no usage chunk unless asked, with it when asked (the original usage).
    const raw = await chat(setup.gateway, chatBody(prompt, { stream: true }));
    expect(raw.xCache).toBe('HIT');
    expect(raw.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expectWellFormedChatStream(parseStream(raw.text), { text });
    const withUsage = await chat(setup.gateway, chatBody(prompt, { stream: true, stream_options: { include_usage: true } }));
    expect(withUsage.xCache).toBe('HIT');
    const parsed = parseStream(withUsage.text);
    expectWellFormedChatStream(parsed, { text, usage: filled.usage });
    expect(parsed.chunks[0]?.['system_fingerprint']).toBe(filled.system_fingerprint);
    expect(setup.fake.completionCalls()).toHaveLength(1);
  });

  it('SSE fill → JSON hit: the assembled completion with content, finish_reason, the original usage and fingerprint', async () => {
    const prompt = longPrompt();
    const fill = await chat(setup.gateway, chatBody(prompt, { stream: true, stream_options: { include_usage: true } }));
    expect(fill.xCache).toBe('MISS');
    const filled = parseStream(fill.text);
    const originalUsage = filled.chunks.at(-1)?.usage;
    expect(originalUsage?.['total_tokens']).toBeGreaterThan(0);

    const hit = await untilStored(() => chat(setup.gateway, chatBody(prompt)));
    expect(hit.xCache).toBe('HIT');
    expect(hit.headers.get('content-type')).toMatch(/^application\/json/);
    const completion = JSON.parse(hit.text) as ChatCompletionJson;
    expect(completion.object).toBe('chat.completion');
    expect(completion.id).toBe(filled.chunks[0]?.id);
    expect(completion.created).toBe(filled.chunks[0]?.created);
    expect(completion.model).toBe('gpt-4o-mini');
    expect(completion.system_fingerprint).toBe('fp_fake');
    expect(completion.choices).toHaveLength(1);
    expect(completion.choices[0]?.message).toMatchObject({ role: 'assistant', content: streamText(filled) });
    expect(completion.choices[0]?.finish_reason).toBe('stop');
    expect(completion.usage).toEqual(originalUsage);

    // The SDK reads it like any completion.
    const viaSdk = await sdk().chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: prompt }] });
    expect(viaSdk.choices[0]?.message.content).toBe(streamText(filled));
    expect(viaSdk.usage).toEqual(originalUsage);
    expect(setup.fake.completionCalls()).toHaveLength(1);
  });

  it('SSE fill → SSE hit: same text, same ids, usage only when asked and then the original one', async () => {
    const prompt = longPrompt();
    const fill = await chat(setup.gateway, chatBody(prompt, { stream: true }));
    expect(fill.xCache).toBe('MISS');
    const filled = parseStream(fill.text);
    // The gateway asks upstream for usage itself; a client that did not ask never sees it.
    expect(filled.chunks.some((c) => c.usage)).toBe(false);
    expect(setup.fake.completionCalls()[0]?.json?.['stream_options']).toEqual({ include_usage: true });
    const text = answerFor({ messages: [{ content: prompt }] });
    expect(streamText(filled)).toBe(text);

    const hit = await untilStored(() => chat(setup.gateway, chatBody(prompt, { stream: true })));
    expect(hit.xCache).toBe('HIT');
    const replay = parseStream(hit.text);
    expectWellFormedChatStream(replay, { text });
    expect(replay.chunks[0]?.id).toBe(filled.chunks[0]?.id);

    const withUsage = parseStream((await chat(setup.gateway, chatBody(prompt, { stream: true, stream_options: { include_usage: true } }))).text);
    const json = JSON.parse((await chat(setup.gateway, chatBody(prompt))).text) as ChatCompletionJson;
    expectWellFormedChatStream(withUsage, { text, usage: json.usage });
    expect(json.usage.completion_tokens).toBeGreaterThan(0);
    expect(setup.fake.completionCalls()).toHaveLength(1);
  });

  it('Groq: SSE fill → JSON hit keeps x_groq; JSON fill → SSE hit carries usage in x_groq like Groq does', async () => {
    const prompt = longPrompt();
    const body = chatBody(prompt, { model: 'llama-3.1-8b-instant' });
    const fill = await post(setup.gateway, '/openai/v1/chat/completions', { ...body, stream: true });
    expect(fill.xCache).toBe('MISS');
    expect(fill.headers.get('x-gateway-provider')).toBe('groq');
    const filled = parseStream(fill.text);
    const groqUsage = (filled.chunks.at(-1)?.['x_groq'] as { usage?: unknown } | undefined)?.usage;
    expect(groqUsage).toBeDefined();

    const hit = await untilStored(() => post(setup.gateway, '/openai/v1/chat/completions', body));
    const completion = JSON.parse(hit.text) as ChatCompletionJson;
    expect(completion.x_groq?.id).toBe((filled.chunks[0]?.['x_groq'] as { id: string } | undefined)?.id);
    expect(completion.usage).toEqual(groqUsage);
    expect(completion.choices[0]?.message.content).toBe(streamText(filled));

    // JSON fill, then a stream hit on the OpenAI-layout path (same provider, same entry).
    const jsonPrompt = longPrompt();
    const jsonBody = chatBody(jsonPrompt, { model: 'llama-3.1-8b-instant' });
    const jsonFill = JSON.parse((await post(setup.gateway, '/openai/v1/chat/completions', jsonBody)).text) as ChatCompletionJson;
    expect(jsonFill.x_groq?.id).toMatch(/^req_groq_/);
    const streamHit = await chat(setup.gateway, { ...jsonBody, stream: true });
    expect(streamHit.xCache).toBe('HIT');
    const replay = parseStream(streamHit.text);
    expectWellFormedChatStream(replay, { text: jsonFill.choices[0]?.message.content ?? '' });
    expect((replay.chunks.at(-1)?.['x_groq'] as { usage?: unknown } | undefined)?.usage).toEqual(jsonFill.usage);
    expect(setup.fake.completionCalls()).toHaveLength(2);
  });

  it('JSON fill with tool calls → SSE hit the SDK assembles into the same tool calls', async () => {
    const prompt = unique('tools');
    const toolCalls = [
      {
        id: 'call_1',
        type: 'function',
        function: { name: 'get_weather', arguments: JSON.stringify({ city: 'Paris', unit: 'celsius', note: 'x'.repeat(300) }) },
      },
      { id: 'call_2', type: 'function', function: { name: 'get_time', arguments: '{"zone":"Europe/Paris"}' } },
    ];
    const usage = { prompt_tokens: 40, completion_tokens: 30, total_tokens: 70 };
    setup.fake.queue.push({
      status: 200,
      body: {
        id: 'chatcmpl-tools',
        object: 'chat.completion',
        created: 1_700_000_123,
        model: 'gpt-4o-mini',
        system_fingerprint: 'fp_tools',
        choices: [
          { index: 0, message: { role: 'assistant', content: null, tool_calls: toolCalls, refusal: null }, logprobs: null, finish_reason: 'tool_calls' },
        ],
        usage,
      },
    });
    const body = chatBody(prompt, { tools: [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: {} } } }] });
    expect((await chat(setup.gateway, body)).xCache).toBe('MISS');

    const runner = sdk().chat.completions.stream({ ...(body as never as OpenAI.ChatCompletionCreateParamsStreaming), stream_options: { include_usage: true } });
    const final = await runner.finalChatCompletion();
    expect(final.id).toBe('chatcmpl-tools');
    expect(final.choices[0]?.finish_reason).toBe('tool_calls');
    expect(final.choices[0]?.message.tool_calls?.map((c) => ({ id: c.id, type: c.type, function: (c as { function: unknown }).function }))).toEqual(toolCalls);
    expect(final.usage).toEqual(usage);
    expect(setup.fake.completionCalls()).toHaveLength(1);
  });

  it('accounts a hit with the original usage (gateway_tokens_total{cache="hit"}), in both forms', async () => {
    const prompt = longPrompt();
    const fill = JSON.parse((await chat(setup.gateway, chatBody(prompt))).text) as ChatCompletionJson;
    const labels = { provider: 'openai', model: 'gpt-4o-mini', cache: 'hit' };
    const before = await tokenCounts(setup.gateway.url, labels);
    expect((await chat(setup.gateway, chatBody(prompt))).xCache).toBe('HIT');
    expect((await chat(setup.gateway, chatBody(prompt, { stream: true }))).xCache).toBe('HIT');
    const after = await tokenCounts(setup.gateway.url, labels);
    expect(after.prompt - before.prompt).toBe(2 * fill.usage.prompt_tokens);
    expect(after.completion - before.completion).toBe(2 * fill.usage.completion_tokens);
  });

  it('replays a very long answer with no SSE line over 64 KiB', async () => {
    const prompt = unique('huge');
    const content = 'word '.repeat(60_000); // 300 KB
    setup.fake.queue.push({
      status: 200,
      body: {
        id: 'chatcmpl-huge',
        object: 'chat.completion',
        created: 1_700_000_321,
        model: 'gpt-4o-mini',
        choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'length' }],
        usage: { prompt_tokens: 5, completion_tokens: 60_000, total_tokens: 60_005 },
      },
    });
    expect((await chat(setup.gateway, chatBody(prompt))).xCache).toBe('MISS');
    const hit = await chat(setup.gateway, chatBody(prompt, { stream: true }));
    expect(hit.xCache).toBe('HIT');
    const longest = Math.max(...hit.text.split('\n').map((line) => Buffer.byteLength(line)));
    expect(longest).toBeLessThanOrEqual(64 * 1024);
    expect(streamText(parseStream(hit.text))).toBe(content);
  });
});

/** gateway_tokens_total for the given labels, by type. */
async function tokenCounts(gatewayUrl: string, labels: Record<string, string>): Promise<{ prompt: number; completion: number }> {
  const text = await (await fetch(`${gatewayUrl}/metrics`)).text();
  const value = (type: string): number => {
    const wanted = { ...labels, type };
    for (const line of text.split('\n')) {
      const match = /^gateway_tokens_total\{([^}]*)\} (\S+)$/.exec(line);
      if (!match) continue;
      const found = Object.fromEntries([...(match[1] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
      if (Object.entries(wanted).every(([k, v]) => found[k] === v)) return Number(match[2]);
    }
    return 0;
  };
  return { prompt: value('prompt'), completion: value('completion') };
}
