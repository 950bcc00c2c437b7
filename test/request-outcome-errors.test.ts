/**
 * Every error the gateway writes on a cached route is in its request's log line (`error`), not
 * only those a module remembered to note beside writing it: an embeddings batch whose new inputs
 * got an answer that cannot be split among them is a 502 upstream_bad_response, and its line says
 * so, as a refusal's or a failed upstream call's does.
 */
import { describe, expect, it } from 'vitest';
import { BACKENDS, post, unique, until, useGateway } from './helpers/cache-e2e.js';

const MODEL = 'text-embedding-3-small';

describe.each(BACKENDS)("an error the gateway writes is in the request's log line (%s)", (backend) => {
  const setup = useGateway(backend, { env: { LOG_LEVEL: 'info' } });

  async function lineOf(requestId: string): Promise<Record<string, unknown>> {
    await until(() => setup.gateway.logs.some((line) => line.includes(requestId) && line.includes('"msg":"request"')), 2_000);
    const text = setup.gateway.logs.find((line) => line.includes(requestId) && line.includes('"msg":"request"'));
    expect(text).toBeDefined();
    return JSON.parse(text!) as Record<string, unknown>;
  }

  it('an embeddings batch answered with vectors that cannot be split: 502 upstream_bad_response, in the answer and the line', async () => {
    const [cached, fresh] = [unique('kept'), unique('odd')];
    await post(setup.gateway, '/v1/embeddings', { model: MODEL, input: [cached] });
    expect(await until(async () => (await post(setup.gateway, '/v1/embeddings', { model: MODEL, input: [cached] })).xCache === 'HIT', 3_000)).toBe(true);
    // Two vectors for the one new input.
    const twoVectors = [0, 1].map((index) => ({ object: 'embedding', index, embedding: [0.5, index] }));
    setup.fake.queue.push({ status: 200, body: { object: 'list', data: twoVectors, model: MODEL, usage: { prompt_tokens: 3, total_tokens: 3 } } });
    const requestId = `odd-batch-${backend}-${Date.now()}`;
    const odd = await post(setup.gateway, '/v1/embeddings', { model: MODEL, input: [cached, fresh] }, { 'x-request-id': requestId });
    expect(odd.status).toBe(502);
    expect(JSON.parse(odd.text)).toMatchObject({ error: { code: 'upstream_bad_response' } });
    expect(await lineOf(requestId)).toMatchObject({ msg: 'request', status: 502, route: '/v1/embeddings', error: 'upstream_bad_response' });
  });
});
