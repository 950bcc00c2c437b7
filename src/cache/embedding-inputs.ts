/**
 * Embeddings cached per input: the pure parts. A batch request's inputs are each cached under
 * the key of the same request holding only that input, so an input is found whichever batch (or
 * single-input request) embedded it first, and a re-embedded document costs only its new chunks.
 */
import type { Usage } from '../openai/completion-types.js';

/** One embedding input: a text, or one text already tokenised. */
export type EmbeddingInput = string | number[];

/** OpenAI's own limit of inputs per request; a larger batch is cached whole, as any request. */
export const MAX_BATCH_INPUTS = 2048;

/**
 * The inputs of a batch (`input` an array of texts or of token arrays), or undefined for a
 * single input (a text, or one token array) and for anything malformed: those keep the whole
 * request's key, and the provider judges what it cannot read.
 */
export function batchInputsOf(input: unknown): EmbeddingInput[] | undefined {
  if (!Array.isArray(input) || input.length === 0 || input.length > MAX_BATCH_INPUTS) return undefined;
  if (typeof input[0] === 'number') return undefined;
  for (const item of input) {
    if (typeof item === 'string') continue;
    if (!Array.isArray(item) || item.length === 0) return undefined;
    for (const token of item) if (typeof token !== 'number' || !Number.isInteger(token)) return undefined;
  }
  return input as EmbeddingInput[];
}

/** The request as if it held only `input`: its cache key is that input's key. */
export function singleInputBody(body: Record<string, unknown>, input: EmbeddingInput): Record<string, unknown> {
  return { ...body, input };
}

/**
 * Each input's share of a batch's billed tokens. Providers bill a batch as one total; the shares
 * are proportional to each input's length (characters, or tokens for a token array, where the
 * split is exact) and add up to the total exactly (largest remainders), so the tokens a later
 * hit counts as saved are never more than what was billed for them.
 */
export function tokenShares(inputs: readonly EmbeddingInput[], total: number): number[] {
  const sizes = inputs.map((input) => Math.max(1, input.length));
  const sum = sizes.reduce((a, b) => a + b, 0);
  const whole = Math.max(0, Math.round(total));
  const exact = sizes.map((size) => (whole * size) / sum);
  const shares = exact.map(Math.floor);
  let left = whole - shares.reduce((a, b) => a + b, 0);
  const byRemainder = exact.map((value, index) => ({ index, remainder: value - Math.floor(value) })).sort((a, b) => b.remainder - a.remainder);
  for (const { index } of byRemainder) {
    if (left <= 0) break;
    shares[index]! += 1;
    left -= 1;
  }
  return shares;
}

export interface EmbeddingAnswer {
  /** Each input's vector as JSON text (an array of numbers, or a base64 string), by index. */
  vectors: string[];
  model: string | undefined;
  usage: Usage | undefined;
}

/**
 * A provider's embeddings answer, checked against the number of inputs asked: every index from 0
 * to count-1 exactly once. Undefined when it is not such an answer.
 */
export function parseEmbeddingAnswer(json: Buffer | string, count: number): EmbeddingAnswer | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(typeof json === 'string' ? json : json.toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null) return undefined;
  const { data, model, usage } = parsed as { data?: unknown; model?: unknown; usage?: unknown };
  if (!Array.isArray(data) || data.length !== count) return undefined;
  const vectors: Array<string | undefined> = new Array(count);
  for (const item of data) {
    if (typeof item !== 'object' || item === null) return undefined;
    const { index, embedding } = item as { index?: unknown; embedding?: unknown };
    if (typeof index !== 'number' || !Number.isInteger(index) || index < 0 || index >= count || vectors[index] !== undefined) return undefined;
    if (typeof embedding !== 'string' && !Array.isArray(embedding)) return undefined;
    vectors[index] = JSON.stringify(embedding);
  }
  return {
    vectors: vectors as string[],
    model: typeof model === 'string' ? model : undefined,
    usage: typeof usage === 'object' && usage !== null ? (usage as Usage) : undefined,
  };
}

const EMBEDDING_KEY = '"embedding"';

/**
 * The vector of a stored single-input answer, as JSON text, without parsing it: a 1536-float
 * vector costs ~0.5 ms to parse and as much to write again, per input of every batch hit, where
 * finding it in the text costs a few µs. Falls back to parsing when the text is not plainly one
 * answer with one vector (a provider's unusual layout).
 */
export function storedVectorOf(body: Buffer): string | undefined {
  // Latin-1: one character per byte; the vector itself is ASCII, whatever else the text holds.
  const text = body.toString('latin1');
  let found = -1;
  for (let at = text.indexOf(EMBEDDING_KEY); at !== -1; at = text.indexOf(EMBEDDING_KEY, at + 1)) {
    let next = at + EMBEDDING_KEY.length;
    while (isSpace(text.charCodeAt(next))) next++;
    // `"object": "embedding"` is a value; the key is followed by its colon.
    if (text.charCodeAt(next) !== 0x3a) continue;
    if (found !== -1) return parsedVectorOf(body);
    found = next + 1;
  }
  if (found === -1) return parsedVectorOf(body);
  while (isSpace(text.charCodeAt(found))) found++;
  const open = text.charCodeAt(found);
  if (open === 0x5b) {
    const close = text.indexOf(']', found);
    // A vector of numbers: nothing nested in it (its first ']' is its own).
    const vector = close === -1 ? '' : text.slice(found, close + 1);
    if (vector !== '' && vector.indexOf('[', 1) === -1 && !vector.includes('"') && !vector.includes('{')) return vector;
  } else if (open === 0x22) {
    const close = text.indexOf('"', found + 1);
    if (close !== -1 && !text.slice(found + 1, close).includes('\\')) return text.slice(found, close + 1);
  }
  return parsedVectorOf(body);
}

function parsedVectorOf(body: Buffer): string | undefined {
  return parseEmbeddingAnswer(body, 1)?.vectors[0];
}

function isSpace(code: number): boolean {
  return code === 0x20 || code === 0x0a || code === 0x0d || code === 0x09;
}

/** Prompt tokens as the usage gives them (total_tokens when that is all there is). */
export function promptTokensOf(usage: Usage | undefined): number {
  const value = usage?.prompt_tokens ?? usage?.total_tokens;
  return typeof value === 'number' && Number.isFinite(value) && value > 0 ? value : 0;
}

/** An embeddings usage of `tokens` prompt tokens. */
export function embeddingUsage(tokens: number): Usage {
  return { prompt_tokens: tokens, total_tokens: tokens };
}

function usageJson(tokens: number): string {
  return `{"prompt_tokens":${tokens},"total_tokens":${tokens}}`;
}

/** An answer of embeddings from their vectors' JSON text, written as text (the vectors are never re-serialised). */
function answerOf(vectors: readonly string[], model: string, tokens: number): Buffer {
  let data = '';
  for (let index = 0; index < vectors.length; index++) {
    data += `${index === 0 ? '' : ','}{"object":"embedding","index":${index},"embedding":${vectors[index]}}`;
  }
  return Buffer.from(`{"object":"list","data":[${data}],"model":${JSON.stringify(model)},"usage":${usageJson(tokens)}}`);
}

/**
 * The stored answer of one input: what a single-input request for it receives, so a later
 * request for that text alone is an ordinary hit.
 */
export function singleInputAnswer(vector: string, model: string, tokens: number): Buffer {
  return answerOf([vector], model, tokens);
}

/** A batch's answer: the vectors in the request's order, numbered as the request numbered its inputs. */
export function batchAnswer(vectors: readonly string[], model: string, paidTokens: number): Buffer {
  return answerOf(vectors, model, paidTokens);
}
