/**
 * SSE of chat and text completions: parsing upstream bytes, assembling the JSON answer, rendering a
 * JSON answer as a stream (checked with the real openai SDK's stream accumulator), replaying streams.
 */
import { ChatCompletionStream } from 'openai/lib/ChatCompletionStream';
import { Stream } from 'openai/streaming';
import { describe, expect, it } from 'vitest';
import type { CacheEntry } from '../src/cache/entry.js';
import { completionJsonFromEntry, entryFromStream, replayStoredSse, sseFromEntry } from '../src/cache/entry-forms.js';
import { assembleCompletion } from '../src/openai/completion-assembler.js';
import { isUsageOnlyChunk, type ChatCompletion, type Completion, type CompletionEndpoint, type TextCompletion } from '../src/openai/completion-types.js';
import type { JsonObject } from '../src/openai/json-fields.js';
import { parseSse, SseStreamParser } from '../src/openai/sse-parser.js';
import { SseRecorder } from '../src/openai/stream-recorder.js';
import { renderSse, splitText } from '../src/openai/stream-renderer.js';

/* Upstream streams as OpenAI and Groq send them (shapes taken from real responses). */
const oa = {
  id: 'chatcmpl-Bx1',
  object: 'chat.completion.chunk',
  created: 1_727_000_000,
  model: 'gpt-4o-mini-2024-07-18',
  service_tier: 'default',
  system_fingerprint: 'fp_a1b2c3',
};
const oaUsage = {
  prompt_tokens: 12,
  completion_tokens: 9,
  total_tokens: 21,
  prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
  completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
};
const sse = (chunks: unknown[], done = true): string => chunks.map((c) => `data: ${JSON.stringify(c)}\n\n`).join('') + (done ? 'data: [DONE]\n\n' : '');
const ch = (choices: unknown[], extra: JsonObject = {}): JsonObject => ({ ...oa, choices, usage: null, obfuscation: 'x7Q', ...extra });
const delta = (d: JsonObject, index = 0, finish: string | null = null): JsonObject => ({ index, delta: d, logprobs: null, finish_reason: finish });

const openAiChat = sse([
  ch([delta({ role: 'assistant', content: '', refusal: null })]),
  ch([delta({ content: 'Hello' })]),
  ch([delta({ content: '! Héllo wörld 😀' })]),
  ch([delta({ content: ' How can I help?' })]),
  ch([delta({}, 0, 'stop')]),
  { ...oa, choices: [], usage: oaUsage, obfuscation: 'k' },
]);

const openAiTools = sse([
  ch([
    delta({
      role: 'assistant',
      content: null,
      tool_calls: [{ index: 0, id: 'call_A', type: 'function', function: { name: 'get_weather', arguments: '' } }],
      refusal: null,
    }),
  ]),
  ch([delta({ tool_calls: [{ index: 0, function: { arguments: '{"city":' } }] })]),
  ch([delta({ tool_calls: [{ index: 0, function: { arguments: '"Paris"}' } }] })]),
  ch([delta({ tool_calls: [{ index: 1, id: 'call_B', type: 'function', function: { name: 'get_time', arguments: '' } }] })]),
  ch([delta({ tool_calls: [{ index: 1, function: { arguments: '{"tz":"CET"}' } }] })]),
  ch([delta({}, 0, 'tool_calls')]),
  { ...oa, choices: [], usage: oaUsage },
]);

const openAiTwoChoices = sse([
  ch([delta({ role: 'assistant', content: '' }, 0)]),
  ch([delta({ role: 'assistant', content: '' }, 1)]),
  ch([delta({ content: 'Red' }, 0)]),
  ch([delta({ content: 'Blue' }, 1)]),
  ch([delta({ content: ' apple' }, 0)]),
  ch([delta({}, 1, 'stop')]),
  ch([delta({}, 0, 'length')]),
]);

const gq = { id: 'chatcmpl-g77', object: 'chat.completion.chunk', created: 1_727_000_100, model: 'llama-3.1-8b-instant', system_fingerprint: 'fp_g1' };
const groqUsage = {
  queue_time: 0.02,
  prompt_tokens: 18,
  prompt_time: 0.001,
  completion_tokens: 4,
  completion_time: 0.003,
  total_tokens: 22,
  total_time: 0.004,
};
const groqChat = sse([
  { ...gq, choices: [delta({ role: 'assistant', content: '' })], x_groq: { id: 'req_01abc' } },
  { ...gq, choices: [delta({ content: 'Hi there' })] },
  { ...gq, choices: [delta({ content: '!' })] },
  { ...gq, choices: [delta({}, 0, 'stop')], x_groq: { id: 'req_01abc', usage: groqUsage } },
]);

const tc = { id: 'cmpl-T1', object: 'text_completion', created: 1_727_000_200, model: 'gpt-3.5-turbo-instruct' };
const openAiText = sse([
  { ...tc, choices: [{ text: 'Once upon', index: 0, logprobs: null, finish_reason: null }] },
  { ...tc, choices: [{ text: ' a time', index: 0, logprobs: null, finish_reason: null }] },
  { ...tc, choices: [{ text: '', index: 0, logprobs: null, finish_reason: 'length' }] },
  { ...tc, choices: [], usage: { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 } },
]);

const chunksOf = (text: string): JsonObject[] => parseSse(text).flatMap((e) => (e.chunk ? [e.chunk] : []));
const assemble = (text: string, endpoint: CompletionEndpoint = 'chat.completions'): Completion => assembleCompletion(chunksOf(text), endpoint);
const dataLines = (buf: Buffer | string): string[] =>
  buf
    .toString()
    .split('\n')
    .filter((l) => l.startsWith('data: '));

describe('SseStreamParser', () => {
  it('gives the same events whether bytes arrive whole or one at a time (multi-byte chars split)', () => {
    const whole = parseSse(openAiChat);
    const parser = new SseStreamParser();
    const bytes = Buffer.from(openAiChat);
    const trickled = [];
    for (let i = 0; i < bytes.length; i++) trickled.push(...parser.push(bytes.subarray(i, i + 1)));
    trickled.push(...parser.end());
    expect(trickled).toEqual(whole);
    expect(whole).toHaveLength(7);
    expect(whole.at(-1)?.done).toBe(true);
    expect(whole[2]?.chunk?.['choices']).toEqual([delta({ content: '! Héllo wörld 😀' })]);
  });

  it('reads CRLF framing, ignores comments, and re-serialises events as data lines', () => {
    const events = parseSse(': keep-alive\r\n\r\ndata: {"a":1}\r\n\r\ndata: [DONE]\r\n\r\n');
    expect(events.map((e) => e.raw)).toEqual(['data: {"a":1}\n\n', 'data: [DONE]\n\n']);
    expect(events[0]?.chunk).toEqual({ a: 1 });
  });

  it('flushes an unterminated last event at end()', () => {
    const parser = new SseStreamParser();
    expect(parser.push('data: {"a":1}\n')).toEqual([]);
    expect(parser.end().map((e) => e.chunk)).toEqual([{ a: 1 }]);
  });

  it('stops, without throwing, when one event outgrows the buffer bound', () => {
    const parser = new SseStreamParser({ maxBufferBytes: 1024 });
    expect(parser.push('data: {"a":1}\n\n').map((e) => e.chunk)).toEqual([{ a: 1 }]);
    expect(parser.overflowed).toBe(false);
    parser.push(`data: ${'x'.repeat(4096)}`);
    expect(parser.overflowed).toBe(true);
    expect(parser.push('\n\ndata: {"b":2}\n\n')).toEqual([]);
    expect(parser.end()).toEqual([]);
  });

  it('recognises the usage-only chunk', () => {
    const chunks = chunksOf(openAiChat);
    expect(chunks.map(isUsageOnlyChunk)).toEqual([false, false, false, false, false, true]);
    expect(isUsageOnlyChunk(undefined)).toBe(false);
  });
});

describe('assembleCompletion', () => {
  it('builds the OpenAI chat.completion object', () => {
    expect(assemble(openAiChat)).toEqual({
      id: 'chatcmpl-Bx1',
      object: 'chat.completion',
      created: 1_727_000_000,
      model: 'gpt-4o-mini-2024-07-18',
      choices: [
        { index: 0, message: { role: 'assistant', content: 'Hello! Héllo wörld 😀 How can I help?', refusal: null }, logprobs: null, finish_reason: 'stop' },
      ],
      usage: oaUsage,
      service_tier: 'default',
      system_fingerprint: 'fp_a1b2c3',
    });
  });

  it('concatenates parallel tool calls by index', () => {
    const choice = (assemble(openAiTools) as ChatCompletion).choices[0];
    expect(choice?.finish_reason).toBe('tool_calls');
    expect(choice?.message).toEqual({
      role: 'assistant',
      content: null,
      refusal: null,
      tool_calls: [
        { id: 'call_A', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
        { id: 'call_B', type: 'function', function: { name: 'get_time', arguments: '{"tz":"CET"}' } },
      ],
    });
  });

  it('keeps n>1 choices apart, ordered by index', () => {
    const { choices } = assemble(openAiTwoChoices) as ChatCompletion;
    expect(choices.map((c) => [c.index, c.message.content, c.finish_reason])).toEqual([
      [0, 'Red apple', 'length'],
      [1, 'Blue', 'stop'],
    ]);
  });

  it("takes Groq's usage from x_groq.usage and keeps x_groq.id", () => {
    const completion = assemble(groqChat);
    expect(completion.usage).toEqual(groqUsage);
    expect(completion.x_groq).toEqual({ id: 'req_01abc' });
    expect(completion.choices[0]).toEqual({ index: 0, message: { role: 'assistant', content: 'Hi there!' }, logprobs: null, finish_reason: 'stop' });
  });

  it('builds a text_completion from a legacy completions stream', () => {
    expect(assemble(openAiText, 'completions')).toEqual({
      id: 'cmpl-T1',
      object: 'text_completion',
      created: 1_727_000_200,
      model: 'gpt-3.5-turbo-instruct',
      choices: [{ text: 'Once upon a time', index: 0, logprobs: null, finish_reason: 'length' }],
      usage: { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 },
    });
  });

  it('concatenates logprobs slices', () => {
    const lp = (token: string): JsonObject => ({ token, logprob: -0.1, bytes: [1], top_logprobs: [] });
    const stream = sse([
      ch([{ index: 0, delta: { role: 'assistant', content: 'A' }, logprobs: { content: [lp('A')], refusal: null }, finish_reason: null }]),
      ch([{ index: 0, delta: { content: 'B' }, logprobs: { content: [lp('B')], refusal: null }, finish_reason: null }]),
      ch([delta({}, 0, 'stop')]),
    ]);
    expect((assemble(stream) as ChatCompletion).choices[0]?.logprobs).toEqual({ content: [lp('A'), lp('B')], refusal: null });
  });
});

describe('renderSse', () => {
  const roundTrip = (completion: Completion, provider?: 'openai' | 'groq'): Completion =>
    assemble(
      renderSse(completion, { includeUsage: true, ...(provider ? { provider } : {}) }).toString(),
      completion.object === 'text_completion' ? 'completions' : 'chat.completions',
    );

  it('round-trips every fixture: render, parse, assemble gives the same object', () => {
    for (const [text, endpoint] of [
      [openAiChat, 'chat.completions'],
      [openAiTools, 'chat.completions'],
      [openAiTwoChoices, 'chat.completions'],
      [openAiText, 'completions'],
    ] as const) {
      const completion = assemble(text, endpoint);
      expect(roundTrip(completion)).toEqual(completion);
    }
    const groq = assemble(groqChat);
    expect(roundTrip(groq, 'groq')).toEqual(groq);
  });

  it('round-trips logprobs for chat and text completions', () => {
    const content = Array.from({ length: 400 }, (_, i) => ({
      token: `t${i}`,
      logprob: -(i + 1) / 100,
      bytes: [116],
      top_logprobs: [{ token: 'x', logprob: -9, bytes: [120] }],
    }));
    const chat: ChatCompletion = {
      id: 'c',
      object: 'chat.completion',
      created: 1,
      model: 'm',
      choices: [{ index: 0, message: { role: 'assistant', content: 'hi' }, logprobs: { content, refusal: null }, finish_reason: 'stop' }],
    };
    expect(roundTrip(chat)).toEqual(chat);
    const text: TextCompletion = {
      id: 't',
      object: 'text_completion',
      created: 1,
      model: 'm',
      choices: [
        {
          text: 'ab',
          index: 0,
          logprobs: { tokens: ['a', 'b'], token_logprobs: [-1, -2], top_logprobs: [null, null], text_offset: [0, 1] },
          finish_reason: 'stop',
        },
      ],
    };
    expect(roundTrip(text)).toEqual(text);
  });

  it('opens with the role chunk, streams content in several chunks, ends with finish, usage, [DONE]', () => {
    const completion = assemble(openAiChat);
    const lines = dataLines(renderSse(completion, { includeUsage: true, pieceChars: 16 }));
    const chunks = lines.slice(0, -1).map((l) => JSON.parse(l.slice(6)) as JsonObject);
    expect(lines.at(-1)).toBe('data: [DONE]');
    expect(chunks[0]?.['choices']).toEqual([delta({ role: 'assistant', content: '', refusal: null })]);
    const contentChunks = chunks.filter((c) => typeof (c['choices'] as Array<{ delta?: { content?: unknown } }>)[0]?.delta?.content === 'string');
    expect(contentChunks.length).toBeGreaterThan(2);
    expect(chunks.at(-2)?.['choices']).toEqual([delta({}, 0, 'stop')]);
    expect(chunks.at(-1)).toMatchObject({ choices: [], usage: oaUsage });
    for (const chunk of chunks) {
      expect(chunk).toMatchObject({
        id: oa.id,
        object: 'chat.completion.chunk',
        created: oa.created,
        model: oa.model,
        system_fingerprint: oa.system_fingerprint,
      });
    }
  });

  it('sends the usage chunk only when asked', () => {
    const completion = assemble(openAiChat);
    const without = renderSse(completion, { includeUsage: false }).toString();
    expect(without).not.toContain('"usage"');
    expect(assemble(without).usage).toBeUndefined();
    expect(renderSse(completion, { includeUsage: true }).toString()).toContain('"choices":[],"usage"');
  });

  it("puts usage in Groq's x_groq of the last chunk even without include_usage", () => {
    const lines = dataLines(renderSse(assemble(groqChat), { includeUsage: false, provider: 'groq' }));
    const last = JSON.parse(lines.at(-2)?.slice(6) ?? '{}') as JsonObject;
    expect(last['x_groq']).toEqual({ id: 'req_01abc', usage: groqUsage });
    expect(lines.join('\n')).not.toContain('"choices":[],"usage"');
  });

  it('never writes a data line over 64 KiB, even for a 200 KB answer, and keeps every character', () => {
    const content = 'Ünïcödé 😀 text with "quotes" and \\ backslashes\n'.repeat(4_400).slice(0, 200_000);
    const args = JSON.stringify({ blob: 'é'.repeat(150_000) });
    const completion: ChatCompletion = {
      id: 'c',
      object: 'chat.completion',
      created: 1,
      model: 'm',
      choices: [
        {
          index: 0,
          message: { role: 'assistant', content, tool_calls: [{ id: 'call', type: 'function', function: { name: 'f', arguments: args } }] },
          finish_reason: 'stop',
          logprobs: null,
        },
      ],
    };
    // The default piece size, and a caller asking for absurdly large pieces: both stay bounded.
    for (const buf of [renderSse(completion, { includeUsage: false }), renderSse(completion, { includeUsage: false, pieceChars: 1_000_000 })]) {
      const lines = buf.toString().split('\n');
      expect(Math.max(...lines.map((l) => Buffer.byteLength(l)))).toBeLessThan(64 * 1024);
      expect((assemble(buf.toString()) as ChatCompletion).choices[0]?.message).toEqual(completion.choices[0]?.message);
    }
  });

  it('is accepted by the openai SDK stream accumulator', async () => {
    for (const text of [openAiChat, openAiTools, openAiTwoChoices]) {
      const completion = assemble(text) as ChatCompletion;
      const body = renderSse(completion, { includeUsage: true });
      const stream = Stream.fromSSEResponse(new Response(new Uint8Array(body)), new AbortController());
      const final = await ChatCompletionStream.fromReadableStream(stream.toReadableStream()).finalChatCompletion();
      expect(final.choices.map((c) => [c.message.content, c.message.tool_calls ?? [], c.finish_reason])).toEqual(
        completion.choices.map((c) => [c.message.content, c.message.tool_calls ?? [], c.finish_reason]),
      );
    }
  });
});

describe('splitText', () => {
  it('covers the text exactly, cuts after whitespace, never splits a surrogate pair', () => {
    const text = 'word '.repeat(50) + '😀'.repeat(100);
    const pieces = splitText(text, 20);
    expect(pieces.join('')).toBe(text);
    expect(pieces.every((p) => p.length <= 20)).toBe(true);
    expect(pieces[0]?.endsWith(' ')).toBe(true);
    for (const piece of pieces) expect(piece).toBe(Buffer.from(piece).toString()); // no lone surrogates
    expect(splitText('', 20)).toEqual([]);
  });

  it('splits a short text into several pieces when asked, even down to single characters and emoji', () => {
    expect(splitText('Hi there, friend!', 96, 4).length).toBeGreaterThanOrEqual(3);
    expect(splitText('Hi there, friend!', 96, 4).join('')).toBe('Hi there, friend!');
    expect(splitText('ok', 96, 4)).toEqual(['o', 'k']);
    const emoji = '😀😀';
    const pieces = splitText(emoji, 96, 4);
    expect(pieces.join('')).toBe(emoji);
    for (const piece of pieces) expect(piece).toBe(Buffer.from(piece).toString());
  });
});

describe('a short answer replayed as a stream', () => {
  it('still has several content deltas (contract: content deltas in several chunks)', () => {
    const completion = {
      id: 'chatcmpl-short',
      object: 'chat.completion',
      created: 1,
      model: 'gpt-4o-mini',
      choices: [{ index: 0, message: { role: 'assistant', content: 'Hello there!' }, logprobs: null, finish_reason: 'stop' }],
    } as unknown as Completion;
    const events = parseSse(renderSse(completion, { includeUsage: false }));
    const contentDeltas = events.filter((e) => {
      const delta = (e.chunk?.['choices'] as Array<{ delta?: { content?: string } }> | undefined)?.[0]?.delta;
      return typeof delta?.content === 'string' && delta.content !== '';
    });
    expect(contentDeltas.length).toBeGreaterThanOrEqual(2);
    expect(contentDeltas.map((e) => (e.chunk?.['choices'] as Array<{ delta: { content: string } }> | undefined)?.[0]?.delta.content).join('')).toBe(
      'Hello there!',
    );
  });
});

describe('cache entries from streams', () => {
  const record = (text: string, endpoint: CompletionEndpoint = 'chat.completions'): SseRecorder => {
    const recorder = new SseRecorder(endpoint);
    for (const event of parseSse(text)) recorder.add(event);
    return recorder;
  };

  it('stores the upstream events without the usage chunk and [DONE], keeping usage in the header', () => {
    const entry = entryFromStream(record(openAiChat), 'openai', 1000);
    expect(entry).toBeDefined();
    const expectedBody = openAiChat
      .split('\n\n')
      .filter((e) => e && !e.includes('"choices":[]') && !e.includes('[DONE]'))
      .map((e) => `${e}\n\n`)
      .join('');
    expect(entry?.body.toString()).toBe(expectedBody);
    expect(entry).toMatchObject({ form: 'sse', endpoint: 'chat.completions', provider: 'openai', model: oa.model, storedAt: 1000, usage: oaUsage });
    expect(entry?.chunkIdentity).toEqual({
      id: oa.id,
      object: 'chat.completion.chunk',
      created: oa.created,
      model: oa.model,
      system_fingerprint: oa.system_fingerprint,
    });
  });

  it('replays a stored stream byte for byte, with a rebuilt usage chunk only when asked', () => {
    const entry = entryFromStream(record(openAiChat), 'openai') as CacheEntry;
    const plain = replayStoredSse(entry, { includeUsage: false }).toString();
    expect(plain).toBe(`${entry.body.toString()}data: [DONE]\n\n`);
    const withUsage = replayStoredSse(entry, { includeUsage: true }).toString();
    const usageLine = dataLines(withUsage).at(-2) ?? '';
    expect(JSON.parse(usageLine.slice(6))).toEqual({
      id: oa.id,
      object: 'chat.completion.chunk',
      created: oa.created,
      model: oa.model,
      system_fingerprint: oa.system_fingerprint,
      choices: [],
      usage: oaUsage,
    });
    expect(assemble(withUsage)).toEqual(assemble(openAiChat));
  });

  it('answers a JSON request from a streamed fill, and a stream request from a JSON fill', () => {
    const streamed = entryFromStream(record(openAiChat), 'openai') as CacheEntry;
    const json = JSON.parse(completionJsonFromEntry(streamed)?.toString() ?? 'null') as Completion;
    expect(json).toEqual(assemble(openAiChat)); // usage restored from the header
    const jsonEntry: CacheEntry = {
      storedAt: 1,
      form: 'json',
      endpoint: 'chat.completions',
      provider: 'openai',
      model: oa.model,
      body: Buffer.from(JSON.stringify(json)),
    };
    expect(completionJsonFromEntry(jsonEntry)).toBe(jsonEntry.body);
    const asStream = sseFromEntry(jsonEntry, { includeUsage: true })?.toString() ?? '';
    expect(assemble(asStream)).toEqual(json);
    const textEntry = entryFromStream(record(openAiText, 'completions'), 'openai') as CacheEntry;
    expect(JSON.parse(completionJsonFromEntry(textEntry)?.toString() ?? 'null')).toEqual(assemble(openAiText, 'completions'));
  });

  it('gives undefined, not an exception, for unusable stored data', () => {
    const broken: CacheEntry = { storedAt: 1, form: 'json', endpoint: 'chat.completions', provider: 'openai', model: 'm', body: Buffer.from('{not json') };
    expect(sseFromEntry(broken, { includeUsage: false })).toBeUndefined();
    expect(completionJsonFromEntry({ ...broken, form: 'sse' })).toBeUndefined();
  });

  it('parses bytes itself when fed with push()/end(), and hands back the events to forward', () => {
    const recorder = new SseRecorder('chat.completions');
    const bytes = Buffer.from(openAiChat);
    const forwarded = [...recorder.push(bytes.subarray(0, 333)), ...recorder.push(bytes.subarray(333)), ...recorder.end()];
    expect(
      forwarded
        .filter((e) => !isUsageOnlyChunk(e.chunk))
        .map((e) => e.raw)
        .join(''),
    ).toBe(openAiChat.replace(/data: \{[^\n]*"choices":\[\],"usage"[^\n]*\n\n/, ''));
    expect(entryFromStream(recorder, 'openai')?.body.toString()).toBe(entryFromStream(record(openAiChat), 'openai')?.body.toString());
  });

  it('refuses to make an entry of a cut-off stream or one carrying an error', () => {
    expect(entryFromStream(record(openAiChat.replace('data: [DONE]\n\n', '')), 'openai')).toBeUndefined();
    const withError = openAiChat.replace('data: [DONE]', 'data: {"error":{"message":"overloaded"}}\n\ndata: [DONE]');
    expect(entryFromStream(record(withError), 'openai')).toBeUndefined();
    const tooBig = new SseRecorder('chat.completions', { maxBodyBytes: 100 });
    for (const event of parseSse(openAiChat)) tooBig.add(event);
    expect(entryFromStream(tooBig, 'openai')).toBeUndefined();
    expect(tooBig.completion().choices).toHaveLength(1); // still assembled, e.g. for metrics
    const hugeEvent = new SseRecorder('chat.completions', { maxEventBytes: 200 });
    const oversized = Buffer.from(openAiChat.replace('How can I help?', 'x'.repeat(500)));
    for (let i = 0; i < oversized.length; i += 50) hugeEvent.push(oversized.subarray(i, i + 50)); // as a socket delivers it
    hugeEvent.end();
    expect(entryFromStream(hugeEvent, 'openai')).toBeUndefined();
  });

  it('keeps Groq usage (x_groq) inside the stored stream', () => {
    const entry = entryFromStream(record(groqChat), 'groq') as CacheEntry;
    expect(entry.usage).toEqual(groqUsage);
    expect(replayStoredSse(entry, { includeUsage: false }).toString()).toBe(groqChat);
  });
});
