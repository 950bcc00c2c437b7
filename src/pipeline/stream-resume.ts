/**
 * Continuing a stream whose clients already received a prefix from a call that died (another
 * replica's, in remote-flight.ts) with a new call's stream of the same request. The new stream
 * is relayed only where it provably continues what was sent: its text, choice by choice, must
 * reproduce the sent text exactly; nothing is relayed until it passes that text, the event that
 * straddles the boundary is re-rendered with only the unsent rest, and every relayed chunk
 * carries the id, created, model (and system_fingerprint) the clients' stream already uses, so
 * they see one coherent stream. A new answer that differs from the sent prefix (a model that is
 * not deterministic) is reported, never spliced onto it.
 *
 * A chat stream's tool calls are continued the same way: each call's arguments must reproduce
 * the sent arguments exactly, its name must be the sent one, and the new call's tool call ids are
 * never relayed for a call the clients saw announced (they keep the first id).
 *
 * Chat and text completions here (a Responses API stream: responses-stream-resume.ts): a sent
 * prefix holding anything else (logprobs, refusals, reasoning) cannot be continued this way.
 */
import type { CachedEndpoint } from '../endpoints.js';
import { isUsageOnlyChunk } from '../openai/completion-types.js';
import { isObject, type JsonObject } from '../openai/json-fields.js';
import { parseSse, type SseEvent } from '../openai/sse-parser.js';
import type { StreamEvent } from './flight.js';
import { ResponsesStreamResume } from './responses-stream-resume.js';

/** What a choice's delta may carry and still be continued (chat: role, text, tool calls; text: nothing). */
const CHAT_DELTA_FIELDS = new Set(['role', 'content', 'tool_calls']);
const TOOL_CALL_FIELDS = new Set(['index', 'id', 'type', 'function']);
const TOOL_FUNCTION_FIELDS = new Set(['name', 'arguments']);
const CHAT_CHOICE_FIELDS = new Set(['index', 'delta', 'logprobs', 'finish_reason']);
const TEXT_CHOICE_FIELDS = new Set(['index', 'text', 'logprobs', 'finish_reason']);
/** The fields every chunk repeats: the new call's are replaced by the sent stream's. */
const IDENTITY_FIELDS = ['id', 'created', 'model', 'system_fingerprint'] as const;

/** One event of the new call: relay this event, relay nothing, or the new answer is another. */
export type ResumeStep = { kind: 'relay'; event: StreamEvent } | { kind: 'skip' } | { kind: 'diverged'; reason: string };

/** A stream being continued from a new call, whatever its format. */
export interface StreamContinuation {
  /** The new call's next event: what to relay of it, or that the new answer is another. */
  next(event: StreamEvent): ResumeStep;
  /** Whether the new call reproduced all that was sent (checked when it ends). */
  readonly covered: boolean;
}

interface ChoiceState {
  /** The text the clients received for this choice (grows as the new call's rest is relayed). */
  sent: string;
  /** The new call's text for this choice so far. */
  seen: string;
  role: boolean;
  finished: boolean;
  /** Its tool calls by index: the arguments sent and seen, as for the text. */
  tools: Map<number, ToolState>;
}

interface ToolState {
  name: string;
  sent: string;
  seen: string;
}

/** One tool call's piece of a chat delta. */
interface ToolDelta {
  index: number;
  /** Set on the piece that announces the call (its id, type and name). */
  name: string | undefined;
  args: string;
  raw: JsonObject;
}

interface ChoiceParts {
  index: number;
  text: string;
  role: boolean;
  finish: boolean;
  /** Anything that cannot be continued (logprobs, a refusal, an unknown field). */
  extra: boolean;
  tools: ToolDelta[];
}

export class StreamResume implements StreamContinuation {
  private readonly choices = new Map<number, ChoiceState>();
  private usageSent = false;
  /** Groq's request id (`x_groq.id`) the sent stream carried: the new call's is replaced by it too. */
  private groqId: string | undefined;

  private constructor(
    private readonly chat: boolean,
    private readonly identity: JsonObject,
  ) {}

  /**
   * The resume of a stream after `sent` (the events its clients received, as relayed), or
   * undefined when that prefix cannot be continued (see the header).
   */
  static after(endpoint: CachedEndpoint, sent: readonly StreamEvent[]): StreamContinuation | undefined {
    if (endpoint === 'responses') return ResponsesStreamResume.after(sent);
    if (endpoint !== 'chat.completions' && endpoint !== 'completions') return undefined;
    let resume: StreamResume | undefined;
    for (const { chunk, event, done } of sent.flatMap((relayed) => parseSse(relayed.data))) {
      if (done) continue;
      if (!chunk || event === 'error' || chunk['error'] !== undefined) return undefined;
      resume ??= new StreamResume(endpoint === 'chat.completions', identityOf(chunk));
      if (!resume.record(chunk)) return undefined;
    }
    return resume;
  }

  /** Whether the new call reproduced every choice's sent text (checked when it ends). */
  get covered(): boolean {
    for (const state of this.choices.values()) if (!caughtUp(state)) return false;
    return true;
  }

  /** The new call's next event: what to relay of it, or that the new answer is another. */
  next(event: StreamEvent): ResumeStep {
    const parsed = parseSse(event.data);
    const sse: SseEvent | undefined = parsed.length === 1 ? parsed[0] : undefined;
    // An error event (or what cannot be read) ends the stream as the provider meant it.
    if (!sse?.chunk || sse.event === 'error' || sse.chunk['error'] !== undefined) return { kind: 'relay', event };
    const chunk = sse.chunk;
    if (isUsageOnlyChunk(chunk)) {
      if (this.usageSent) return { kind: 'skip' };
      this.usageSent = true;
      return { kind: 'relay', event: this.render(chunk, chunk['choices'], event) };
    }
    const choices = Array.isArray(chunk['choices']) ? chunk['choices'] : [];
    const kept: unknown[] = [];
    for (const choice of choices) {
      const step = this.continueChoice(choice);
      if (typeof step === 'string') return { kind: 'diverged', reason: step };
      if (step) kept.push(step);
    }
    if (choices.length > 0 && kept.length === 0) return { kind: 'skip' };
    const unchanged = kept.length === choices.length && kept.every((choice, i) => choice === choices[i]);
    return { kind: 'relay', event: this.render(chunk, unchanged ? chunk['choices'] : kept, event) };
  }

  /** Takes in one sent chunk; false when it holds something that cannot be continued. */
  private record(chunk: JsonObject): boolean {
    this.groqId ??= groqIdOf(chunk);
    if (isUsageOnlyChunk(chunk)) {
      this.usageSent = true;
      return true;
    }
    const choices = chunk['choices'];
    if (!Array.isArray(choices)) return false;
    for (const choice of choices) {
      const parts = this.partsOf(choice);
      if (!parts || parts.extra) return false;
      const state = this.stateOf(parts.index);
      state.sent += parts.text;
      for (const tool of parts.tools) {
        const known = state.tools.get(tool.index);
        if (known) known.sent += tool.args;
        else if (tool.name !== undefined) state.tools.set(tool.index, { name: tool.name, sent: tool.args, seen: '' });
        else return false; // arguments of a call never announced
      }
      if (parts.role) state.role = true;
      if (parts.finish) state.finished = true;
    }
    return true;
  }

  /**
   * One choice of a new chunk: what to relay of it (undefined: nothing), or why the new answer
   * is not the one sent.
   */
  private continueChoice(choice: unknown): JsonObject | undefined | string {
    const parts = this.partsOf(choice);
    if (!parts) return 'a choice that cannot be read';
    const state = this.stateOf(parts.index);
    // Anything that cannot be continued where the clients got something else is another answer (or one not provably the same).
    if (parts.extra && (!caughtUp(state) || state.finished)) return 'a non-text delta where text was sent';
    const seen = state.seen + parts.text;
    // Once caught up, the new text extends the sent text by construction: only the part before is compared.
    if (state.seen.length < state.sent.length && !state.sent.startsWith(seen) && !seen.startsWith(state.sent)) return 'different text';
    const rest = seen.length > state.sent.length ? seen.slice(state.sent.length) : '';
    if (rest && state.finished) return 'more text after the choice had finished';
    // New text while a sent tool call is not reproduced yet: the new answer went another way.
    if (rest && !toolsCaughtUp(state)) return 'different text';
    state.seen = seen;
    state.sent += rest;
    const tools: JsonObject[] = [];
    for (const tool of parts.tools) {
      const step = this.continueTool(state, tool);
      if (typeof step === 'string') return step;
      if (step) tools.push(step);
    }
    if (parts.finish && !state.finished && !caughtUp(state)) return 'a shorter answer';
    const keepRole = parts.role && !state.role;
    const keepFinish = parts.finish && !state.finished;
    if (keepRole) state.role = true;
    if (keepFinish) state.finished = true;
    if (!rest && !keepRole && !keepFinish && !parts.extra && tools.length === 0) return undefined;
    const toolsUnchanged = tools.length === parts.tools.length && tools.every((tool, i) => tool === parts.tools[i]!.raw);
    const unchanged = rest === parts.text && keepRole === parts.role && keepFinish === parts.finish && toolsUnchanged;
    return unchanged ? (choice as JsonObject) : this.rewrite(choice as JsonObject, rest, keepRole, keepFinish, tools);
  }

  /** One tool call piece of the new call: what to relay of it (undefined: nothing), or why it is another answer. */
  private continueTool(state: ChoiceState, tool: ToolDelta): JsonObject | undefined | string {
    const known = state.tools.get(tool.index);
    if (!known) {
      // A call the clients have not seen: the new answer's own, once all that was sent is reproduced.
      if (!caughtUp(state)) return 'a non-text delta where text was sent';
      if (state.finished) return 'more text after the choice had finished';
      if (tool.name === undefined) return 'a tool call that cannot be read';
      state.tools.set(tool.index, { name: tool.name, sent: tool.args, seen: tool.args });
      return tool.raw;
    }
    if (tool.name !== undefined && tool.name !== known.name) return 'another tool';
    const seen = known.seen + tool.args;
    if (seen.length <= known.sent.length) {
      if (!known.sent.startsWith(seen)) return 'different tool arguments';
      known.seen = seen;
      return undefined;
    }
    if (!seen.startsWith(known.sent)) return 'different tool arguments';
    if (state.finished) return 'more text after the choice had finished';
    if (state.seen.length < state.sent.length || !toolsCaughtUp(state, known)) return 'a shorter answer';
    const rest = seen.slice(known.sent.length);
    known.seen = seen;
    known.sent = seen;
    // The call was announced to the clients already (its id, type and name): only arguments follow.
    return { index: tool.index, function: { arguments: rest } };
  }

  /** A choice carrying only what the clients have not received yet. */
  private rewrite(choice: JsonObject, rest: string, keepRole: boolean, keepFinish: boolean, tools: JsonObject[]): JsonObject {
    const out: JsonObject = { ...choice };
    if (!keepFinish) out['finish_reason'] = null;
    if (!this.chat) {
      out['text'] = rest;
      return out;
    }
    const delta: JsonObject = { ...(choice['delta'] as JsonObject) };
    if (!keepRole) delete delta['role'];
    if (rest || typeof delta['content'] === 'string') delta['content'] = rest;
    if (tools.length > 0) delta['tool_calls'] = tools;
    else delete delta['tool_calls'];
    out['delta'] = delta;
    return out;
  }

  /** The text, role and finish of a choice, and whether it carries anything else; undefined when unreadable. */
  private partsOf(choice: unknown): ChoiceParts | undefined {
    if (!isObject(choice) || typeof choice['index'] !== 'number') return undefined;
    const finish = choice['finish_reason'] !== null && choice['finish_reason'] !== undefined;
    const extra = hasOtherThan(choice, this.chat ? CHAT_CHOICE_FIELDS : TEXT_CHOICE_FIELDS) || (choice['logprobs'] ?? null) !== null;
    if (!this.chat) {
      const text = choice['text'] ?? '';
      return typeof text === 'string' ? { index: choice['index'], text, role: false, finish, extra, tools: [] } : undefined;
    }
    const delta = choice['delta'] ?? {};
    if (!isObject(delta)) return undefined;
    const text = delta['content'] ?? '';
    if (typeof text !== 'string') return undefined;
    const role = delta['role'] !== undefined && delta['role'] !== null;
    const tools = toolDeltasOf(delta['tool_calls']);
    return { index: choice['index'], text, role, finish, extra: extra || !tools || hasOtherThan(delta, CHAT_DELTA_FIELDS), tools: tools ?? [] };
  }

  private stateOf(index: number): ChoiceState {
    let state = this.choices.get(index);
    if (!state) {
      state = { sent: '', seen: '', role: false, finished: false, tools: new Map() };
      this.choices.set(index, state);
    }
    return state;
  }

  /** The chunk with `choices` and the sent stream's identity; the event itself when nothing changed. */
  private render(chunk: JsonObject, choices: unknown, event: StreamEvent): StreamEvent {
    const groqId = groqIdOf(chunk);
    const same =
      choices === chunk['choices'] &&
      (groqId === undefined || this.groqId === undefined || groqId === this.groqId) &&
      IDENTITY_FIELDS.every((field) => !(field in chunk) || !(field in this.identity) || chunk[field] === this.identity[field]);
    if (same) return event;
    const out: JsonObject = { ...chunk, choices };
    for (const field of IDENTITY_FIELDS) if (field in out && field in this.identity) out[field] = this.identity[field];
    if (groqId !== undefined && this.groqId !== undefined) out['x_groq'] = { ...(chunk['x_groq'] as JsonObject), id: this.groqId };
    return { data: `data: ${JSON.stringify(out)}\n\n`, usageOnly: event.usageOnly };
  }
}

/** The tool call pieces of a chat delta; undefined when one cannot be read (or holds more than a function call). */
function toolDeltasOf(value: unknown): ToolDelta[] | undefined {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) return undefined;
  const tools: ToolDelta[] = [];
  for (const raw of value) {
    if (!isObject(raw) || typeof raw['index'] !== 'number' || hasOtherThan(raw, TOOL_CALL_FIELDS)) return undefined;
    const fn = raw['function'] ?? {};
    if (!isObject(fn) || hasOtherThan(fn, TOOL_FUNCTION_FIELDS)) return undefined;
    const name = fn['name'] ?? undefined;
    const args = fn['arguments'] ?? '';
    if ((name !== undefined && typeof name !== 'string') || typeof args !== 'string') return undefined;
    tools.push({ index: raw['index'], name, args, raw });
  }
  return tools;
}

/** Whether the new call reproduced all the clients received of a choice: its text and every tool call's arguments. */
function caughtUp(state: ChoiceState): boolean {
  return state.seen.length >= state.sent.length && toolsCaughtUp(state);
}

function toolsCaughtUp(state: ChoiceState, except?: ToolState): boolean {
  for (const tool of state.tools.values()) if (tool !== except && tool.seen.length < tool.sent.length) return false;
  return true;
}

function identityOf(chunk: JsonObject): JsonObject {
  const identity: JsonObject = {};
  for (const field of IDENTITY_FIELDS) if (chunk[field] !== undefined) identity[field] = chunk[field];
  return identity;
}

function groqIdOf(chunk: JsonObject): string | undefined {
  const groq = chunk['x_groq'];
  return isObject(groq) && typeof groq['id'] === 'string' ? groq['id'] : undefined;
}

/** Whether `object` has a field outside `allowed` with a value (null and absent say nothing). */
function hasOtherThan(object: JsonObject, allowed: ReadonlySet<string>): boolean {
  for (const [field, value] of Object.entries(object)) if (!allowed.has(field) && value !== null && value !== undefined) return true;
  return false;
}
