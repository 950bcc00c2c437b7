/**
 * What the benchmark sends and what its fake upstream answers: request bodies of a realistic
 * size (an Open WebUI chat turn), deterministic answers of a configurable length, and the
 * replayed mixed workload of scenario 9. Shared by the driver and the fake upstream process.
 */

export const CHAT_MODEL = 'gpt-4o-mini';
export const GROQ_MODEL = 'llama-3.1-8b-instant';
export const EMBEDDING_MODEL = 'text-embedding-3-small';

/** A system prompt of the size Open WebUI sends by default, so request parsing and hashing cost what they cost in production. */
const SYSTEM_PROMPT =
  'You are a helpful assistant. Answer concisely and accurately. When you are not sure, say so. ' +
  'Use Markdown for lists and code. Today is a weekday; the user is in Europe and prefers metric units.';

const WORDS = (
  'the of and to in is that for it as with was on be by at this from are or an which but not have ' +
  'cache gateway request answer token stream model latency memory proxy server client upstream redis ' +
  'throughput benchmark percentile connection socket buffer header response body event chunk usage'
).split(' ');

export interface ChatBodyOptions {
  /** Distinguishes requests: the same tag gives the same body (a cache hit), another a miss. */
  tag: string;
  stream?: boolean;
  includeUsage?: boolean;
  model?: string;
}

export function chatBody(options: ChatBodyOptions): Record<string, unknown> {
  return {
    model: options.model ?? CHAT_MODEL,
    messages: [
      { role: 'system', content: SYSTEM_PROMPT },
      { role: 'user', content: `Question ${options.tag}: how does a caching gateway keep its latency low under load?` },
    ],
    temperature: 0,
    ...(options.stream ? { stream: true } : {}),
    ...(options.includeUsage ? { stream_options: { include_usage: true } } : {}),
  };
}

export function embeddingBody(tag: string): Record<string, unknown> {
  return { model: EMBEDDING_MODEL, input: `Embedding input ${tag}: a caching gateway in front of OpenAI and Groq.` };
}

/** A cheap, stable 32-bit hash (FNV-1a): the fake's answers depend on the prompt only. */
export function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash;
}

/** The answer's tokens: words with their leading space, as tokenizers split English. */
export function answerTokens(prompt: string, count: number): string[] {
  let state = fnv1a(prompt) || 1;
  const tokens: string[] = [];
  for (let i = 0; i < count; i++) {
    // xorshift32: deterministic per prompt, different between prompts.
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    const word = WORDS[state % WORDS.length] ?? 'token';
    tokens.push(i === 0 ? word[0]!.toUpperCase() + word.slice(1) : ` ${word}`);
  }
  return tokens;
}

export interface MixedRequest {
  kind: 'chat' | 'stream' | 'embedding';
  body: string;
  /** True when the same request (same cache key) occurred earlier in the trace. */
  repeat: boolean;
}

export interface MixedWorkload {
  requests: MixedRequest[];
  unique: number;
  /** The best hit ratio any cache can reach on this trace: repeats / total. */
  bestHitRatio: number;
}

/**
 * A replayable trace in which `repeatShare` of the requests repeat an earlier one, popular ones more
 * often (a Zipf-like pick over what was seen), with chat (JSON and streamed) and embeddings mixed
 * as an Open WebUI deployment sends them. Deterministic (seeded), so runs compare.
 */
export function mixedWorkload(total: number, repeatShare: number, seed = 42): MixedWorkload {
  let state = seed >>> 0 || 1;
  const random = (): number => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state / 0x1_0000_0000;
  };
  const seen: Array<{ kind: MixedRequest['kind']; tag: string }> = [];
  const requests: MixedRequest[] = [];
  for (let i = 0; i < total; i++) {
    let pick: { kind: MixedRequest['kind']; tag: string };
    let repeat = false;
    if (seen.length > 0 && random() < repeatShare) {
      // Skewed towards the first-seen (popular) prompts: index = n * u^2.
      const index = Math.floor(seen.length * random() ** 2);
      pick = seen[index]!;
      repeat = true;
    } else {
      const roll = random();
      pick = { kind: roll < 0.6 ? 'chat' : roll < 0.9 ? 'stream' : 'embedding', tag: `mixed-${seed}-${i}` };
      seen.push(pick);
    }
    const body = pick.kind === 'embedding' ? embeddingBody(pick.tag) : chatBody({ tag: pick.tag, stream: pick.kind === 'stream' });
    requests.push({ kind: pick.kind, body: JSON.stringify(body), repeat });
  }
  const repeats = requests.filter((request) => request.repeat).length;
  return { requests, unique: total - repeats, bestHitRatio: total === 0 ? 0 : repeats / total };
}
