/**
 * A loopback port free right now, for servers that must be told their port up front (redis-server,
 * nginx, a container's published port) or for an address nothing listens on. Another process
 * could take it before it is used; on a test box that race is rare enough.
 */
import { createServer } from 'node:net';

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}
