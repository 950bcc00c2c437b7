/**
 * Continuing a stream its clients got the start of from a call that died, with a new call's
 * stream (src/pipeline/stream-resume.ts): on chunks shaped as OpenAI and Groq send them, the
 * client's whole stream (what it had, then what is relayed) reads as one answer through the
 * gateway's own recorder, with one id throughout (tool calls under the call ids the client saw);
 * a new answer that differs is refused.
 * The Responses API's stream: stream-resume-responses.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { type ChatChoice, isUsageOnlyChunk } from '../src/openai/completion-types.js';
import { parseSse, SSE_DONE } from '../src/openai/sse-parser.js';
import { SseRecorder } from '../src/openai/stream-recorder.js';
import type { StreamEvent } from '../src/pipeline/flight.js';
import { StreamResume } from '../src/pipeline/stream-resume.js';
import { resumeWith } from './helpers/stream-resume.js';

type Chunk = Record<string, unknown>;

/** A chat stream as OpenAI sends it: role, the text in `pieces`, finish, and the usage-only chunk. */
function openaiChat(id: string, created: number, pieces: string[]): Chunk[] {
  const base = { id, object: 'chat.completion.chunk', created, model: 'gpt-4o-mini-2024-07-18', service_tier: 'default', system_fingerprint: 'fp_560af6e559' };
  return [
    { ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '', refusal: null }, logprobs: null, finish_reason: null }], usage: null },
    ...pieces.map((content) => ({ ...base, choices: [{ index: 0, delta: { content }, logprobs: null, finish_reason: null }], usage: null })),
    { ...base, choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: 'stop' }], usage: null },
    { ...base, choices: [], usage: { prompt_tokens: 9, completion_tokens: 4, total_tokens: 13 } },
  ];
}

/** A chat stream as Groq sends it: x_groq on the first and last chunk, the usage in the last one's x_groq. */
function groqChat(id: string, created: number, pieces: string[]): Chunk[] {
  const base = { id, object: 'chat.completion.chunk', created, model: 'llama-3.1-8b-instant', system_fingerprint: 'fp_a4265e44d5' };
  return [
    { ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }], x_groq: { id: `req_${id}` } },
    ...pieces.map((content) => ({ ...base, choices: [{ index: 0, delta: { content }, logprobs: null, finish_reason: null }] })),
    {
      ...base,
      choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: 'stop' }],
      x_groq: { id: `req_${id}`, usage: { prompt_tokens: 40, completion_tokens: 4, total_tokens: 44 } },
    },
  ];
}

/**
 * A chat stream of tool calls as OpenAI sends them: role, then per call its announcement (id,
 * type, name, empty arguments) and its arguments in `pieces`, the finish and the usage chunk.
 * Call `i` has the id `${callId}${i}` when there are several, `callId` when there is one.
 */
function openaiTools(id: string, created: number, callId: string, calls: Array<[name: string, pieces: string[]]>): Chunk[] {
  const base = { id, object: 'chat.completion.chunk', created, model: 'gpt-4o-mini-2024-07-18', service_tier: 'default', system_fingerprint: 'fp_560af6e559' };
  const delta = (fields: Chunk): Chunk => ({ ...base, choices: [{ index: 0, delta: fields, logprobs: null, finish_reason: null }], usage: null });
  return [
    delta({ role: 'assistant', content: null, refusal: null }),
    ...calls.flatMap(([name, pieces], index) => [
      delta({ tool_calls: [{ index, id: calls.length > 1 ? `${callId}${index}` : callId, type: 'function', function: { name, arguments: '' } }] }),
      ...pieces.map((piece) => delta({ tool_calls: [{ index, function: { arguments: piece } }] })),
    ]),
    { ...base, choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: 'tool_calls' }], usage: null },
    { ...base, choices: [], usage: { prompt_tokens: 60, completion_tokens: 12, total_tokens: 72 } },
  ];
}

/** A legacy text completion stream (`/v1/completions`). */
function textCompletion(id: string, created: number, pieces: string[]): Chunk[] {
  const base = { id, object: 'text_completion', created, model: 'gpt-3.5-turbo-instruct' };
  return [
    ...pieces.map((text) => ({ ...base, choices: [{ text, index: 0, logprobs: null, finish_reason: null }] })),
    { ...base, choices: [{ text: '', index: 0, logprobs: null, finish_reason: 'length' }] },
  ];
}

/** The chunks as the flight relays them: framed, usage-only ones marked. */
function events(chunks: Chunk[]): StreamEvent[] {
  return chunks.map((chunk) => ({ data: `data: ${JSON.stringify(chunk)}\n\n`, usageOnly: isUsageOnlyChunk(chunk) }));
}

/** The client's stream read by the gateway's own recorder, as if it were an upstream's. */
function asRecorded(endpoint: 'chat.completions' | 'completions', client: StreamEvent[]) {
  const recorder = new SseRecorder(endpoint);
  recorder.push(client.map((event) => event.data).join('') + SSE_DONE);
  return recorder;
}

function chunksOf(client: StreamEvent[]): Chunk[] {
  return client.flatMap((event) => parseSse(event.data)).map((event) => event.chunk!);
}

const ANSWER = ['Hello', ', brave', ' new', ' world', '!'];

describe('resuming a stream from a new call', () => {
  it('OpenAI chat: the new call, split differently, is relayed from where the client stopped, with the sent stream ids', () => {
    const first = events(openaiChat('chatcmpl-AAA', 1_733_000_000, ANSWER));
    const sent = first.slice(0, 3); // role, "Hello", ", brave"
    const next = events(openaiChat('chatcmpl-BBB', 1_733_000_042, ['Hello, br', 'ave new wor', 'ld!']));
    const { client, diverged, covered } = resumeWith('chat.completions', sent, next);
    expect(diverged).toBeUndefined();
    expect(covered).toBe(true);
    const recorder = asRecorded('chat.completions', client);
    expect(recorder.completion().choices[0]).toMatchObject({ message: { role: 'assistant', content: 'Hello, brave new world!' }, finish_reason: 'stop' });
    expect(recorder.usage).toEqual({ prompt_tokens: 9, completion_tokens: 4, total_tokens: 13 });
    expect(recorder.recorded()).toBeDefined();
    const chunks = chunksOf(client);
    // The straddling chunk carries only the unsent rest; one role, one finish, one usage chunk.
    expect(chunks.slice(3).map((chunk) => (chunk.choices as Array<{ delta: { content?: string } }>)[0]?.delta.content)).toEqual([
      ' new wor',
      'ld!',
      undefined,
      undefined,
    ]);
    expect(chunks.filter((chunk) => (chunk.choices as Array<{ delta: { role?: string } }>)[0]?.delta.role)).toHaveLength(1);
    for (const chunk of chunks)
      expect([chunk.id, chunk.created, chunk.model, chunk.system_fingerprint]).toEqual([
        'chatcmpl-AAA',
        1_733_000_000,
        'gpt-4o-mini-2024-07-18',
        'fp_560af6e559',
      ]);
  });

  it('Groq chat: the same, x_groq and its usage passed on', () => {
    const sent = events(groqChat('chatcmpl-g1', 1_733_000_000, ANSWER)).slice(0, 4);
    const { client, diverged } = resumeWith('chat.completions', sent, events(groqChat('chatcmpl-g2', 1_733_000_009, ANSWER)));
    expect(diverged).toBeUndefined();
    const recorder = asRecorded('chat.completions', client);
    expect(recorder.completion().choices[0]).toMatchObject({ message: { content: 'Hello, brave new world!' } });
    expect(recorder.usage).toEqual({ prompt_tokens: 40, completion_tokens: 4, total_tokens: 44 });
    expect(new Set(chunksOf(client).map((chunk) => chunk.id))).toEqual(new Set(['chatcmpl-g1']));
    // Groq's request id too: the last chunk (the new call's) says the first call's.
    expect(chunksOf(client).map((chunk) => (chunk.x_groq as { id?: string } | undefined)?.id)).toEqual([
      'req_chatcmpl-g1',
      ...Array(5).fill(undefined),
      'req_chatcmpl-g1',
    ]);
  });

  it('legacy text completions: the text continued exactly', () => {
    const sent = events(textCompletion('cmpl-1', 1_733_000_000, ['Once', ' upon a', ' time'])).slice(0, 2);
    const { client, diverged } = resumeWith('completions', sent, events(textCompletion('cmpl-2', 1_733_000_001, ['Once up', 'on a time'])));
    expect(diverged).toBeUndefined();
    expect(chunksOf(client).map((chunk) => (chunk.choices as Array<{ text: string }>)[0]!.text)).toEqual(['Once', ' upon a', ' time', '']);
    expect(asRecorded('completions', client).completion().choices[0]).toMatchObject({ text: 'Once upon a time', finish_reason: 'length' });
  });

  it('several choices (n=2) interleaved: each continued from its own sent text', () => {
    const base = { id: 'chatcmpl-n', object: 'chat.completion.chunk', created: 1, model: 'gpt-4o-mini' };
    const delta = (index: number, content: string, finish: string | null = null): Chunk => ({
      ...base,
      choices: [{ index, delta: content ? { content } : {}, logprobs: null, finish_reason: finish }],
    });
    const stream = (id: string): Chunk[] =>
      [delta(0, 'Red '), delta(1, 'Blue '), delta(0, 'apple'), delta(1, 'sky'), delta(0, '', 'stop'), delta(1, '', 'stop')].map((chunk) => ({ ...chunk, id }));
    const sent = events(stream('chatcmpl-n1')).slice(0, 3); // choice 0 has "Red apple", choice 1 "Blue "
    const { client, diverged } = resumeWith('chat.completions', sent, events(stream('chatcmpl-n2')));
    expect(diverged).toBeUndefined();
    const choices = asRecorded('chat.completions', client).completion().choices;
    expect(choices.map((choice) => ('message' in choice ? choice.message.content : ''))).toEqual(['Red apple', 'Blue sky']);
  });

  it('the client had the whole text and the finish: only what it lacks (the usage chunk) is relayed', () => {
    const first = events(openaiChat('chatcmpl-A', 1, ANSWER));
    const sent = first.slice(0, -1);
    const { client, diverged } = resumeWith('chat.completions', sent, events(openaiChat('chatcmpl-B', 2, ANSWER)));
    expect(diverged).toBeUndefined();
    expect(client).toHaveLength(first.length);
    expect(chunksOf(client).at(-1)).toEqual({ ...chunksOf(first).at(-1) });
  });

  it('a new answer that differs from the sent text is refused before anything of it is relayed', () => {
    const sent = events(openaiChat('chatcmpl-A', 1, ANSWER)).slice(0, 3);
    const { client, diverged } = resumeWith('chat.completions', sent, events(openaiChat('chatcmpl-B', 2, ['Hello, bold', ' new world!'])));
    expect(diverged).toBe('different text');
    expect(client).toEqual(sent);
  });

  it('a new answer shorter than the sent text is refused at its finish, or found short at its end', () => {
    const sent = events(openaiChat('chatcmpl-A', 1, ANSWER)).slice(0, 4);
    const finished = resumeWith('chat.completions', sent, events(openaiChat('chatcmpl-B', 2, ['Hello'])));
    expect(finished.diverged).toBe('a shorter answer');
    const cut = resumeWith('chat.completions', sent, events(openaiChat('chatcmpl-B', 2, ['Hello'])).slice(0, 2));
    expect(cut.diverged).toBeUndefined();
    expect(cut.covered).toBe(false);
    expect(cut.client).toEqual(sent);
  });

  it('more text after a choice the client saw finish is refused', () => {
    const sent = events(openaiChat('chatcmpl-A', 1, ANSWER)).slice(0, -1);
    const { diverged } = resumeWith('chat.completions', sent, events(openaiChat('chatcmpl-B', 2, [...ANSWER, ' And more.'])));
    expect(diverged).toBe('more text after the choice had finished');
  });

  it('tool calls: the new call continues the sent arguments under the first call id, and the client reads one tool call', () => {
    const sent = events(openaiTools('chatcmpl-A', 1, 'call_AAA', [['lookup', ['{"ci', 'ty":']]])).slice(0, 4); // role, announce, 2 pieces
    const next = events(openaiTools('chatcmpl-B', 2, 'call_BBB', [['lookup', ['{"city":"Pa', 'ris"}']]]));
    const { client, diverged, covered } = resumeWith('chat.completions', sent, next);
    expect(diverged).toBeUndefined();
    expect(covered).toBe(true);
    expect(JSON.stringify(chunksOf(client.slice(sent.length)))).not.toContain('call_BBB');
    const recorder = asRecorded('chat.completions', client);
    expect(recorder.completion().choices[0]).toMatchObject({
      message: { role: 'assistant', tool_calls: [{ id: 'call_AAA', type: 'function', function: { name: 'lookup', arguments: '{"city":"Paris"}' } }] },
      finish_reason: 'tool_calls',
    });
    expect(recorder.recorded()).toBeDefined();
  });

  it("parallel tool calls: the one the clients had not seen is the new call's own, relayed once the sent ones are reproduced", () => {
    const calls: Array<[string, string[]]> = [
      ['lookup', ['{"city":', '"Paris"}']],
      ['weather', ['{"day":', '"today"}']],
    ];
    const sent = events(openaiTools('chatcmpl-A', 1, 'call_A', calls)).slice(0, 3); // role, announce 0, first piece
    const { client, diverged } = resumeWith('chat.completions', sent, events(openaiTools('chatcmpl-B', 2, 'call_B', calls)));
    expect(diverged).toBeUndefined();
    const choice = asRecorded('chat.completions', client).completion().choices[0] as ChatChoice;
    const toolCalls = choice.message.tool_calls as Array<{ id: string; function: { name: string; arguments: string } }>;
    expect(toolCalls.map((call) => [call.id, call.function.name, call.function.arguments])).toEqual([
      ['call_A0', 'lookup', '{"city":"Paris"}'],
      ['call_B1', 'weather', '{"day":"today"}'],
    ]);
  });

  it('Groq: a tool call sent whole is not repeated; only the finish and the usage follow', () => {
    const whole = (id: string): Chunk[] => {
      const base = { id, object: 'chat.completion.chunk', created: 1, model: 'llama-3.3-70b-versatile' };
      const call = { index: 0, id: `call_${id}`, type: 'function', function: { name: 'lookup', arguments: '{"city":"Paris"}' } };
      return [
        { ...base, choices: [{ index: 0, delta: { role: 'assistant', content: null }, logprobs: null, finish_reason: null }], x_groq: { id: `req_${id}` } },
        { ...base, choices: [{ index: 0, delta: { tool_calls: [call] }, logprobs: null, finish_reason: null }] },
        {
          ...base,
          choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: 'tool_calls' }],
          x_groq: { id: `req_${id}`, usage: { prompt_tokens: 40, completion_tokens: 9, total_tokens: 49 } },
        },
      ];
    };
    const sent = events(whole('A')).slice(0, 2);
    const { client, diverged } = resumeWith('chat.completions', sent, events(whole('B')));
    expect(diverged).toBeUndefined();
    expect(client).toHaveLength(3);
    expect(chunksOf(client).at(-1)).toMatchObject({ id: 'A', x_groq: { id: 'req_A' }, choices: [{ finish_reason: 'tool_calls' }] });
  });

  it('tool calls refused: other arguments, another tool, or a call made before the sent text is reproduced', () => {
    const sent = events(openaiTools('chatcmpl-A', 1, 'call_A', [['lookup', ['{"city":', '"Paris"}']]])).slice(0, 4);
    const other = resumeWith('chat.completions', sent, events(openaiTools('chatcmpl-B', 2, 'call_B', [['lookup', ['{"city":"Rome"}']]])));
    expect(other.diverged).toBe('different tool arguments');
    const anotherTool = resumeWith('chat.completions', sent, events(openaiTools('chatcmpl-B', 2, 'call_B', [['search', ['{"city":"Paris"}']]])));
    expect(anotherTool.diverged).toBe('another tool');
    expect(anotherTool.client).toEqual(sent);
    const base = { id: 'chatcmpl-t', object: 'chat.completion.chunk', created: 1, model: 'gpt-4o-mini' };
    const toolCall = {
      ...base,
      choices: [
        {
          index: 0,
          delta: { tool_calls: [{ index: 0, id: 'call_1', type: 'function', function: { name: 'f', arguments: '' } }] },
          logprobs: null,
          finish_reason: null,
        },
      ],
    };
    const text = events(openaiChat('chatcmpl-A', 1, ANSWER)).slice(0, 3);
    expect(resumeWith('chat.completions', text, events([openaiChat('chatcmpl-B', 2, [])[0]!, toolCall])).diverged).toBe('a non-text delta where text was sent');
    // Past the sent text, the new call's tool call is its own to make: relayed, under the stream's id.
    const after = resumeWith('chat.completions', text, events([...openaiChat('chatcmpl-B', 2, ['Hello, brave']).slice(0, 2), toolCall]));
    expect(after.diverged).toBeUndefined();
    expect(chunksOf(after.client).at(-1)).toEqual({ ...toolCall, id: 'chatcmpl-A', created: 1, model: 'gpt-4o-mini-2024-07-18' });
  });

  it('logprobs in the sent prefix are not resumable, nor is an embeddings answer', () => {
    const withLogprobs = openaiChat('chatcmpl-l', 1, ['Hi']).map((chunk) => ({
      ...chunk,
      choices: (chunk.choices as Chunk[]).map((choice) => ({ ...choice, logprobs: { content: [{ token: 'Hi', logprob: -0.1 }] } })),
    }));
    expect(StreamResume.after('chat.completions', events(withLogprobs).slice(0, 2))).toBeUndefined();
    expect(StreamResume.after('embeddings', [])).toBeUndefined();
  });

  it('an error event of the new call is passed on as it is', () => {
    const sent = events(openaiChat('chatcmpl-A', 1, ANSWER)).slice(0, 3);
    const error: StreamEvent = { data: 'data: {"error":{"message":"overloaded","type":"server_error"}}\n\n', usageOnly: false };
    const { client } = resumeWith('chat.completions', sent, [error]);
    expect(client.at(-1)).toBe(error);
  });
});
