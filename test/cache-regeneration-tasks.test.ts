/**
 * Regeneration applies to what the user regenerated: after a regeneration Open WebUI re-runs its
 * background tasks (title, tags, follow-ups, queries) from the same chat with byte-identical
 * bodies; those are answered from the cache, and only the regenerated answer goes upstream.
 * Bodies shaped as Open WebUI 0.12 sends them (helpers/openwebui-bodies.ts), both backends, with
 * Open WebUI's user info headers forwarded (the chat id) and without them; custom task markers.
 */
import { describe, expect, it } from 'vitest';
import { isBackgroundTask, taskPromptsFromEnv } from '../src/cache/task-prompts.js';
import { loadConfig } from '../src/config.js';
import { BACKENDS, chat, unique, untilStored, useGateway, type E2eSetup } from './helpers/cache-e2e.js';
import { chatTurnBody, ragChatBody, TASK_NAMES, taskBody, type Turn } from './helpers/openwebui-bodies.js';

const MODEL = 'gpt-4o-mini';
const fromChat = (chatId: string): Record<string, string> => ({ 'x-openwebui-chat-id': chatId, 'x-openwebui-user-id': 'user-1' });

function conversation(): Turn[] {
  return [
    { role: 'system', content: 'You are a helpful assistant.' },
    { role: 'user', content: unique('How do I bake sourdough bread') },
  ];
}

/** The chat's answer, then its tasks, as Open WebUI sends them after each answer; X-Cache of each. */
async function answerAndTasks(setup: E2eSetup, turns: Turn[], headers: Record<string, string>, stream = true): Promise<string[]> {
  const answer = await chat(setup.gateway, chatTurnBody(MODEL, turns, stream), headers);
  expect(answer.status).toBe(200);
  const withAnswer: Turn[] = [...turns, { role: 'assistant', content: 'the answer' }];
  const outcomes = [answer.xCache ?? ''];
  for (const task of TASK_NAMES) {
    const response = await chat(setup.gateway, taskBody(task, MODEL, withAnswer), headers);
    expect(response.status).toBe(200);
    outcomes.push(response.xCache ?? '');
  }
  return outcomes;
}

describe.each(BACKENDS)('regenerations spare the background tasks (%s)', (backend) => {
  const setup = useGateway(backend);

  it('the regenerated answer goes upstream, the tasks re-run after it are answered from the cache', async () => {
    const chatId = unique('chat');
    const turns = conversation();
    expect(await answerAndTasks(setup, turns, fromChat(chatId))).toEqual(['MISS', 'MISS', 'MISS', 'MISS', 'MISS']);
    // The task answers must be readable before the repeat (the store is written after the answer).
    await untilStored(() => chat(setup.gateway, taskBody('queries', MODEL, [...turns, { role: 'assistant', content: 'the answer' }])));
    const calls = setup.fake.completionCalls().length;

    // The user regenerates, twice; the second time the tasks are recalled requests (known by their bytes).
    expect(await answerAndTasks(setup, turns, fromChat(chatId))).toEqual(['BYPASS', 'HIT', 'HIT', 'HIT', 'HIT']);
    expect(await answerAndTasks(setup, turns, fromChat(chatId))).toEqual(['BYPASS', 'HIT', 'HIT', 'HIT', 'HIT']);
    expect(setup.fake.completionCalls().length - calls).toBe(2);
    expect(
      setup.fake
        .completionCalls()
        .slice(calls)
        .every((call) => call.json?.stream === true),
    ).toBe(true);
  });

  it('a JSON chat too; and a regenerated answer with retrieved context (its RAG template also begins with "### Task:") still goes upstream', async () => {
    const chatId = unique('chat');
    const turns = conversation();
    expect(await answerAndTasks(setup, turns, fromChat(chatId), false)).toEqual(['MISS', 'MISS', 'MISS', 'MISS', 'MISS']);
    await untilStored(() => chat(setup.gateway, taskBody('queries', MODEL, [...turns, { role: 'assistant', content: 'the answer' }])));
    expect(await answerAndTasks(setup, turns, fromChat(chatId), false)).toEqual(['BYPASS', 'HIT', 'HIT', 'HIT', 'HIT']);

    const rag = ragChatBody(MODEL, unique('What does the handbook say about leave?'), 'Employees get 25 days of leave.');
    expect((await chat(setup.gateway, rag, fromChat(chatId))).xCache).toBe('MISS');
    const calls = setup.fake.completionCalls().length;
    expect((await chat(setup.gateway, rag, fromChat(chatId))).xCache).toBe('BYPASS');
    expect(setup.fake.completionCalls().length).toBe(calls + 1);
  });

  it('without the forwarded user info headers (no chat id) nothing tells a regeneration: the answer and its tasks come from the cache', async () => {
    const turns = conversation();
    expect(await answerAndTasks(setup, turns, {})).toEqual(['MISS', 'MISS', 'MISS', 'MISS', 'MISS']);
    await untilStored(() => chat(setup.gateway, taskBody('queries', MODEL, [...turns, { role: 'assistant', content: 'the answer' }])));
    await untilStored(() => chat(setup.gateway, chatTurnBody(MODEL, turns)));
    const calls = setup.fake.completionCalls().length;
    expect(await answerAndTasks(setup, turns, {})).toEqual(['HIT', 'HIT', 'HIT', 'HIT', 'HIT']);
    expect(setup.fake.completionCalls().length).toBe(calls);
  });
});

describe('task markers an operator sets for custom task templates', () => {
  const custom = useGateway('memory', { env: { OPENWEBUI_TASK_MARKERS: 'Custom task:,</history>' } });

  it('a task of the custom template is answered from the cache after a regeneration; a prompt without the markers is a regeneration', async () => {
    const chatId = unique('chat');
    const customTask = {
      model: MODEL,
      messages: [{ role: 'user', content: `Custom task: name this chat.\n<history>\n${unique('USER: hi')}\n</history>` }],
      stream: false,
    };
    expect((await chat(custom.gateway, customTask, fromChat(chatId))).xCache).toBe('MISS');
    await untilStored(() => chat(custom.gateway, customTask));
    expect((await chat(custom.gateway, customTask, fromChat(chatId))).xCache).toBe('HIT');
    // The default templates' markers are no longer the rule: such a prompt repeated is a regeneration.
    const defaultTask = taskBody('title', MODEL, conversation());
    expect((await chat(custom.gateway, defaultTask, fromChat(chatId))).xCache).toBe('MISS');
    expect((await chat(custom.gateway, defaultTask, fromChat(chatId))).xCache).toBe('BYPASS');
  });
});

describe('OPENWEBUI_TASK_MARKERS=none', () => {
  const none = useGateway('memory', { env: { OPENWEBUI_TASK_MARKERS: 'none' } });

  it('every repeat from the same chat is a regeneration, tasks included', async () => {
    const chatId = unique('chat');
    const task = taskBody('tags', MODEL, conversation());
    expect((await chat(none.gateway, task, fromChat(chatId))).xCache).toBe('MISS');
    expect((await chat(none.gateway, task, fromChat(chatId))).xCache).toBe('BYPASS');
  });
});

describe('isBackgroundTask', () => {
  const markers = taskPromptsFromEnv({}).openWebUiTaskMarkers;
  const prompt = taskBody('followUps', MODEL, conversation()).messages as Array<{ content: string }>;
  const text = prompt[0]!.content;

  it('knows every default task by its last user message, in chat and Responses bodies, as text or parts', () => {
    for (const task of TASK_NAMES) expect(isBackgroundTask(taskBody(task, MODEL, conversation()), markers), task).toBe(true);
    expect(
      isBackgroundTask(
        {
          messages: [
            { role: 'system', content: 'be brief' },
            { role: 'user', content: [{ type: 'text', text }] },
          ],
        },
        markers,
      ),
    ).toBe(true);
    expect(isBackgroundTask({ input: [{ type: 'message', role: 'user', content: [{ type: 'input_text', text }] }] }, markers)).toBe(true);
    expect(isBackgroundTask({ input: text }, markers)).toBe(true);
  });

  it('takes no user chat for a task: a RAG-prefixed question, a task prompt answered by the assistant, a prompt quoting one marker', () => {
    expect(isBackgroundTask(ragChatBody(MODEL, 'q', 'c'), markers)).toBe(false);
    expect(
      isBackgroundTask(
        {
          messages: [
            { role: 'user', content: text },
            { role: 'assistant', content: 'ok' },
          ],
        },
        markers,
      ),
    ).toBe(false);
    expect(isBackgroundTask(chatTurnBody(MODEL, [{ role: 'user', content: 'What does "### Task:" mean in a prompt?' }]), markers)).toBe(false);
    expect(isBackgroundTask({ messages: [] }, markers)).toBe(false);
    expect(isBackgroundTask({ messages: 'x' }, markers)).toBe(false);
    expect(isBackgroundTask(taskBody('title', MODEL, conversation()), [])).toBe(false);
  });

  it('OPENWEBUI_TASK_MARKERS: defaults, a list, none; an empty marker stops start-up naming the variable', () => {
    expect(markers).toEqual(['### Task:', '<chat_history>']);
    expect(taskPromptsFromEnv({ OPENWEBUI_TASK_MARKERS: ' A:, <b> ' }).openWebUiTaskMarkers).toEqual(['A:', '<b>']);
    expect(taskPromptsFromEnv({ OPENWEBUI_TASK_MARKERS: 'none' }).openWebUiTaskMarkers).toEqual([]);
    expect(() => loadConfig({ OPENWEBUI_TASK_MARKERS: 'a,,b', OPENAI_API_KEY: 'sk-fake-x' })).toThrow(/^OPENWEBUI_TASK_MARKERS must be/);
  });
});
