/**
 * Cache entries shaped like real ones, for the density test and bench/entry-encoding.ts: chat
 * answers filled as JSON and as OpenAI's per-token stream (short, ~330 tokens, ~4k tokens) and
 * embedding responses (float and base64). Real-looking text, never repeated filler, which would
 * flatter compression; generated from a fixed seed so every run measures the same bytes.
 */
import type { CacheEntry } from '../../src/cache/entry.js';
import { entryFromStream } from '../../src/cache/entry-forms.js';
import { parseSse } from '../../src/openai/sse-parser.js';
import { SseRecorder } from '../../src/openai/stream-recorder.js';

/** A real-looking ~330-token answer (markdown, a list, a code block), not repeated filler. */
export const ANSWER = `Great question! The difference between a process and a thread comes down to what they share.

**Processes** are independent programs in execution. Each process has its own virtual address space, its own file descriptors, and its own copy of global variables. The operating system isolates them from each other, so a crash in one process usually cannot corrupt another. Creating a process (for example with \`fork()\` on Linux) is relatively expensive, because the kernel must set up page tables and copy (or mark copy-on-write) the parent's memory.

**Threads** live inside a process. All threads of a process share the same heap, global variables and open files, but each thread has its own stack and registers. That makes threads cheap to create and fast to communicate with each other — they can simply read and write shared data structures — but it also means you need synchronisation (mutexes, atomics, channels) to avoid race conditions.

A quick rule of thumb:

1. Use **processes** when you want isolation and fault tolerance, e.g. a web server that runs each worker separately.
2. Use **threads** when tasks need to share a lot of data and you can manage the locking, e.g. a parallel image filter.
3. In Node.js, prefer \`worker_threads\` for CPU-bound work and keep I/O on the event loop.

Here is a tiny example in Python:

\`\`\`python
from concurrent.futures import ThreadPoolExecutor

with ThreadPoolExecutor(max_workers=4) as pool:
    results = list(pool.map(len, ["a", "bb", "ccc"]))
print(results)  # [1, 2, 3]
\`\`\`

Let me know if you'd like a deeper dive into scheduling or memory models!`;

export const SHORT_ANSWER = 'Hello! How can I help you today?';

const IDENTITY = { id: 'chatcmpl-BbX2kQ9rTzYw1LmNoPq3RsTuVwXyZ', created: 1_727_000_000, model: 'gpt-4o-mini-2024-07-18' };

function usageOf(completionTokens: number) {
  return {
    prompt_tokens: 25,
    completion_tokens: completionTokens,
    total_tokens: 25 + completionTokens,
    prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
    completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
  };
}

/** The usage of the ~330-token answer. */
export const USAGE = usageOf(331);

/** Roughly how OpenAI's tokenizer cuts text: a word with its leading space, or a run of punctuation. */
function tokensOf(text: string): string[] {
  return text.match(/\s*[\w']+|\s*[^\w\s]+|\s+/g) ?? [];
}

function jsonBody(answer: string, completionTokens: number): Buffer {
  return Buffer.from(
    JSON.stringify({
      ...IDENTITY,
      object: 'chat.completion',
      choices: [{ index: 0, message: { role: 'assistant', content: answer, refusal: null, annotations: [] }, logprobs: null, finish_reason: 'stop' }],
      usage: usageOf(completionTokens),
      service_tier: 'default',
      system_fingerprint: 'fp_0123456789',
    }),
  );
}

/** OpenAI's stream: one token per chunk, `usage: null` and a random `obfuscation` pad on each. */
export function upstreamSse(answer = ANSWER): string {
  const head = { ...IDENTITY, object: 'chat.completion.chunk', service_tier: 'default', system_fingerprint: 'fp_0123456789' };
  const pad = (i: number): string => 'aZ09xQ'.repeat(3).slice(0, (i * 7) % 12);
  const tokens = tokensOf(answer);
  const chunk = (i: number, delta: object, finish: string | null = null): string =>
    `data: ${JSON.stringify({ ...head, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }], usage: null, obfuscation: pad(i) })}\n\n`;
  return [
    chunk(0, { role: 'assistant', content: '', refusal: null }),
    ...tokens.map((t, i) => chunk(i + 1, { content: t })),
    chunk(tokens.length + 1, {}, 'stop'),
    `data: ${JSON.stringify({ ...head, choices: [], usage: usageOf(tokens.length), obfuscation: 'x' })}\n\n`,
    'data: [DONE]\n\n',
  ].join('');
}

/** The same answer as the JSON-filled and the stream-filled entry the gateway stores. */
export function chatEntries(answer = ANSWER): Record<'json' | 'sse', CacheEntry> {
  const recorder = new SseRecorder('chat.completions');
  for (const event of parseSse(upstreamSse(answer))) recorder.add(event);
  const sse = entryFromStream(recorder, 'openai');
  if (!sse) throw new Error('fixture stream did not record');
  const completionTokens = tokensOf(answer).length;
  return {
    json: {
      storedAt: Date.now(),
      form: 'json',
      endpoint: 'chat.completions',
      provider: 'openai',
      model: IDENTITY.model,
      usage: usageOf(completionTokens),
      body: jsonBody(answer, completionTokens),
    },
    sse,
  };
}

/** A deterministic PRNG (mulberry32): the same fixtures on every run and machine. */
function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

const WORDS = `the of and to a in is that for it as with was on be by this are or from at an which but not have
has can will one all their there been more if when also its into other would than only some could time these
two may then first any like new use used such most over through where after well should each data system
process memory thread value function request response server client cache answer model token stream error
file code line test type result state queue event loop handler key store write read call method network
latency throughput user service database query index table row column field record page buffer byte number
string object array list map set node version build deploy config option default limit timeout retry budget
cost price provider upstream gateway proxy route path header body status message content role assistant
system prompt context window size length rate scale load balance replica cluster region zone disk storage
backup snapshot log metric trace span alert dashboard level debug info warn fatal start stop restart update
upgrade migrate schema transaction commit rollback lock mutex atomic channel worker pool task job schedule
priority order sort search filter group join merge split parse render format encode decode compress hash
sign verify secret token permission access policy rule role account team project issue change review
important because however therefore usually often always never sometimes quickly slowly carefully simply
easily directly safely correctly properly efficiently different same similar simple complex small large
fast slow cheap expensive safe secure reliable available consistent durable possible necessary useful
common typical specific general local remote public private internal external single multiple several
example instance case reason question problem solution approach pattern design decision tradeoff choice
make take give keep let put run send receive handle return check ensure avoid prefer consider measure
improve reduce increase allow require support provide include contain create remove replace configure`
  .split(/\s+/)
  .filter(Boolean);

/**
 * A long answer (~4k tokens): paragraphs of words drawn from a Zipf-like distribution, numbered
 * lists and code blocks, as a long technical explanation reads.
 */
export function longAnswer(targetTokens = 4000): string {
  const random = seeded(42);
  const word = (): string => WORDS[Math.floor(WORDS.length * random() ** 2.2)] as string;
  const sentence = (): string => {
    const n = 6 + Math.floor(random() * 18);
    const words = Array.from({ length: n }, word);
    const first = words[0] as string;
    words[0] = first.charAt(0).toUpperCase() + first.slice(1);
    if (n > 12 && random() < 0.5) words[Math.floor(n / 2)] += ',';
    if (random() < 0.15) words[1] = `**${words[1]}**`;
    if (random() < 0.1) words[2] = `\`${words[2]}()\``;
    return `${words.join(' ')}${random() < 0.1 ? '?' : '.'}`;
  };
  const identifier = (): string => `${word()}_${word()}`;
  const parts: string[] = [];
  let tokens = 0;
  while (tokens < targetTokens) {
    const kind = random();
    let part: string;
    if (kind < 0.6) part = Array.from({ length: 3 + Math.floor(random() * 4) }, sentence).join(' ');
    else if (kind < 0.8) part = Array.from({ length: 3 + Math.floor(random() * 3) }, (_, i) => `${i + 1}. ${sentence()}`).join('\n');
    else {
      const lines = Array.from({ length: 4 + Math.floor(random() * 8) }, () => {
        const indent = '    '.repeat(Math.floor(random() * 3));
        return `${indent}${identifier()} = ${identifier()}(${identifier()}, ${Math.floor(random() * 1000)})`;
      });
      part = `\`\`\`python\ndef ${identifier()}(${identifier()}):\n${lines.map((l) => `    ${l}`).join('\n')}\n    return ${identifier()}\n\`\`\``;
    }
    parts.push(part);
    tokens += tokensOf(part).length + 1;
  }
  return parts.join('\n\n');
}

/**
 * An embeddings response for one input: 1536 floats, pretty-printed as OpenAI sends it, or as
 * base64 of little-endian float32 (what the `openai` SDK asks for unless told otherwise).
 */
export function embeddingEntry(format: 'float' | 'base64', dimensions = 1536): CacheEntry {
  const random = seeded(7);
  const gaussian = (): number => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
  const values = Float32Array.from({ length: dimensions }, () => gaussian() / Math.sqrt(dimensions));
  const embedding = format === 'float' ? Array.from(values, (v) => Number(v.toPrecision(10))) : Buffer.from(values.buffer).toString('base64');
  const usage = { prompt_tokens: 9, total_tokens: 9 };
  const body = JSON.stringify({ object: 'list', data: [{ object: 'embedding', index: 0, embedding }], model: 'text-embedding-3-small', usage }, null, 2);
  return { storedAt: Date.now(), form: 'json', endpoint: 'embeddings', provider: 'openai', model: 'text-embedding-3-small', usage, body: Buffer.from(body) };
}

/** Every typical entry, labelled, smallest first. */
export function typicalEntries(): Array<[string, CacheEntry]> {
  const short = chatEntries(SHORT_ANSWER);
  const typical = chatEntries();
  const long = chatEntries(longAnswer());
  return [
    ['short json', short.json],
    ['short sse', short.sse],
    ['chat json', typical.json],
    ['chat sse', typical.sse],
    ['embedding base64', embeddingEntry('base64')],
    ['embedding float', embeddingEntry('float')],
    ['long json', long.json],
    ['long sse', long.sse],
  ];
}
