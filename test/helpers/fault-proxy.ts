/**
 * A proxy in front of a provider double (the fake upstream) whose completion answers a test can
 * break on demand, the way a failing provider breaks them: the connection reset before any
 * answer, no answer at all, a 5xx, or a 200 cut off mid-way (a stream after a few events, a JSON
 * body half-way). The switch is a field: set `fault`, and every completion call from then on
 * meets it; set it back to undefined and answers pass through untouched. Model lists always pass.
 */
import { request, type IncomingMessage, type ServerResponse } from 'node:http';
import { closeNow, createWholeBodyServer, listenOnLoopback, type ProviderUrls } from './provider-double-server.js';

export type UpstreamFault =
  /** The socket destroyed once the request arrived: no status line ever. */
  | 'reset'
  /** The request read, then nothing: no headers, the socket left open. */
  | 'hang'
  /** A 500 with OpenAI's error body (`serverErrorBody` changes the body). */
  | 'server-error'
  /** The upstream's 200 passed on, then the socket destroyed: after `cutAfterEvents` SSE events, or half a JSON body. */
  | 'cut';

export interface FaultProxy extends ProviderUrls {
  /** The fault every completion call meets from now on; undefined: pass through. */
  fault: UpstreamFault | undefined;
  /** 'cut': how many whole SSE events (the role event included) pass before the cut. */
  cutAfterEvents: number;
  /** 'server-error': the status and body sent (OpenAI's shape by default). */
  serverError: { status: number; contentType: string; body: string };
  /** Completion calls seen, and how many of them met a fault. */
  readonly completionCalls: number;
  readonly faulted: number;
  /** Completion calls held open by 'hang' right now. */
  readonly hanging: number;
  close(): Promise<void>;
}

const COMPLETION_PATH = /\/(chat\/completions|completions|embeddings)$/;
/** Long enough for the bytes before a cut to have left the gateway before the connection breaks. */
const CUT_PAUSE_MS = 25;

export const OPENAI_SERVER_ERROR = {
  status: 500,
  contentType: 'application/json',
  body: JSON.stringify({
    error: { message: 'The server had an error while processing your request. Sorry about that!', type: 'server_error', param: null, code: null },
  }),
};

export async function startFaultProxy(targetUrl: string): Promise<FaultProxy> {
  const target = new URL(targetUrl);
  const held = new Set<ServerResponse>();
  let completionCalls = 0;
  let faulted = 0;

  const server = createWholeBodyServer((req, res, body) => {
    const completion = req.method === 'POST' && COMPLETION_PATH.test((req.url ?? '').split('?')[0] ?? '');
    const fault = completion ? proxy.fault : undefined;
    if (completion) completionCalls++;
    if (fault) faulted++;
    switch (fault) {
      case 'reset':
        req.socket.destroy();
        return;
      case 'hang':
        held.add(res);
        res.on('close', () => held.delete(res));
        return;
      case 'server-error': {
        const { status, contentType, body: text } = proxy.serverError;
        res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(text) });
        res.end(text);
        return;
      }
      default:
        forward(req, body, res, fault === 'cut');
    }
  });

  function forward(req: IncomingMessage, body: Buffer, res: ServerResponse, cut: boolean): void {
    const upstream = request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      if (!cut || answer.statusCode !== 200) {
        answer.pipe(res);
        return;
      }
      const stream = String(answer.headers['content-type'] ?? '').includes('event-stream');
      const length = Number(answer.headers['content-length'] ?? 0);
      let passed = 0;
      let pending = '';
      let done = false;
      const cutNow = (): void => {
        done = true;
        answer.destroy();
        setTimeout(() => res.destroy(), CUT_PAUSE_MS);
      };
      answer.on('data', (chunk: Buffer) => {
        if (done) return;
        if (!stream) {
          // Half of a JSON body, then nothing: the framing says more was coming.
          res.write(chunk.subarray(0, Math.max(1, Math.floor((length || chunk.length) / 2))));
          cutNow();
          return;
        }
        pending += chunk.toString('latin1');
        let end: number;
        while (!done && (end = pending.indexOf('\n\n')) >= 0) {
          res.write(Buffer.from(pending.slice(0, end + 2), 'latin1'));
          pending = pending.slice(end + 2);
          if (++passed >= proxy.cutAfterEvents) cutNow();
        }
      });
      answer.on('end', () => {
        if (!done) res.end(Buffer.from(pending, 'latin1'));
      });
    });
    upstream.on('error', () => res.destroy());
    res.on('close', () => {
      if (!res.writableFinished) upstream.destroy();
    });
    upstream.end(body);
  }

  const proxy: FaultProxy = {
    ...(await listenOnLoopback(server)),
    fault: undefined,
    cutAfterEvents: 3,
    serverError: { ...OPENAI_SERVER_ERROR },
    get completionCalls() {
      return completionCalls;
    },
    get faulted() {
      return faulted;
    },
    get hanging() {
      return held.size;
    },
    async close() {
      for (const res of held) res.destroy();
      await closeNow(server);
    },
  };
  return proxy;
}
