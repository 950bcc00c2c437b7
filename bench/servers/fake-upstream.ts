/**
 * The benchmark's upstream, run as its own process: speaks OpenAI's wire format (and Groq's
 * layout under /openai/v1) for chat completions (JSON and SSE), embeddings and /models, with a
 * configurable delay before the answer and a token rate for streams. Lean on purpose (node:http,
 * no recording of bodies) so that it is the floor, not the bottleneck.
 *
 * Control (loopback only): GET /__stats → call counts; POST /__config {delayMs, tokensPerSecond,
 * answerTokens} changes the behaviour between scenarios; POST /__reset zeroes the counts.
 * Prints `listening <port>` on stdout once it accepts connections.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { answerTokens, CHAT_MODEL, EMBEDDING_MODEL, GROQ_MODEL } from '../workload.js';

interface UpstreamConfig {
  /** Before the response head (JSON: before the whole answer), ms. */
  delayMs: number;
  /** Streams emit tokens at this rate; JSON answers wait for the whole generation. 0 = instantly. */
  tokensPerSecond: number;
  answerTokens: number;
}

const config: UpstreamConfig = {
  delayMs: Number(process.env.FAKE_DELAY_MS ?? 0),
  tokensPerSecond: Number(process.env.FAKE_TOKENS_PER_SECOND ?? 0),
  answerTokens: Number(process.env.FAKE_ANSWER_TOKENS ?? 120),
};

const stats = { chat: 0, chatStreams: 0, embeddings: 0, models: 0, aborted: 0 };
let counter = 0;

const MODELS = {
  openai: [CHAT_MODEL, 'gpt-4o', EMBEDDING_MODEL],
  groq: [GROQ_MODEL, 'llama-3.3-70b-versatile'],
};

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

function lastUserText(body: Record<string, unknown>): string {
  const messages = Array.isArray(body.messages) ? (body.messages as Array<{ content?: unknown }>) : [];
  const content = messages.at(-1)?.content;
  return typeof content === 'string' ? content : JSON.stringify(content ?? body.prompt ?? '');
}

async function chat(res: ServerResponse, body: Record<string, unknown>, groq: boolean): Promise<void> {
  const id = ++counter;
  const model = String(body.model);
  const tokens = answerTokens(lastUserText(body), config.answerTokens);
  const usage = { prompt_tokens: 60, completion_tokens: tokens.length, total_tokens: 60 + tokens.length };
  const base = { id: `chatcmpl-bench${id}`, object: 'chat.completion.chunk', created: 1_700_000_000 + id, model, system_fingerprint: 'fp_bench' };
  const headers = { 'x-request-id': `req_bench_${id}` };
  if (config.delayMs > 0) await sleep(config.delayMs);
  if (body.stream !== true) {
    stats.chat++;
    if (config.tokensPerSecond > 0) await sleep((tokens.length * 1000) / config.tokensPerSecond);
    sendJson(
      res,
      200,
      {
        ...base,
        object: 'chat.completion',
        choices: [{ index: 0, message: { role: 'assistant', content: tokens.join(''), refusal: null }, logprobs: null, finish_reason: 'stop' }],
        usage,
      },
      headers,
    );
    return;
  }
  stats.chatStreams++;
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', ...headers });
  const event = (payload: unknown): string => `data: ${JSON.stringify(payload)}\n\n`;
  res.write(event({ ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }] }));
  const started = performance.now();
  let sent = 0;
  while (sent < tokens.length) {
    // Emit what the token rate says is due by now: sub-millisecond rates go out in small batches.
    const due =
      config.tokensPerSecond > 0 ? Math.min(tokens.length, Math.floor(((performance.now() - started) * config.tokensPerSecond) / 1000) + 1) : tokens.length;
    let out = '';
    for (; sent < due; sent++) {
      out += event({ ...base, choices: [{ index: 0, delta: { content: tokens[sent] }, logprobs: null, finish_reason: null }] });
    }
    if (out) res.write(out);
    if (res.destroyed) {
      stats.aborted++;
      return;
    }
    if (sent < tokens.length) await sleep(Math.max(1, 1000 / config.tokensPerSecond));
  }
  const finish = { ...base, choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: 'stop' }] };
  let tail = event(groq ? { ...finish, x_groq: { id: `req_groq_${id}`, usage } } : finish);
  const options = body.stream_options as { include_usage?: unknown } | undefined;
  if (options?.include_usage === true) tail += event({ ...base, choices: [], usage });
  res.end(`${tail}data: [DONE]\n\n`);
}

function embeddings(res: ServerResponse, body: Record<string, unknown>): void {
  stats.embeddings++;
  const inputs = Array.isArray(body.input) ? body.input : [body.input];
  const data = inputs.map((input, index) => {
    let state = answerTokens(String(input), 1)[0]!.length + index + 1;
    const embedding: number[] = [];
    for (let i = 0; i < 256; i++) {
      state = (state * 1103515245 + 12345) % 2147483648;
      embedding.push(Math.round((state / 2147483648 - 0.5) * 1e6) / 1e6);
    }
    return { object: 'embedding', index, embedding };
  });
  sendJson(res, 200, { object: 'list', data, model: String(body.model), usage: { prompt_tokens: 12, total_tokens: 12 } });
}

async function handle(req: IncomingMessage, res: ServerResponse, raw: string): Promise<void> {
  const path = (req.url ?? '/').split('?')[0] ?? '/';
  if (path === '/__stats') return sendJson(res, 200, stats);
  if (path === '/__reset') {
    for (const name of Object.keys(stats) as Array<keyof typeof stats>) stats[name] = 0;
    return sendJson(res, 200, stats);
  }
  if (path === '/__config') {
    Object.assign(config, JSON.parse(raw) as Partial<UpstreamConfig>);
    return sendJson(res, 200, config);
  }
  const groq = path.startsWith('/openai/');
  const route = groq ? path.slice('/openai'.length) : path;
  if (!req.headers.authorization?.startsWith('Bearer ')) {
    return sendJson(res, 401, { error: { message: 'Missing API key', type: 'invalid_request_error', code: 'invalid_api_key' } });
  }
  if (req.method === 'GET' && route === '/v1/models') {
    stats.models++;
    const ids = groq ? MODELS.groq : MODELS.openai;
    return sendJson(res, 200, { object: 'list', data: ids.map((id) => ({ id, object: 'model', created: 1_700_000_000, owned_by: groq ? 'Groq' : 'openai' })) });
  }
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(raw) as Record<string, unknown>;
  } catch {
    return sendJson(res, 400, { error: { message: 'We could not parse the JSON body of your request.', type: 'invalid_request_error', code: null } });
  }
  if (req.method === 'POST' && route === '/v1/chat/completions') return chat(res, body, groq);
  if (req.method === 'POST' && route === '/v1/embeddings') return embeddings(res, body);
  return sendJson(res, 404, { error: { message: `Unknown route ${path}`, type: 'invalid_request_error', code: 'unknown_url' } });
}

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('end', () => {
    const raw = chunks.length === 1 ? chunks[0]!.toString('utf8') : Buffer.concat(chunks).toString('utf8');
    handle(req, res, raw).catch(() => res.destroy());
  });
});
server.keepAliveTimeout = 65_000;
server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  process.stdout.write(`listening ${(server.address() as AddressInfo).port}\n`);
});
process.on('SIGTERM', () => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
});
