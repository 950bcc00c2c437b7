/**
 * Open WebUI's background tasks (title, tags, follow-ups, search and retrieval queries, image
 * prompts, autocomplete) told apart from what a user asked. When a user regenerates an answer,
 * Open WebUI re-runs its tasks from the same chat; with a deterministic answer their bodies are
 * byte-identical to the first run's. Only the regenerated answer is a regeneration: the tasks
 * are answered from the cache as any request.
 *
 * Open WebUI sends a task as a chat completion whose last (usually only) message is the user's,
 * holding its task template filled in: every default template begins with "### Task:" and wraps
 * the chat in <chat_history>…</chat_history>. Its `task` metadata never reaches an
 * OpenAI-compatible connection (Open WebUI removes it), so the prompt is all there is to go by.
 * Both markers are required: Open WebUI's RAG template also begins with "### Task:" and is
 * placed in the user's own message, but holds no chat history.
 */
import { ConfigError } from '../config.js';

export interface TaskPromptsConfig {
  /**
   * Texts that all appear in the last user message of a background task's prompt; empty: no
   * request is taken for a task (every repeat from the same chat is a regeneration).
   */
  readonly openWebUiTaskMarkers: readonly string[];
}

export const DEFAULT_TASK_MARKERS: readonly string[] = ['### Task:', '<chat_history>'];

type Env = Readonly<Record<string, string | undefined>>;

/** OPENWEBUI_TASK_MARKERS: comma-separated texts, or `none`; unset: the default templates' markers. */
export function taskPromptsFromEnv(env: Env): TaskPromptsConfig {
  const raw = env.OPENWEBUI_TASK_MARKERS?.trim();
  if (raw === undefined || raw === '') return { openWebUiTaskMarkers: DEFAULT_TASK_MARKERS };
  if (raw === 'none') return { openWebUiTaskMarkers: [] };
  const markers = raw.split(',').map((marker) => marker.trim());
  if (markers.some((marker) => marker === '')) {
    throw new ConfigError(`OPENWEBUI_TASK_MARKERS must be comma-separated texts (or none), got an empty one in "${raw}"`);
  }
  return { openWebUiTaskMarkers: markers };
}

/**
 * Whether a request is one of Open WebUI's background tasks: its last message is the user's and
 * holds every marker. Chat completions (`messages`) and the Responses API (`input`, which Open
 * WebUI uses when a connection's type is "Responses").
 */
export function isBackgroundTask(body: unknown, markers: readonly string[]): boolean {
  if (markers.length === 0 || typeof body !== 'object' || body === null) return false;
  const { messages: chat, input } = body as { messages?: unknown; input?: unknown };
  if (typeof input === 'string' && chat === undefined) return markers.every((marker) => input.includes(marker));
  const messages = chat ?? input;
  if (!Array.isArray(messages) || messages.length === 0) return false;
  const last = messages[messages.length - 1] as { role?: unknown; content?: unknown } | null;
  if (typeof last !== 'object' || last === null || last.role !== 'user') return false;
  const text = textOf(last.content);
  return text !== undefined && markers.every((marker) => text.includes(marker));
}

/** A message's text: the string, or its text parts joined (images and files carry none). */
function textOf(content: unknown): string | undefined {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return undefined;
  let text = '';
  for (const part of content) {
    const type = typeof part === 'object' && part !== null ? (part as { type?: unknown }).type : undefined;
    if (type === 'text' || type === 'input_text') {
      const value = (part as { text?: unknown }).text;
      if (typeof value === 'string') text += `${value}\n`;
    }
  }
  return text;
}

/**
 * isBackgroundTask for a request known by its parsed body or, when recalled by its bytes
 * (known-requests.ts keeps no parsed bodies), by those: parsed only then, on a repeat from the
 * same chat, never on an ordinary request.
 */
export function isBackgroundTaskRequest(parsed: unknown, raw: Buffer | undefined, markers: readonly string[]): boolean {
  if (markers.length === 0) return false;
  if (parsed !== undefined) return isBackgroundTask(parsed, markers);
  if (raw === undefined) return false;
  try {
    return isBackgroundTask(JSON.parse(raw.toString('utf8')), markers);
  } catch {
    return false;
  }
}
