/**
 * End to end with the real Open WebUI (PyPI `open-webui`, the version scripts/install-open-webui.sh
 * pins) in front of the gateway and the fake providers, driven through Open WebUI's own HTTP API
 * as its web page drives it: sign-up (the first user is the admin), the model list (both
 * providers through the gateway), a chat on each provider (stream and JSON), the repeat answered
 * from the cache with no provider call, a regeneration answered fresh while its background tasks
 * (title, tags, follow-ups) come from the cache, a file embedded through the gateway and
 * re-embedded from the cache (an edited copy costing its changed chunks only), a provider's error
 * shown with its message; then the connection switched to the Responses API as the admin page
 * does, and chats, their repeats and a regeneration's tasks through /v1/responses. It prints what
 * it checked. Never skipped: without the install it fails.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeUpstream, type FakeUpstream, type RecordedRequest } from './helpers/fake-upstream.js';
import { startGateway, TEST_CLIENT_KEY, type RunningGateway } from './helpers/gateway.js';
import { api, startOpenWebUi, type OpenWebUi } from './helpers/open-webui.js';

const OPENAI_MODEL = 'gpt-4o-mini';
const GROQ_MODEL = 'llama-3.1-8b-instant';
/** Open WebUI embeds a file in batches of this many chunks. */
const BATCH_SIZE = 4;

let fake: FakeUpstream;
let gateway: RunningGateway;
let owui: OpenWebUi;
let token = '';
/** The X-OpenWebUI-Chat-Id of every request the gateway received, in order. */
const chatIdsReceived: Array<{ url: string; chatId: string | undefined }> = [];
const checked: string[] = [];

function report(line: string): void {
  checked.push(line);
  console.log(`[open-webui e2e] ${line}`);
}

// The fake records Groq's calls under its layout (/openai/v1/…).
const chatCalls = (): RecordedRequest[] => fake.requests.filter((r) => r.path.endsWith('/v1/chat/completions'));
const embeddingCalls = (): RecordedRequest[] => fake.requests.filter((r) => r.path === '/v1/embeddings');
const embeddedInputs = (calls: RecordedRequest[]): string[] => calls.flatMap((call) => call.json?.input as string[]);

interface GatewayLine {
  msg?: string;
  route?: string;
  cache?: string;
  status?: number;
  model?: string;
}

/** The gateway's request lines written since `from` (an index into its log). */
function gatewayLines(from: number): GatewayLine[] {
  return gateway.logs
    .slice(from)
    .map((text) => JSON.parse(text) as GatewayLine)
    .filter((line) => line.msg === 'request' && line.route !== '/v1/models');
}

/** A chat turn as the web page sends it to /api/chat/completions (a temporary chat: the answer comes back on the request). */
function chatTurn(model: string, chatId: string, messages: Array<{ role: string; content: string }>, stream: boolean): Record<string, unknown> {
  return { model, messages, stream, chat_id: chatId, params: {}, features: {} };
}

/** The text of an answer Open WebUI returned: its SSE deltas, or its JSON message. */
function answerText(text: string, stream: boolean): string {
  if (!stream) return (JSON.parse(text) as { choices: Array<{ message: { content: string } }> }).choices[0]!.message.content;
  let content = '';
  for (const line of text.split('\n')) {
    if (!line.startsWith('data: ') || line === 'data: [DONE]') continue;
    const chunk = JSON.parse(line.slice(6)) as { choices?: Array<{ delta?: { content?: string } }> };
    content += chunk.choices?.[0]?.delta?.content ?? '';
  }
  return content;
}

async function until(check: () => Promise<boolean> | boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

describe('the real Open WebUI in front of the gateway', () => {
  beforeAll(async () => {
    fake = await startFakeUpstream();
    gateway = await startGateway(fake, { GATEWAY_API_KEYS: TEST_CLIENT_KEY, LOG_LEVEL: 'info' });
    gateway.app.server.prependListener('request', (request: IncomingMessage) => {
      const chatId = request.headers['x-openwebui-chat-id'];
      chatIdsReceived.push({ url: request.url ?? '', chatId: Array.isArray(chatId) ? chatId[0] : chatId });
    });
    const started = Date.now();
    owui = await startOpenWebUi({
      gatewayBaseUrl: gateway.baseURL,
      gatewayKey: TEST_CLIENT_KEY,
      // Small chunks, embedded four at a time, so a short document makes several batches.
      env: { RAG_EMBEDDING_BATCH_SIZE: String(BATCH_SIZE), CHUNK_SIZE: '200', CHUNK_OVERLAP: '0' },
    });
    report(`Open WebUI ${owui.version} started offline in ${Math.round((Date.now() - started) / 1000)} s, pointed at the gateway`);
  }, 300_000);

  afterAll(async () => {
    await owui?.close();
    gateway?.app.server.closeAllConnections();
    await gateway?.close();
    await fake?.close();
    console.log(`[open-webui e2e] checked:\n  ${checked.join('\n  ')}`);
  }, 60_000);

  it('signs up its first user, who is the admin', async () => {
    const signup = await api(owui, 'POST', '/api/v1/auths/signup', undefined, { name: 'Admin', email: 'admin@example.com', password: 'fake-password-e2e' });
    expect(signup.status, signup.text).toBe(200);
    const account = signup.json as { token: string; role: string };
    expect(account.role).toBe('admin');
    token = account.token;
    report('sign-up: the first user is the admin');
  });

  it('lists the models of both providers, fetched through the gateway', async () => {
    const models = await api(owui, 'GET', '/api/models', token);
    expect(models.status, models.text).toBe(200);
    const ids = (models.json as { data: Array<{ id: string }> }).data.map((model) => model.id);
    expect(ids).toEqual(expect.arrayContaining([OPENAI_MODEL, GROQ_MODEL]));
    expect(fake.requests.some((r) => r.path === '/v1/models' && r.flavour === 'openai')).toBe(true);
    expect(fake.requests.some((r) => r.path === '/openai/v1/models' && r.flavour === 'groq')).toBe(true);
    report(`model list: ${ids.length} models, OpenAI's and Groq's (${OPENAI_MODEL}, ${GROQ_MODEL} among them)`);
  });

  const question = `How do I keep sourdough starter alive? ${randomUUID()}`;
  const firstChat = `local:${randomUUID()}`;
  let firstAnswer = '';

  it('chats on each provider, streamed and as JSON; the same questions from another chat are answered from the cache', async () => {
    for (const [model, stream] of [
      [OPENAI_MODEL, true],
      [OPENAI_MODEL, false],
      [GROQ_MODEL, true],
      [GROQ_MODEL, false],
    ] as const) {
      const from = gateway.logs.length;
      const calls = chatCalls().length;
      const first = model === OPENAI_MODEL && stream;
      const asked = first ? question : `${question} (${model}, ${stream ? 'stream' : 'JSON'})`;
      const turn = chatTurn(model, first ? firstChat : `local:${randomUUID()}`, [{ role: 'user', content: asked }], stream);
      const answer = await api(owui, 'POST', '/api/chat/completions', token, turn);
      expect(answer.status, answer.text).toBe(200);
      const text = answerText(answer.text, stream);
      expect(text).toContain(`Echo: ${asked}`);
      if (first) firstAnswer = text;
      expect(chatCalls().length).toBe(calls + 1);
      expect(chatCalls().at(-1)?.flavour).toBe(model === OPENAI_MODEL ? 'openai' : 'groq');
      expect(chatCalls().at(-1)?.json?.stream === true).toBe(stream);
      expect(gatewayLines(from).map((line) => line.cache)).toEqual(['MISS']);

      const again = await api(owui, 'POST', '/api/chat/completions', token, { ...turn, chat_id: `local:${randomUUID()}` });
      expect(again.status, again.text).toBe(200);
      expect(answerText(again.text, stream)).toBe(text);
      expect(chatCalls().length).toBe(calls + 1);
      expect(gatewayLines(from).map((line) => line.cache)).toEqual(['MISS', 'HIT']);
      report(`chat on ${model} (${stream ? 'stream' : 'JSON'}): answered through the gateway; asked again from another chat: HIT, no provider call`);
    }
  }, 60_000);

  it('a regeneration is answered fresh; the title, tags and follow-ups re-run after it come from the cache', async () => {
    const history = [
      { role: 'user', content: question },
      { role: 'assistant', content: firstAnswer },
    ];
    const runTasks = async (): Promise<void> => {
      for (const task of ['title', 'tags', 'follow_up']) {
        const answer = await api(owui, 'POST', `/api/v1/tasks/${task}/completions`, token, { model: OPENAI_MODEL, messages: history, chat_id: firstChat });
        expect(answer.status, `${task}: ${answer.text}`).toBe(200);
      }
    };
    let from = gateway.logs.length;
    const received = chatIdsReceived.length;
    await runTasks();
    const firstTasks = gatewayLines(from).map((line) => line.cache);
    expect(firstTasks).toEqual(['MISS', 'MISS', 'MISS']);
    // The tasks came with the chat's id (Open WebUI's forwarded user info headers): without the
    // task rule their repeats would be regenerations.
    expect(chatIdsReceived.slice(received).map((r) => r.chatId)).toEqual([firstChat, firstChat, firstChat]);
    const taskBody = chatCalls().at(-3)?.json as { messages: Array<{ content: string }> };
    expect(taskBody.messages.at(-1)?.content.startsWith('### Task:')).toBe(true);
    // Open WebUI keeps the task's name (its `metadata`) to itself: the prompt is all the gateway sees.
    expect(Object.keys(taskBody).sort()).not.toContain('metadata');
    report(`a title task reaches the gateway as ${JSON.stringify(Object.keys(taskBody).sort())}, one user message starting "### Task:"`);

    from = gateway.logs.length;
    const calls = chatCalls().length;
    const regenerated = await api(owui, 'POST', '/api/chat/completions', token, chatTurn(OPENAI_MODEL, firstChat, [{ role: 'user', content: question }], true));
    expect(regenerated.status, regenerated.text).toBe(200);
    expect(answerText(regenerated.text, true)).toBe(firstAnswer);
    await runTasks();
    expect(gatewayLines(from).map((line) => line.cache)).toEqual(['BYPASS', 'HIT', 'HIT', 'HIT']);
    expect(chatCalls().length).toBe(calls + 1);
    report('regeneration: the answer BYPASS (one provider call); its title, tags and follow-ups HIT (none)');
  }, 60_000);

  it('embeds an uploaded file through the gateway; an edited copy costs only its changed chunks, the same file nothing', async () => {
    const paragraphs = Array.from(
      { length: 10 },
      (_, i) => `Section ${i + 1} of the kitchen handbook ${randomUUID()}: keep the starter at room temperature and feed it flour and water every day.`,
    );
    const upload = async (name: string, text: string): Promise<{ id: string; status: string }> => {
      const form = new FormData();
      form.append('file', new Blob([text], { type: 'text/plain' }), name);
      const answer = await api(owui, 'POST', '/api/v1/files/?process=true&process_in_background=false', token, form);
      expect(answer.status, answer.text).toBe(200);
      const file = answer.json as { id: string; data?: { status?: string } };
      let status = file.data?.status ?? 'pending';
      await until(async () => {
        status = ((await api(owui, 'GET', `/api/v1/files/${file.id}/process/status`, token)).json as { status: string }).status;
        return status === 'completed' || status === 'failed';
      }, 60_000);
      return { id: file.id, status };
    };

    let calls = embeddingCalls().length;
    let from = gateway.logs.length;
    const first = await upload('handbook.txt', paragraphs.join('\n\n'));
    expect(first.status).toBe('completed');
    const firstInputs = embeddedInputs(embeddingCalls().slice(calls));
    expect(firstInputs.length).toBeGreaterThanOrEqual(5);
    const batches = embeddingCalls().length - calls;
    expect(gatewayLines(from).every((line) => line.route === '/v1/embeddings' && line.cache === 'MISS')).toBe(true);
    report(`file upload: ${firstInputs.length} chunks embedded through the gateway in ${batches} batches`);

    const edited = [...paragraphs];
    edited[6] = `${paragraphs[6]!.slice(0, -1)}, or twice a day when it is warm.`;
    calls = embeddingCalls().length;
    from = gateway.logs.length;
    expect((await upload('handbook-v2.txt', edited.join('\n\n'))).status).toBe('completed');
    const editedInputs = embeddedInputs(embeddingCalls().slice(calls));
    const outcomes = gatewayLines(from).map((line) => line.cache);
    expect(editedInputs.length).toBeGreaterThanOrEqual(1);
    expect(editedInputs.length).toBeLessThanOrEqual(2);
    expect(editedInputs.every((input) => !firstInputs.includes(input))).toBe(true);
    expect(outcomes).toContain('PARTIAL');
    report(`edited copy: ${editedInputs.length} changed chunk(s) of ${firstInputs.length} reached the provider; the gateway answered ${outcomes.join(', ')}`);

    calls = embeddingCalls().length;
    from = gateway.logs.length;
    expect((await upload('handbook-copy.txt', paragraphs.join('\n\n'))).status).toBe('completed');
    expect(embeddingCalls().length).toBe(calls);
    const copyOutcomes = gatewayLines(from).map((line) => line.cache);
    expect(copyOutcomes.every((cache) => cache === 'HIT')).toBe(true);
    report(`the same file again: ${copyOutcomes.length} embedding requests, all HIT, no provider call`);
  }, 120_000);

  it("shows a provider's error with its message", async () => {
    const message = 'The fake provider refuses this prompt for the end-to-end test';
    fake.queue.push({ status: 400, body: { error: { message, type: 'invalid_request_error', code: 'content_policy_violation' } } });
    const answer = await api(
      owui,
      'POST',
      '/api/chat/completions',
      token,
      chatTurn(OPENAI_MODEL, `local:${randomUUID()}`, [{ role: 'user', content: `refuse ${randomUUID()}` }], false),
    );
    expect(answer.status).toBeGreaterThanOrEqual(400);
    expect(answer.text).toContain(message);
    report(`a provider's 400: Open WebUI answered ${answer.status} with the provider's message`);
  });

  it('with the connection type set to Responses: chats go to /v1/responses and are cached the same way, a regeneration spares its tasks', async () => {
    // What the admin page's Connections dialog saves when the type is switched to "Responses".
    const current = (await api(owui, 'GET', '/openai/config', token)).json as { OPENAI_API_CONFIGS: Record<string, Record<string, unknown>> };
    const configs = { ...current.OPENAI_API_CONFIGS, 0: { ...current.OPENAI_API_CONFIGS['0'], api_type: 'responses' } };
    const saved = await api(owui, 'POST', '/openai/config/update', token, { ...current, OPENAI_API_CONFIGS: configs });
    expect(saved.status, saved.text).toBe(200);
    const responsesCalls = (): RecordedRequest[] => fake.requests.filter((r) => r.path === '/v1/responses');

    const chatId = `local:${randomUUID()}`;
    let answered = '';
    for (const stream of [true, false]) {
      const asked = `What flour suits a starter? ${randomUUID()}`;
      const from = gateway.logs.length;
      const calls = responsesCalls().length;
      const turn = chatTurn(OPENAI_MODEL, stream ? chatId : `local:${randomUUID()}`, [{ role: 'user', content: asked }], stream);
      const answer = await api(owui, 'POST', '/api/chat/completions', token, turn);
      expect(answer.status, answer.text).toBe(200);
      expect(answer.text).toContain(asked);
      expect(responsesCalls().length).toBe(calls + 1);
      const again = await api(owui, 'POST', '/api/chat/completions', token, { ...turn, chat_id: `local:${randomUUID()}` });
      expect(again.status, again.text).toBe(200);
      expect(again.text).toContain(asked);
      expect(responsesCalls().length).toBe(calls + 1);
      expect(gatewayLines(from).map((line) => `${line.route} ${line.cache}`)).toEqual(['/v1/responses MISS', '/v1/responses HIT']);
      if (stream) answered = asked;
      report(`Responses connection, chat (${stream ? 'stream' : 'JSON'}): /v1/responses MISS, the same question from another chat HIT, no provider call`);
    }

    const history = [
      { role: 'user', content: answered },
      { role: 'assistant', content: `Echo: ${answered}` },
    ];
    const runTasks = async (): Promise<string[]> => {
      const from = gateway.logs.length;
      for (const task of ['title', 'tags', 'follow_up']) {
        const answer = await api(owui, 'POST', `/api/v1/tasks/${task}/completions`, token, { model: OPENAI_MODEL, messages: history, chat_id: chatId });
        expect(answer.status, `${task}: ${answer.text}`).toBe(200);
      }
      return gatewayLines(from).map((line) => `${line.route} ${line.cache}`);
    };
    expect(await runTasks()).toEqual(['/v1/responses MISS', '/v1/responses MISS', '/v1/responses MISS']);
    const task = responsesCalls().at(-1)?.json as { input: Array<{ role: string; content: Array<{ type: string; text: string }> }> };
    expect(task.input.at(-1)?.content[0]?.text.startsWith('### Task:')).toBe(true);
    const from = gateway.logs.length;
    const calls = responsesCalls().length;
    const regenerated = await api(owui, 'POST', '/api/chat/completions', token, chatTurn(OPENAI_MODEL, chatId, [{ role: 'user', content: answered }], true));
    expect(regenerated.status, regenerated.text).toBe(200);
    expect(gatewayLines(from).map((line) => `${line.route} ${line.cache}`)).toEqual(['/v1/responses BYPASS']);
    expect(await runTasks()).toEqual(['/v1/responses HIT', '/v1/responses HIT', '/v1/responses HIT']);
    expect(responsesCalls().length).toBe(calls + 1);
    report('Responses connection, regeneration: the answer BYPASS (one provider call); its title, tags and follow-ups (input items) HIT (none)');
  }, 60_000);
});
