/**
 * Light, steady client traffic for fault tests, and the verdict on every answer it got: correct
 * (the fake's answer, whole), a proper error (OpenAI's error shape, or for a stream already under
 * way an SSE error event the openai SDK raises as APIError), or wrong (anything else: a body not in
 * OpenAI's shape, no answer within the bound, a stream cut without an error event, a wrong or
 * truncated answer served as a success). A quarter of the traffic each: JSON and streams through
 * fetch, JSON and streams through the real openai SDK; half the prompts repeat cached ones, half
 * are fresh (each shared by two clients at the same step, so some coalesce).
 */
import { randomUUID } from 'node:crypto';
import OpenAI from 'openai';
import { chatBody, parseStream, streamText, type Chunk } from './cache-e2e.js';
import { answerFor } from './fake-upstream.js';
import { TEST_CLIENT_KEY, type RunningGateway } from './gateway.js';
import { readChatStream } from './sdk-clients.js';

export type Kind = 'json' | 'stream' | 'sdk-json' | 'sdk-stream';
export const KINDS: readonly Kind[] = ['json', 'stream', 'sdk-json', 'sdk-stream'];
export type Verdict = 'correct' | 'proper-error' | 'wrong';

export interface Outcome {
  kind: Kind;
  prompt: string;
  verdict: Verdict;
  /** Why a wrong answer is wrong (or what the error was), for the failure message. */
  detail: string;
  status: number | undefined;
  xCache: string | null;
  startedAt: number;
  ms: number;
}

export interface Tally {
  sent: number;
  correct: number;
  properError: number;
  wrong: number;
  /** X-Cache of the correct answers, e.g. "HIT:12 MISS:3". */
  cache: string;
}

const expectedAnswer = (prompt: string): string => answerFor({ messages: [{ content: prompt }] });

/** `{"error":{"message","type","code"}}` with a string message and type. */
export function isOpenAiError(value: unknown): boolean {
  const error = (value as { error?: unknown } | null)?.error as Record<string, unknown> | undefined;
  return typeof error === 'object' && error !== null && typeof error['message'] === 'string' && typeof error['type'] === 'string' && 'code' in error;
}

function judgeErrorBody(status: number, contentType: string, text: string): [Verdict, string] {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  if (status >= 400 && contentType.startsWith('application/json') && isOpenAiError(json)) return ['proper-error', `${status} ${text.slice(0, 120)}`];
  return ['wrong', `status ${status}, ${contentType || 'no content-type'}: ${JSON.stringify(text.slice(0, 160))}`];
}

function judgeJson(status: number, contentType: string, text: string, expected: string): [Verdict, string] {
  if (status !== 200) return judgeErrorBody(status, contentType, text);
  try {
    const content = (JSON.parse(text) as { choices?: Array<{ message?: { content?: unknown } }> }).choices?.[0]?.message?.content;
    return content === expected ? ['correct', ''] : ['wrong', `200 with content ${JSON.stringify(content)}`];
  } catch {
    return ['wrong', `200 that is not JSON: ${JSON.stringify(text.slice(0, 160))}`];
  }
}

function judgeStream(status: number, contentType: string, text: string, expected: string): [Verdict, string] {
  if (status !== 200) return judgeErrorBody(status, contentType, text);
  if (!contentType.startsWith('text/event-stream')) return ['wrong', `200 stream answered as ${contentType}`];
  let stream: ReturnType<typeof parseStream>;
  try {
    stream = parseStream(text);
  } catch {
    return ['wrong', `unreadable SSE: ${JSON.stringify(text.slice(-160))}`];
  }
  const failure = stream.chunks.find((chunk: Chunk) => 'error' in chunk);
  const delivered = streamText(stream);
  if (stream.done && !failure) return delivered === expected ? ['correct', ''] : ['wrong', `complete stream with content ${JSON.stringify(delivered)}`];
  if (!stream.done && failure === stream.chunks.at(-1) && isOpenAiError(failure) && expected.startsWith(delivered))
    return ['proper-error', `error event ${JSON.stringify(failure)}`];
  return [
    'wrong',
    `stream ended ${stream.done ? 'with [DONE] after an error' : 'without [DONE] and without an error event'}: ${JSON.stringify(text.slice(-160))}`,
  ];
}

/** An SDK failure is proper when the SDK raised an APIError carrying OpenAI's error object (not a connection error). */
function judgeSdkFailure(failure: unknown, delivered: string, expected: string): [Verdict, string] {
  if (
    failure instanceof OpenAI.APIError &&
    !(failure instanceof OpenAI.APIConnectionError) &&
    isOpenAiError({ error: failure.error }) &&
    expected.startsWith(delivered)
  ) {
    return ['proper-error', failure.message];
  }
  return ['wrong', `SDK raised ${failure instanceof Error ? `${failure.constructor.name}: ${failure.message}` : String(failure)}`];
}

/** One request of `kind` for `prompt`, judged; never throws. No answer within `boundMs` is wrong. */
export async function sendJudged(gateway: RunningGateway, sdk: OpenAI, kind: Kind, prompt: string, boundMs: number): Promise<Outcome> {
  const expected = expectedAnswer(prompt);
  const stream = kind === 'stream' || kind === 'sdk-stream';
  const startedAt = performance.now();
  let verdict: [Verdict, string];
  let status: number | undefined;
  let xCache: string | null = null;
  try {
    if (kind === 'json' || kind === 'stream') {
      const response = await fetch(`${gateway.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(chatBody(prompt, stream ? { stream: true } : {})),
        signal: AbortSignal.timeout(boundMs),
      });
      const text = await response.text();
      status = response.status;
      xCache = response.headers.get('x-cache');
      const contentType = response.headers.get('content-type') ?? '';
      verdict = stream ? judgeStream(status, contentType, text, expected) : judgeJson(status, contentType, text, expected);
    } else if (kind === 'sdk-json') {
      const { data, response } = await sdk.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: prompt }] }).withResponse();
      status = response.status;
      xCache = response.headers.get('x-cache');
      const content = data.choices[0]?.message.content;
      verdict = content === expected ? ['correct', ''] : ['wrong', `SDK got content ${JSON.stringify(content)}`];
    } else {
      const { data, response } = await sdk.chat.completions
        .create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: prompt }], stream: true })
        .withResponse();
      status = response.status;
      xCache = response.headers.get('x-cache');
      const { text, failure } = await readChatStream(data);
      if (failure !== undefined) verdict = judgeSdkFailure(failure, text, expected);
      else verdict = text === expected ? ['correct', ''] : ['wrong', `SDK stream ended normally with ${JSON.stringify(text)}`];
    }
  } catch (error) {
    if (kind === 'sdk-json' || kind === 'sdk-stream') {
      status = error instanceof OpenAI.APIError ? error.status : undefined;
      verdict = judgeSdkFailure(error, '', expected);
    } else {
      verdict = ['wrong', `fetch failed: ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`];
    }
  }
  const ms = performance.now() - startedAt;
  if (ms > boundMs) verdict = ['wrong', `answered after ${ms.toFixed(0)} ms (bound ${boundMs} ms): ${verdict[1]}`];
  return { kind, prompt, verdict: verdict[0], detail: verdict[1], status, xCache, startedAt, ms };
}

export interface TrafficOptions {
  /** Prompts already in the cache; every other request repeats one of them. */
  repeated: readonly string[];
  clients: number;
  /** Requests per client at most. */
  perClient: number;
  boundMs: number;
  /** Checked before each request: true stops the client (continuous traffic). */
  stop?: () => boolean;
}

export interface Traffic {
  /** Every judged answer so far, in the order they ended. */
  outcomes: Outcome[];
  done: Promise<Outcome[]>;
}

/** Starts `clients` concurrent clients, each sending one request after another. */
export function startTraffic(gateway: RunningGateway, options: TrafficOptions): Traffic {
  const sdk = new OpenAI({ apiKey: TEST_CLIENT_KEY, baseURL: gateway.baseURL, maxRetries: 0, timeout: options.boundMs });
  const outcomes: Outcome[] = [];
  const fresh = new Map<string, string>();
  const freshPrompt = (step: number, pair: number): string => {
    const id = `${step}-${pair}`;
    let prompt = fresh.get(id);
    if (!prompt) fresh.set(id, (prompt = `fresh ${id} ${randomUUID()}`));
    return prompt;
  };
  const client = async (index: number): Promise<void> => {
    for (let step = 0; step < options.perClient && !options.stop?.(); step++) {
      const kind = KINDS[(index + step) % KINDS.length]!;
      const prompt = step % 2 === 0 ? options.repeated[(index + step / 2) % options.repeated.length]! : freshPrompt(step, index >> 1);
      outcomes.push(await sendJudged(gateway, sdk, kind, prompt, options.boundMs));
    }
  };
  const done = Promise.all(Array.from({ length: options.clients }, (_, index) => client(index))).then(() => outcomes);
  return { outcomes, done };
}

export function tally(outcomes: readonly Outcome[]): Tally {
  const cache: Record<string, number> = {};
  for (const outcome of outcomes) if (outcome.verdict === 'correct') cache[outcome.xCache ?? 'none'] = (cache[outcome.xCache ?? 'none'] ?? 0) + 1;
  return {
    sent: outcomes.length,
    correct: outcomes.filter((o) => o.verdict === 'correct').length,
    properError: outcomes.filter((o) => o.verdict === 'proper-error').length,
    wrong: outcomes.filter((o) => o.verdict === 'wrong').length,
    cache: Object.entries(cache)
      .map(([name, count]) => `${name}:${count}`)
      .join(' '),
  };
}

/** What a wrong answer was, one line each, for an assertion's message. */
export function wrongOnes(outcomes: readonly Outcome[]): string[] {
  return outcomes.filter((o) => o.verdict === 'wrong').map((o) => `${o.kind} "${o.prompt.slice(0, 40)}" (X-Cache ${o.xCache}): ${o.detail}`);
}

/** A fixed-width table of rows of cells, the first row the header. */
export function formatTable(rows: ReadonlyArray<ReadonlyArray<string | number>>): string {
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => String(row[column]).length)));
  const line = (row: ReadonlyArray<string | number>): string =>
    `| ${row.map((cell, column) => (typeof cell === 'number' ? String(cell).padStart(widths[column]!) : cell.padEnd(widths[column]!))).join(' | ')} |`;
  return [line(rows[0]!), `|${widths.map((width) => '-'.repeat(width + 2)).join('|')}|`, ...rows.slice(1).map(line)].join('\n');
}
