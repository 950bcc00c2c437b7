/**
 * A model id is whatever the client sent, and every cached-route answer names it in
 * X-Gateway-Model. An id HTTP does not allow in a header (a control character, a letter beyond
 * Latin-1, the U+FFFD a broken UTF-8 byte becomes) must still get its answer, with the header
 * percent-encoded, never an exception that leaves the client waiting.
 */
import { describe, expect, it } from 'vitest';
import { BACKENDS, chat, chatBody, unique, untilStored } from './helpers/cache-e2e.js';
import { useGateway } from './helpers/cache-e2e.js';

const ODD_IDS = ['gpt-4o-\uFFFDmini', 'gpt-4o-mini\u00e9', 'gpt-4o-\u6a21\u578b', 'gpt-4o-tab\tand\u0001ctl'];

describe.each(BACKENDS)('model ids a header cannot carry as they are (%s backend)', (backend) => {
  const setup = useGateway(backend, { upstream: { openaiModels: ['gpt-4o-mini', ...ODD_IDS] } });

  it.each(ODD_IDS)('%j: a miss and a hit, JSON and stream, each answered with the id percent-encoded', async (id) => {
    const body = chatBody(unique(), { model: id });
    const miss = await chat(setup.gateway, body);
    expect(miss.status).toBe(200);
    expect(miss.headers.get('x-gateway-model')).toBe(encodeURIComponent(id));
    const hit = await untilStored(() => chat(setup.gateway, body));
    expect(hit.status).toBe(200);
    expect(hit.headers.get('x-gateway-model')).toBe(encodeURIComponent(id));
    const streamed = await chat(setup.gateway, { ...body, stream: true });
    expect(streamed.xCache).toBe('HIT');
    expect(streamed.headers.get('x-gateway-model')).toBe(encodeURIComponent(id));
    const freshStream = await chat(setup.gateway, { ...chatBody(unique(), { model: id }), stream: true });
    expect(freshStream.xCache).toBe('MISS');
    expect(freshStream.text).toContain('data: [DONE]');
    expect(freshStream.headers.get('x-gateway-model')).toBe(encodeURIComponent(id));
  });

  it('a forced-prefix id the provider does not know: its 404, with the header encoded', async () => {
    const answer = await chat(setup.gateway, chatBody(unique(), { model: 'openai/gpt-4o-\uFFFDnone' }));
    expect(answer.status).toBe(404);
    expect(JSON.parse(answer.text)).toMatchObject({ error: { code: 'model_not_found' } });
    expect(answer.headers.get('x-gateway-model')).toBe(encodeURIComponent('gpt-4o-\uFFFDnone'));
  });

  it('printable ids are named as they are', async () => {
    const answer = await chat(setup.gateway, chatBody(unique(), { model: 'openai/gpt-4o-mini' }));
    expect(answer.status).toBe(200);
    expect(answer.headers.get('x-gateway-model')).toBe('gpt-4o-mini');
  });
});
