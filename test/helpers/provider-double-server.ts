/**
 * The HTTP side every provider double shares (the fake upstream, the key limiter in front of
 * it): a loopback server that hands on each request with its whole body, the bearer key the
 * request carried, the two providers' base URL layouts, and closing without waiting.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** Where a double listens: its origin, OpenAI's layout at url + /v1 and Groq's at url + /openai/v1. */
export interface ProviderUrls {
  url: string;
  openaiBaseUrl: string;
  groqBaseUrl: string;
}

/** An HTTP server that calls `handle` once a request's whole body has arrived. */
export function createWholeBodyServer(handle: (req: IncomingMessage, res: ServerResponse, body: Buffer) => void): Server {
  return createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => handle(req, res, Buffer.concat(chunks)));
  });
}

/** The key of an `Authorization: Bearer <key>` header, as the providers read it. */
export function bearerKey(req: IncomingMessage): string | undefined {
  const auth = req.headers.authorization;
  return auth?.startsWith('Bearer ') ? auth.slice(7) : undefined;
}

/** Listens on a free loopback port. */
export async function listenOnLoopback(server: Server): Promise<ProviderUrls> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}`;
  return { url, openaiBaseUrl: `${url}/v1`, groqBaseUrl: `${url}/openai/v1` };
}

/** Closes at once, keep-alive connections included: a double never waits for its clients to leave. */
export async function closeNow(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}
