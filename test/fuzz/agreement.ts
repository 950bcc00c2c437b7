/**
 * Whether two answers to the same input on a cached route are the same answer, whichever way the
 * input's target was spelt (with or without a query string) and whether or not its answer was
 * stored: the same status, error `code` and `type`, Content-Type and, for a 2xx, the same body.
 *
 * Two hits of one stored entry must be byte-identical JSON. Otherwise a 2xx is compared by what
 * it says: an upstream answer and a stored one differ legitimately in their id and creation time
 * (the fake upstream numbers its answers), and a stream is split into chunks freely, so the
 * comparison is of the choices' text, roles and finish reasons, the usage and the model (for
 * an embedding list: its data and model).
 */
import { header, type WireResponse } from './http-wire.js';
import type { JudgedOutcome } from './oracle.js';

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

function errorFields(response: WireResponse): string {
  const body = parseJson(response.body.toString('utf8'));
  const error = isObject(body) && isObject(body.error) ? body.error : undefined;
  return error ? `code ${JSON.stringify(error.code)}, type ${JSON.stringify(error.type)}` : 'no error object';
}

interface ChoiceContent {
  role?: unknown;
  content: string;
  /** Any content that is not text (null, tool calls): kept as sent. */
  other: unknown[];
  finish?: unknown;
}

/** What a completion or embedding answer says, as one comparable string. */
export function contentSignature(response: WireResponse): string {
  const type = (header(response, 'content-type') ?? '').toLowerCase();
  const text = response.body.toString('utf8');
  if (type.startsWith('text/event-stream')) return streamSignature(text);
  const body = parseJson(text);
  if (!isObject(body)) return `raw ${text}`;
  // An embedding list's usage is what that request was billed: a batch answered from the cache
  // bills nothing (0), the same batch paid upstream its tokens, so only the vectors must agree.
  if (Array.isArray(body.data)) return JSON.stringify({ object: body.object, model: body.model, data: body.data });
  const choices = Array.isArray(body.choices) ? body.choices : [];
  return JSON.stringify({
    object: body.object,
    model: body.model,
    choices: choices.map((choice) => {
      if (!isObject(choice)) return choice;
      const message = isObject(choice.message) ? choice.message : undefined;
      return {
        index: choice.index,
        role: message?.role,
        content: message ? message.content : choice.text,
        tools: message?.tool_calls ?? null,
        finish: choice.finish_reason,
      };
    }),
    usage: body.usage ?? null,
  });
}

function streamSignature(text: string): string {
  const choices = new Map<unknown, ChoiceContent>();
  let model: unknown;
  let object: unknown;
  let usage: unknown = null;
  let chunks = 0;
  for (const block of text.split(/\r?\n\r?\n/)) {
    const data = block
      .split(/\r?\n/)
      .filter((line) => line.startsWith('data:'))
      .map((line) => line.slice(5).trimStart())
      .join('\n');
    if (data === '' || data === '[DONE]') continue;
    const chunk = parseJson(data);
    if (!isObject(chunk)) return `raw ${text}`;
    chunks++;
    model ??= chunk.model;
    object ??= chunk.object;
    if (chunk.usage !== undefined && chunk.usage !== null) usage = chunk.usage;
    for (const choice of Array.isArray(chunk.choices) ? chunk.choices : []) {
      if (!isObject(choice)) continue;
      const entry = choices.get(choice.index) ?? { content: '', other: [] };
      choices.set(choice.index, entry);
      const delta = isObject(choice.delta) ? choice.delta : undefined;
      if (delta?.role !== undefined) entry.role = delta.role;
      const piece = delta ? delta.content : choice.text;
      if (typeof piece === 'string') entry.content += piece;
      else if (piece !== undefined && piece !== null) entry.other.push(piece);
      if (delta?.tool_calls !== undefined) entry.other.push(delta.tool_calls);
      if (choice.finish_reason !== undefined && choice.finish_reason !== null) entry.finish = choice.finish_reason;
    }
  }
  const ended = /(^|\n)data: ?\[DONE\]\s*$/.test(text);
  return JSON.stringify({ object, model, ended, empty: chunks === 0, choices: [...choices.entries()], usage });
}

/**
 * Why two answers to one input are not the same answer, or undefined when they are (or when
 * the oracle reports what is wrong with one of them on its own: no answer in time, a 5xx).
 */
export function disagreement(a: JudgedOutcome, b: JudgedOutcome, names: readonly [string, string]): string | undefined {
  const [an, bn] = names;
  if (a.kind === 'timeout' || a.kind === 'malformed' || b.kind === 'timeout' || b.kind === 'malformed') return undefined;
  if (a.kind !== 'response' || b.kind !== 'response') {
    if (a.kind === b.kind) return undefined;
    const what = (o: JudgedOutcome) => (o.kind === 'response' ? `answered ${o.response.status}` : `closed without an answer`);
    return `${an}: ${what(a)}; ${bn}: ${what(b)}`;
  }
  const ra = a.response;
  const rb = b.response;
  if (ra.status >= 500 || rb.status >= 500) return undefined;
  const cache = (r: WireResponse) => header(r, 'x-cache') ?? '-';
  const said = (r: WireResponse) => `${r.status} (X-Cache ${cache(r)})`;
  if (ra.status !== rb.status) return `status: ${an} ${said(ra)} ${excerpt(ra)}; ${bn} ${said(rb)} ${excerpt(rb)}`;
  const typeA = header(ra, 'content-type') ?? '-';
  const typeB = header(rb, 'content-type') ?? '-';
  if (typeA !== typeB) return `Content-Type: ${an} ${JSON.stringify(typeA)}; ${bn} ${JSON.stringify(typeB)} (status ${ra.status})`;
  if (ra.status >= 400) {
    const ea = errorFields(ra);
    const eb = errorFields(rb);
    return ea === eb ? undefined : `error (status ${ra.status}): ${an} ${ea}; ${bn} ${eb}`;
  }
  if (ra.status < 200 || ra.status >= 300) return undefined;
  const stream = typeA.toLowerCase().startsWith('text/event-stream');
  if (!stream && cache(ra) === 'HIT' && cache(rb) === 'HIT') {
    return ra.body.equals(rb.body) ? undefined : `two hits of one entry, different bodies: ${an} ${excerpt(ra)}; ${bn} ${excerpt(rb)}`;
  }
  const sa = contentSignature(ra);
  const sb = contentSignature(rb);
  return sa === sb ? undefined : `2xx content (${said(ra)} vs ${said(rb)}): ${an} ${sa.slice(0, 240)}; ${bn} ${sb.slice(0, 240)}`;
}

function excerpt(response: WireResponse): string {
  return JSON.stringify(response.body.subarray(0, 160).toString('utf8'));
}
