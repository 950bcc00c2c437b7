/**
 * Two naive prototypes, as calibration on this machine (what a proxy hop and a Redis
 * lookup cost here, before any gateway logic):
 * - NAIVE_MODE=proxy: a Fastify route that forwards the parsed body with undici and streams the
 *   upstream's answer back (no cache, no metrics, no logging);
 * - NAIVE_MODE=redis-hit: a Fastify route that answers a fixed key from Redis (ioredis).
 * Prints `listening <port>` on stdout once it accepts connections.
 */
import Fastify from 'fastify';
import { Redis } from 'ioredis';
import { Pool } from 'undici';

const mode = process.env.NAIVE_MODE;
const app = Fastify({ logger: false, keepAliveTimeout: 65_000 });

if (mode === 'proxy') {
  const upstream = new Pool(process.env.UPSTREAM_URL ?? '', { connections: 256, keepAliveTimeout: 30_000 });
  app.post('/v1/chat/completions', async (request, reply) => {
    const response = await upstream.request({
      method: 'POST',
      path: '/v1/chat/completions',
      headers: { 'content-type': 'application/json', authorization: 'Bearer sk-bench-naive' },
      body: JSON.stringify(request.body),
    });
    const type = response.headers['content-type'];
    return reply
      .code(response.statusCode)
      .type(typeof type === 'string' ? type : 'application/json')
      .send(response.body);
  });
} else if (mode === 'redis-hit') {
  const redis = new Redis(process.env.REDIS_URL ?? '');
  await redis.set('naive:hit', process.env.NAIVE_ANSWER ?? '{}');
  app.post('/v1/chat/completions', async (_request, reply) => reply.type('application/json').send(await redis.getBuffer('naive:hit')));
  app.addHook('onClose', async () => void redis.disconnect());
} else {
  throw new Error(`NAIVE_MODE must be proxy or redis-hit, got ${mode}`);
}

process.on('SIGTERM', () => {
  void app.close().then(() => process.exit(0));
});
const address = await app.listen({ host: '127.0.0.1', port: 0 });
process.stdout.write(`listening ${new URL(address).port}\n`);
