/**
 * On the way out of every request: the metrics of the contract and one log line (id, route,
 * provider, model, status, cache, duration, bytes). No prompt text, no header, no key.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Accounting } from './accounting.js';
import type { GatewayMetrics } from './metrics.js';

export function observeRequest(request: FastifyRequest, reply: FastifyReply, metrics: GatewayMetrics, accounting: Accounting): void {
  const context = request.gw;
  if (!context) return;
  const status = reply.raw.statusCode;
  const seconds = reply.elapsedTime / 1000;
  const endpoint = context.endpoint;
  const cache = context.cache ?? 'BYPASS';
  if (endpoint !== undefined) {
    metrics.requests.inc({
      endpoint,
      provider: context.provider ?? 'none',
      model: accounting.modelLabel(context.provider, context.model),
      cache,
      status: String(status),
    });
    metrics.requestDuration.observe({ endpoint, cache }, seconds);
    const firstByte = context.writer?.timeToFirstByte;
    if (firstByte !== undefined) {
      // elapsedTime counts from the request's start; the writer stamps the first body byte.
      const ttfb = Math.max(0, seconds - (performance.now() - firstByte) / 1000);
      metrics.timeToFirstByte.observe({ endpoint, cache }, ttfb);
    } else {
      metrics.timeToFirstByte.observe({ endpoint, cache }, seconds);
    }
  }
  const bytes = context.writer?.bytes ?? Number(reply.getHeader('content-length') ?? 0);
  request.log.info(
    {
      method: request.method,
      route: request.routeOptions.url ?? request.url.split('?')[0],
      provider: context.provider,
      model: context.model === undefined ? undefined : accounting.modelLabel(context.provider, context.model),
      status,
      cache: context.cache,
      durationMs: Math.round(reply.elapsedTime * 10) / 10,
      bytes,
      error: context.error?.code,
    },
    'request',
  );
}
