/** GET /metrics in Prometheus text format, behind METRICS_TOKEN when one is set. */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { bearer } from '../auth.js';
import { errors } from '../errors.js';
import type { GatewayMetrics } from '../metrics.js';

export function registerMetricsRoute(app: FastifyInstance, metrics: GatewayMetrics, token: string | undefined): void {
  const expected = token === undefined ? undefined : createHash('sha256').update(token).digest();
  app.get('/metrics', async (request, reply) => {
    if (expected) {
      const presented = bearer(request.headers.authorization);
      const ok = presented !== undefined && timingSafeEqual(createHash('sha256').update(presented).digest(), expected);
      if (!ok) throw errors.metricsUnauthorized();
    }
    const text = await metrics.registry.metrics();
    return reply.type(metrics.registry.contentType).send(text);
  });
}
