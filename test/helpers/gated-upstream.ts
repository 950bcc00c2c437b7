/**
 * A pass-through proxy in front of the fake upstream that can hold completion answers open: while
 * held, a stream gets its head and first event and then waits, a JSON answer gets its head and
 * waits. Lets a test decide when an upstream call ends (e.g. only after every coalescing joiner
 * has joined) instead of racing a timer on a busy machine.
 */
import { createServer, request, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface GatedUpstream {
  /** The proxy's origin; OpenAI layout at url + '/v1', Groq at url + '/openai/v1'. */
  url: string;
  /** Hold completion answers from now on. */
  hold(): void;
  /** Let every held answer finish, and stop holding. */
  release(): void;
  /** How many completion answers are waiting on the gate right now. */
  readonly waiting: number;
  /** Completion calls that went through, with whether the gateway hung up before the answer ended. */
  calls: Array<{ path: string; aborted: boolean }>;
  close(): Promise<void>;
}

const COMPLETION_PATH = /\/(chat\/completions|completions|embeddings|responses)$/;

export async function startGatedUpstream(targetUrl: string): Promise<GatedUpstream> {
  const target = new URL(targetUrl);
  let holding = false;
  let waiters: Array<() => void> = [];
  const gateOpen = (): Promise<void> => (holding ? new Promise((resolve) => waiters.push(resolve)) : Promise.resolve());

  const calls: GatedUpstream['calls'] = [];
  const server = createServer((req, res) => {
    const call = { path: req.url ?? '', aborted: false };
    if (COMPLETION_PATH.test(call.path)) calls.push(call);
    const upstream = request(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
      (answer: IncomingMessage) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        const gated = holding && COMPLETION_PATH.test(req.url ?? '');
        if (!gated) {
          answer.pipe(res);
          return;
        }
        const stream = String(answer.headers['content-type'] ?? '').includes('event-stream');
        const opened = gateOpen();
        let head = stream ? '' : undefined; // streams: pass the first event through
        const held: Buffer[] = [];
        answer.on('data', (chunk: Buffer) => {
          if (head === undefined) {
            held.push(chunk);
            return;
          }
          head += chunk.toString('latin1');
          const end = head.indexOf('\n\n');
          if (end < 0) return;
          res.write(Buffer.from(head.slice(0, end + 2), 'latin1'));
          held.push(Buffer.from(head.slice(end + 2), 'latin1'));
          head = undefined;
        });
        answer.on('end', () => {
          void opened.then(() => {
            if (head) held.unshift(Buffer.from(head, 'latin1'));
            res.end(Buffer.concat(held));
          });
        });
      },
    );
    upstream.on('error', () => res.destroy());
    res.on('close', () => {
      if (res.writableFinished) return;
      call.aborted = true;
      upstream.destroy(); // pass the gateway's abort on to the fake
    });
    req.pipe(upstream);
  });

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const release = (): void => {
    holding = false;
    const pending = waiters;
    waiters = [];
    for (const open of pending) open();
  };
  return {
    url: `http://127.0.0.1:${port}`,
    hold() {
      holding = true;
    },
    release,
    get waiting() {
      return waiters.length;
    },
    calls,
    async close() {
      release();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
