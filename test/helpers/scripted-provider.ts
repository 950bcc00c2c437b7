/**
 * A provider double whose completion calls follow a script: the n-th call gets the n-th
 * scripted answer (a status, headers, a body and a delay, worked out from the key it carried),
 * and every call past the script an ordinary OpenAI answer (JSON, or SSE when asked). It serves
 * /v1/models like OpenAI, so a gateway routes `gpt-4o-mini` to it. Real HTTP on loopback.
 */
import type { ServerResponse } from 'node:http';
import { bearerKey, closeNow, createWholeBodyServer, listenOnLoopback, type ProviderUrls } from './provider-double-server.js';

export interface ScriptedAnswer {
  status: number;
  headers?: Record<string, string>;
  /** Sent as JSON; a Buffer is sent as it is (an HTML page, a compressed body, nothing). */
  body: unknown;
  /** Wait this long before answering. */
  delayMs?: number;
}

export interface ScriptedCall {
  key: string | undefined;
  path: string;
  status: number;
}

export interface ScriptedProvider extends ProviderUrls {
  /** Completion calls, in the order they arrived. */
  calls: ScriptedCall[];
  /** The answers of the next completion calls, first in first out; worked out from the call's key. */
  script: Array<(key: string | undefined) => ScriptedAnswer>;
  close(): Promise<void>;
}

const MODELS = ['gpt-4o-mini'];

export async function startScriptedProvider(): Promise<ScriptedProvider> {
  const calls: ScriptedCall[] = [];
  const script: ScriptedProvider['script'] = [];
  let served = 0;
  const server = createWholeBodyServer((req, res, raw) => {
    const path = (req.url ?? '').split('?')[0] ?? '';
    if (req.method === 'GET' && path === '/v1/models') {
      return send(res, 200, {}, { object: 'list', data: MODELS.map((id) => ({ id, object: 'model', created: 1_700_000_000, owned_by: 'openai' })) });
    }
    if (req.method !== 'POST') return send(res, 404, {}, { error: { message: `Unknown route ${path}`, type: 'invalid_request_error', code: 'unknown_url' } });
    const key = bearerKey(req);
    const next = script.shift();
    if (next) {
      const answer = next(key);
      calls.push({ key, path, status: answer.status });
      setTimeout(() => send(res, answer.status, answer.headers ?? {}, answer.body), answer.delayMs ?? 0);
      return;
    }
    calls.push({ key, path, status: 200 });
    served++;
    const body = JSON.parse(raw.toString('utf8') || '{}') as { model?: string; stream?: boolean };
    const id = `chatcmpl-scripted${served}`;
    const model = body.model ?? 'gpt-4o-mini';
    const usage = { prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 };
    if (body.stream === true) {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const chunk = (delta: Record<string, unknown>, finish: string | null) => ({
        id,
        object: 'chat.completion.chunk',
        created: 1_700_000_000,
        model,
        choices: [{ index: 0, delta, finish_reason: finish }],
      });
      for (const event of [
        chunk({ role: 'assistant', content: '' }, null),
        chunk({ content: 'Hello there' }, null),
        chunk({}, 'stop'),
        { id, object: 'chat.completion.chunk', created: 1_700_000_000, model, choices: [], usage },
      ]) {
        res.write(`data: ${JSON.stringify(event)}\n\n`);
      }
      res.end('data: [DONE]\n\n');
      return;
    }
    send(
      res,
      200,
      {},
      {
        id,
        object: 'chat.completion',
        created: 1_700_000_000,
        model,
        choices: [{ index: 0, message: { role: 'assistant', content: 'Hello there' }, finish_reason: 'stop' }],
        usage,
      },
    );
  });
  const urls = await listenOnLoopback(server);
  return { ...urls, calls, script, close: () => closeNow(server) };
}

function send(res: ServerResponse, status: number, headers: Record<string, string>, body: unknown): void {
  const text = Buffer.isBuffer(body) ? body : JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)), ...headers });
  res.end(text);
}
