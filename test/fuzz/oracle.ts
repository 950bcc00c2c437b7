/**
 * The fuzzer's oracle: whatever was sent, the answer must be a correct one or a 4xx in
 * OpenAI's shape. Judged per exchange, from the request as the client meant it and the answer
 * as it came over the wire:
 *
 * - an answer, complete, before the deadline (else "hang"); a connection closed without one is
 *   a failure ("closed-without-answer") unless the request was cut short on purpose or is one
 *   Node answers by closing (see Exchange.mayClose): for those, closing is a correct answer;
 * - no status >= 500 (the fake upstream answers normally, so any 5xx is the gateway's), no 3xx,
 *   no final 1xx;
 * - every 4xx body is `{"error":{"message":string,"type":string,"code":string|null}}` with
 *   Content-Type application/json; every answer has an X-Request-Id;
 * - a 2xx on a completion route is a valid completion, stream or embedding list for that route,
 *   as the client asked (stream or not), with X-Cache; one on another route has that route's
 *   shape; the same holds for a path that normalises to that route (`/v1/./chat/completions`).
 */
import type { Exchange, RouteKind } from './cases.js';
import { header, type ReadOutcome, type WireResponse } from './http-wire.js';

export type ViolationKind =
  | '5xx'
  | 'hang'
  | 'closed-without-answer'
  | 'malformed-response'
  | 'error-shape'
  | 'bad-2xx'
  | 'unexpected-status'
  | 'no-request-id'
  | 'header-injection'
  | 'disagreement'
  | 'healthz';

export interface Violation {
  kind: ViolationKind;
  detail: string;
}

export type JudgedOutcome = ReadOutcome | { kind: 'malformed'; error: string };

const CACHED_ROUTES: Readonly<Record<string, RouteKind>> = {
  '/chat/completions': 'chat',
  '/completions': 'completions',
  '/embeddings': 'embeddings',
  '/responses': 'responses',
};

export interface RouteOfTarget {
  kind: RouteKind | 'other';
  /** The target is not the route's canonical spelling (dot segments, slashes, a query). */
  odd: boolean;
  /** The path once normalised (no query): the route's canonical spelling. */
  path: string;
}

/** The route a request target names once normalised as a URL resolver would. */
export function routeOf(target: string, method: string): RouteOfTarget {
  let path = target;
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(path)) {
    try {
      path = new URL(path).pathname;
    } catch {
      return { kind: 'other', odd: true, path };
    }
  }
  const exact = path;
  path = path.split(/[?#]/)[0] ?? '';
  const segments: string[] = [];
  for (const segment of path.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') segments.pop();
    else segments.push(segment);
  }
  const normal = `/${segments.join('/')}`;
  const odd = normal !== exact;
  const of = (kind: RouteOfTarget['kind']): RouteOfTarget => ({ kind, odd, path: normal });
  if (normal === '/healthz' || normal === '/readyz' || normal === '/metrics') return of(normal.slice(1) as RouteKind);
  const rest = normal.startsWith('/v1/') || normal === '/v1' ? normal.slice(3) : normal.startsWith('/openai/v1/') ? normal.slice(10) : undefined;
  if (rest === undefined) return of('other');
  const cached = CACHED_ROUTES[rest];
  if (cached && method === 'POST') return of(cached);
  if (rest === '/models') return of('models');
  if (rest.startsWith('/models/')) return of('model');
  if (rest === '/audio/transcriptions') return of('transcription');
  return of('passthrough');
}

function parseJson(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8')) as unknown;
  } catch {
    return undefined;
  }
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

function excerpt(body: Buffer, length = 160): string {
  return JSON.stringify(body.subarray(0, length).toString('utf8'));
}

export function errorShapeProblem(response: WireResponse): string | undefined {
  const type = header(response, 'content-type') ?? '';
  if (!type.toLowerCase().startsWith('application/json')) return `Content-Type ${JSON.stringify(type)} (body ${excerpt(response.body)})`;
  const body = parseJson(response.body);
  if (!isObject(body) || !isObject(body.error)) return `body is not {"error":{…}}: ${excerpt(response.body)}`;
  const error = body.error;
  if (typeof error.message !== 'string' || typeof error.type !== 'string') return `error without message/type strings: ${excerpt(response.body)}`;
  if (!('code' in error) || (error.code !== null && typeof error.code !== 'string'))
    return `error.code missing or not a string/null: ${excerpt(response.body)}`;
  return undefined;
}

/** Data payloads of an SSE body, or a reason it is not one. */
function sseData(body: Buffer): string[] | string {
  const data: string[] = [];
  for (const block of body.toString('utf8').split(/\r?\n\r?\n/)) {
    const lines = block.split(/\r?\n/).filter((line) => line.startsWith('data:'));
    if (lines.length > 0) data.push(lines.map((line) => line.slice(5).trimStart()).join('\n'));
  }
  if (data.at(-1) !== '[DONE]') return `stream does not end with [DONE]: …${JSON.stringify(body.subarray(-80).toString('utf8'))}`;
  return data.slice(0, -1);
}

function completionProblem(kind: 'chat' | 'completions', response: WireResponse, stream: boolean): string | undefined {
  const type = (header(response, 'content-type') ?? '').toLowerCase();
  if (stream) {
    if (!type.startsWith('text/event-stream')) return `stream asked, Content-Type ${JSON.stringify(type)}`;
    const data = sseData(response.body);
    if (typeof data === 'string') return data;
    if (data.length === 0) return 'stream without chunks';
    let id: unknown;
    for (const payload of data) {
      let chunk: unknown;
      try {
        chunk = JSON.parse(payload);
      } catch {
        return `stream chunk is not JSON: ${JSON.stringify(payload.slice(0, 80))}`;
      }
      if (!isObject(chunk) || !Array.isArray(chunk.choices)) return `stream chunk without choices: ${JSON.stringify(payload.slice(0, 80))}`;
      const expected = kind === 'chat' ? 'chat.completion.chunk' : 'text_completion';
      if (chunk.object !== expected) return `stream chunk object ${JSON.stringify(chunk.object)}`;
      id ??= chunk.id;
      if (chunk.id !== id) return 'stream chunks with different ids';
    }
    return undefined;
  }
  if (!type.startsWith('application/json')) return `JSON asked, Content-Type ${JSON.stringify(type)}`;
  const body = parseJson(response.body);
  if (!isObject(body) || !Array.isArray(body.choices) || body.choices.length === 0) return `not a completion: ${excerpt(response.body)}`;
  if (kind === 'chat') {
    if (body.object !== 'chat.completion') return `object ${JSON.stringify(body.object)}`;
    for (const choice of body.choices) {
      if (!isObject(choice) || !isObject(choice.message)) return `choice without message: ${excerpt(response.body)}`;
      if (choice.message.content !== null && typeof choice.message.content !== 'string') return 'message.content neither string nor null';
    }
  } else {
    if (body.object !== 'text_completion') return `object ${JSON.stringify(body.object)}`;
    for (const choice of body.choices) if (!isObject(choice) || typeof choice.text !== 'string') return `choice without text: ${excerpt(response.body)}`;
  }
  return undefined;
}

/** A Responses API answer: the response object, or its stream of named events ending in response.completed (no [DONE]). */
function responsesProblem(response: WireResponse, stream: boolean): string | undefined {
  const type = (header(response, 'content-type') ?? '').toLowerCase();
  if (!stream) {
    if (!type.startsWith('application/json')) return `JSON asked, Content-Type ${JSON.stringify(type)}`;
    const body = parseJson(response.body);
    return isObject(body) && body.object === 'response' && Array.isArray(body.output) ? undefined : `not a response object: ${excerpt(response.body)}`;
  }
  if (!type.startsWith('text/event-stream')) return `stream asked, Content-Type ${JSON.stringify(type)}`;
  const events: Array<Record<string, unknown>> = [];
  for (const block of response.body.toString('utf8').split(/\r?\n\r?\n/)) {
    const lines = block.split(/\r?\n/);
    const data = lines.filter((line) => line.startsWith('data:')).map((line) => line.slice(5).trimStart());
    if (data.length === 0) continue;
    const event = parseJson(Buffer.from(data.join('\n')));
    if (!isObject(event) || typeof event.type !== 'string') return `stream event without a type: ${JSON.stringify(data.join('').slice(0, 80))}`;
    const name = lines
      .find((line) => line.startsWith('event:'))
      ?.slice(6)
      .trim();
    if (name !== event.type) return `event named ${JSON.stringify(name)} carries ${JSON.stringify(event.type)}`;
    events.push(event);
  }
  if (events[0]?.type !== 'response.created') return 'stream does not begin with response.created';
  if (events.at(-1)?.type !== 'response.completed')
    return `stream does not end with response.completed: …${JSON.stringify(response.body.subarray(-80).toString('utf8'))}`;
  return undefined;
}

function embeddingsProblem(response: WireResponse): string | undefined {
  const body = parseJson(response.body);
  // An empty list is the upstream's answer to an empty input list, passed on as it came.
  if (!isObject(body) || body.object !== 'list' || !Array.isArray(body.data)) return `not an embedding list: ${excerpt(response.body)}`;
  for (const item of body.data) {
    if (!isObject(item) || item.object !== 'embedding') return `not an embedding: ${excerpt(response.body)}`;
    const vector = item.embedding;
    const ok = typeof vector === 'string' || (Array.isArray(vector) && vector.length > 0 && vector.every((v) => typeof v === 'number'));
    if (!ok) return 'embedding neither a number array nor base64';
  }
  return undefined;
}

/** What is wrong with a 2xx answer, judged by the route that answered. */
function successProblem(ex: Exchange, response: WireResponse): string | undefined {
  if (ex.method === 'HEAD') return undefined;
  const route = routeOf(ex.target, ex.method);
  const json = ex.json;
  switch (route.kind) {
    case 'chat':
    case 'completions':
    case 'embeddings':
    case 'responses': {
      const cache = header(response, 'x-cache');
      // PARTIAL: an embeddings batch answered partly from the cache.
      const outcomes = route.kind === 'embeddings' ? ['HIT', 'MISS', 'BYPASS', 'COALESCED', 'PARTIAL'] : ['HIT', 'MISS', 'BYPASS', 'COALESCED'];
      if (!cache || !outcomes.includes(cache)) {
        return `a ${route.kind} answer without X-Cache${route.odd ? ` (odd path ${JSON.stringify(ex.target.slice(0, 60))}: not cached nor accounted)` : ''}`;
      }
      if (ex.invalidJson === true) return 'a body that is not valid JSON was answered 2xx';
      const required = route.kind === 'chat' ? 'messages' : route.kind === 'completions' ? 'prompt' : 'input';
      if (!isObject(json) || typeof json.model !== 'string' || json.model === '' || json[required] === undefined || json[required] === null) {
        return `answered 2xx without a model or ${required}`;
      }
      if (route.kind === 'embeddings') return embeddingsProblem(response);
      if (route.kind === 'responses') return responsesProblem(response, json.stream === true);
      return completionProblem(route.kind, response, json.stream === true);
    }
    case 'models': {
      const body = parseJson(response.body);
      if (!isObject(body) || body.object !== 'list' || !Array.isArray(body.data)) return `not a model list: ${excerpt(response.body)}`;
      return body.data.every((m) => isObject(m) && typeof m.id === 'string') ? undefined : 'a model without an id';
    }
    case 'model': {
      const body = parseJson(response.body);
      return isObject(body) && typeof body.id === 'string' && body.object === 'model' ? undefined : `not a model: ${excerpt(response.body)}`;
    }
    case 'healthz': {
      const body = parseJson(response.body);
      return isObject(body) && body.status === 'ok' ? undefined : `healthz body ${excerpt(response.body)}`;
    }
    case 'metrics':
      return response.body.includes('gateway_requests_total') ? undefined : `metrics without gateway_requests_total: ${excerpt(response.body)}`;
    case 'transcription': {
      const body = parseJson(response.body);
      return isObject(body) && typeof body.text === 'string' ? undefined : `not a transcription: ${excerpt(response.body)}`;
    }
    default: {
      const type = (header(response, 'content-type') ?? '').toLowerCase();
      if (type.startsWith('application/json') && parseJson(response.body) === undefined) return `Content-Type JSON, body is not: ${excerpt(response.body)}`;
      return undefined;
    }
  }
}

export function judge(ex: Exchange, outcome: JudgedOutcome): Violation[] {
  if (outcome.kind === 'timeout') return [{ kind: 'hang', detail: `no complete answer in time (${outcome.partial} bytes of one)` }];
  if (outcome.kind === 'malformed') return [{ kind: 'malformed-response', detail: outcome.error }];
  if (outcome.kind === 'closed') {
    if (ex.mayClose) return [];
    return [
      { kind: 'closed-without-answer', detail: `connection closed after ${outcome.partial} bytes of an answer${outcome.error ? ` (${outcome.error})` : ''}` },
    ];
  }
  const response = outcome.response;
  const violations: Violation[] = [];
  const status = response.status;
  if (status >= 500) violations.push({ kind: '5xx', detail: `${status} ${excerpt(response.body, 300)}` });
  else if (status < 200 || (status >= 300 && status < 400)) violations.push({ kind: 'unexpected-status', detail: String(status) });
  if (status >= 400 && status < 500) {
    const problem = ex.method === 'HEAD' ? headErrorProblem(response) : errorShapeProblem(response);
    if (problem) violations.push({ kind: 'error-shape', detail: `${status}: ${problem}` });
  }
  if (status >= 200 && status < 300) {
    const problem = successProblem(ex, response);
    if (problem) violations.push({ kind: 'bad-2xx', detail: `${status}: ${problem}` });
  }
  if (!response.headers.has('x-request-id')) violations.push({ kind: 'no-request-id', detail: `${status} without X-Request-Id` });
  if (response.headers.has('x-fuzz-injected')) violations.push({ kind: 'header-injection', detail: 'a header the client smuggled into a value came back' });
  return violations;
}

function headErrorProblem(response: WireResponse): string | undefined {
  const type = header(response, 'content-type') ?? '';
  return type.toLowerCase().startsWith('application/json') ? undefined : `Content-Type ${JSON.stringify(type)}`;
}

/** Two answers to the same odd request, one the cache could give and one it could not. */
export function agreementProblem(a: JudgedOutcome, b: JudgedOutcome): Violation | undefined {
  if (a.kind !== 'response' || b.kind !== 'response') return undefined;
  // A 5xx is reported on its own; a hit served while the upstream fails is no disagreement.
  if (a.response.status >= 500 || b.response.status >= 500) return undefined;
  const klass = (status: number) => (status >= 200 && status < 300 ? '2xx' : String(status));
  if (klass(a.response.status) === klass(b.response.status)) return undefined;
  const cache = (r: WireResponse) => header(r, 'x-cache') ?? '-';
  return {
    kind: 'disagreement',
    detail: `with the answer cached: ${a.response.status} (X-Cache ${cache(a.response)}); without: ${b.response.status} (X-Cache ${cache(b.response)})`,
  };
}
