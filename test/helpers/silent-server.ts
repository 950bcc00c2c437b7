/**
 * A loopback TCP server that accepts connections and never answers: a provider whose response
 * headers never come (the gateway's headers timeout ends the wait). Counts the connections.
 */
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';

export interface SilentServer {
  url: string;
  connections: number;
  close(): Promise<void>;
}

export async function startSilentServer(): Promise<SilentServer> {
  const sockets = new Set<Socket>();
  const silent: SilentServer = { url: '', connections: 0, close: () => Promise.resolve() };
  const server: Server = createServer((socket) => {
    silent.connections++;
    // Read (and drop) what arrives, or this side would never notice the gateway hanging up.
    socket.resume();
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  silent.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  silent.close = () => {
    for (const socket of sockets) socket.destroy();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return silent;
}

/** A loopback port nothing listens on (bound, then released). */
export async function deadPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}
