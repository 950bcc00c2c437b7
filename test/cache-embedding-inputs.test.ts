/**
 * The pure parts of embeddings cached per input: which requests are batches, each input's share
 * of a batch's billed tokens, a stored vector found in its entry's text without parsing it (as
 * the provider laid it out, pretty-printed or not), and the answers written from vectors.
 */
import { describe, expect, it } from 'vitest';
import {
  batchAnswer,
  batchInputsOf,
  MAX_BATCH_INPUTS,
  parseEmbeddingAnswer,
  singleInputAnswer,
  storedVectorOf,
  tokenShares,
} from '../src/cache/embedding-inputs.js';

describe('batchInputsOf', () => {
  it('takes arrays of texts or of token arrays; a text or one token array is a single input', () => {
    expect(batchInputsOf(['a', 'b'])).toEqual(['a', 'b']);
    expect(batchInputsOf(['only'])).toEqual(['only']);
    expect(batchInputsOf([[1, 2], [3]])).toEqual([[1, 2], [3]]);
    expect(batchInputsOf('text')).toBeUndefined();
    expect(batchInputsOf([1, 2, 3])).toBeUndefined();
  });

  it('leaves what the provider must judge to the provider: empty, mixed, non-integer, too many', () => {
    expect(batchInputsOf([])).toBeUndefined();
    expect(batchInputsOf(['a', 1])).toBeUndefined();
    expect(batchInputsOf([[1, 2.5]])).toBeUndefined();
    expect(batchInputsOf([[]])).toBeUndefined();
    expect(batchInputsOf(['a', null])).toBeUndefined();
    expect(batchInputsOf(Array.from({ length: MAX_BATCH_INPUTS + 1 }, () => 'x'))).toBeUndefined();
  });
});

describe('tokenShares', () => {
  const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);

  it('splits the billed total proportionally to length, adding up to it exactly', () => {
    expect(tokenShares(['aaaa', 'aaaa'], 6)).toEqual([3, 3]);
    expect(tokenShares(['a'.repeat(30), 'a'.repeat(10)], 8)).toEqual([6, 2]);
    const shares = tokenShares(['one', 'three', 'seventeen', 'x'], 23);
    expect(sum(shares)).toBe(23);
    expect(shares.every((share) => share >= 0)).toBe(true);
  });

  it('is exact for token arrays, whose lengths are their tokens', () => {
    expect(tokenShares([[1, 2, 3], [4], [5, 6]], 6)).toEqual([3, 1, 2]);
  });

  it('with nothing billed, nothing is shared', () => {
    expect(tokenShares(['a', 'b'], 0)).toEqual([0, 0]);
  });
});

describe('storedVectorOf', () => {
  const floats = [0.0123, -0.5, 1e-7, 3];

  it('finds the vector of an answer written by the gateway, floats or base64', () => {
    expect(JSON.parse(storedVectorOf(singleInputAnswer(JSON.stringify(floats), 'm', 3))!)).toEqual(floats);
    expect(storedVectorOf(singleInputAnswer('"AACAPwAAAEA="', 'm', 3))).toBe('"AACAPwAAAEA="');
  });

  it("finds it in a provider's pretty-printed answer, whatever the keys' order", () => {
    const pretty = Buffer.from(
      JSON.stringify(
        {
          object: 'list',
          data: [{ embedding: floats, index: 0, object: 'embedding' }],
          model: 'text-embedding-3-small',
          usage: { prompt_tokens: 2, total_tokens: 2 },
        },
        null,
        2,
      ),
    );
    expect(JSON.parse(storedVectorOf(pretty)!)).toEqual(floats);
  });

  it('falls back to parsing when the text is not plainly one vector, and refuses what is not one answer', () => {
    const nested = Buffer.from(JSON.stringify({ data: [{ index: 0, embedding: floats }], extra: { embedding: 'elsewhere' } }));
    expect(storedVectorOf(nested)).toBe(JSON.stringify(floats));
    const two = Buffer.from(
      JSON.stringify({
        data: [
          { index: 0, embedding: [1] },
          { index: 1, embedding: [2] },
        ],
      }),
    );
    expect(storedVectorOf(two)).toBeUndefined();
    expect(storedVectorOf(Buffer.from('not json'))).toBeUndefined();
  });
});

describe('parseEmbeddingAnswer and the answers written from vectors', () => {
  it('orders the vectors by index and checks there is exactly one per input', () => {
    const answer = parseEmbeddingAnswer(
      JSON.stringify({
        data: [
          { index: 1, embedding: [2] },
          { index: 0, embedding: [1] },
        ],
        model: 'm',
        usage: { prompt_tokens: 4, total_tokens: 4 },
      }),
      2,
    );
    expect(answer).toEqual({ vectors: ['[1]', '[2]'], model: 'm', usage: { prompt_tokens: 4, total_tokens: 4 } });
    expect(parseEmbeddingAnswer(JSON.stringify({ data: [{ index: 0, embedding: [1] }] }), 2)).toBeUndefined();
    expect(
      parseEmbeddingAnswer(
        JSON.stringify({
          data: [
            { index: 0, embedding: [1] },
            { index: 0, embedding: [2] },
          ],
        }),
        2,
      ),
    ).toBeUndefined();
    expect(parseEmbeddingAnswer(JSON.stringify({ data: [{ index: 0 }] }), 1)).toBeUndefined();
  });

  it("writes OpenAI's shape, numbered in order, with the usage billed", () => {
    expect(JSON.parse(batchAnswer(['[1,2]', '"AAAA"'], 'text-embedding-3-small', 0).toString())).toEqual({
      object: 'list',
      data: [
        { object: 'embedding', index: 0, embedding: [1, 2] },
        { object: 'embedding', index: 1, embedding: 'AAAA' },
      ],
      model: 'text-embedding-3-small',
      usage: { prompt_tokens: 0, total_tokens: 0 },
    });
  });
});
