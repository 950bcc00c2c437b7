/**
 * The framework ceiling: a bare Fastify route (default settings, no logger, no hooks) that parses
 * the same JSON request body the gateway parses and answers a constant JSON body of the same
 * bytes as a cached answer. Nothing the gateway does on a hit can be cheaper than this.
 * Prints `listening <port>` on stdout once it accepts connections.
 */
import { readFileSync } from 'node:fs';
import Fastify from 'fastify';

const answer = readFileSync(process.env.CONSTANT_BODY_FILE ?? '', 'utf8');
const app = Fastify({ logger: false, keepAliveTimeout: 65_000 });
app.post('/v1/chat/completions', async (_request, reply) => reply.type('application/json').send(answer));
process.on('SIGTERM', () => {
  void app.close().then(() => process.exit(0));
});
const address = await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT ?? 0) });
process.stdout.write(`listening ${new URL(address).port}\n`);
