/** GET /metrics in Prometheus text format, behind METRICS_TOKEN when one is set. */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { bearer } from '../auth.js';
import { errors } from '../errors.js';
import type { GatewayMetrics } from '../metrics.js';

/** Throws the 401 unless the request carries METRICS_TOKEN (always passes when none is set). */
export function metricsTokenCheck(token: string | undefined): (authorization: string | undefined) => void {
  const expected = token === undefined ? undefined : createHash('sha256').update(token).digest();
  return (authorization) => {
    if (!expected) return;
    const presented = bearer(authorization);
    const ok = presented !== undefined && timingSafeEqual(createHash('sha256').update(presented).digest(), expected);
    if (!ok) throw errors.metricsUnauthorized();
  };
}

export function registerMetricsRoute(app: FastifyInstance, metrics: GatewayMetrics, token: string | undefined): void {
  const check = metricsTokenCheck(token);
  app.get('/metrics', async (request, reply) => {
    check(request.headers.authorization);
    const text = await metrics.registry.metrics();
    return reply.type(metrics.registry.contentType).send(text);
  });
}
