/**
 * GET /admin/usage: spend, requests and refusals of the current UTC day and month, for the
 * gateway and per user (usage-report.ts), behind METRICS_TOKEN when one is set (the operator's
 * token, not a client key). `?top=N` bounds the users listed (default 50, at most 1000).
 */
import type { FastifyInstance } from 'fastify';
import { errors } from '../errors.js';
import type { LimitsConfig } from '../limits/limits-config.js';
import type { Limits } from '../limits/limits.js';
import { DEFAULT_TOP_USERS, MAX_TOP_USERS, usageReport } from '../limits/usage-report.js';
import { metricsTokenCheck } from './metrics.js';

export const ADMIN_USAGE_PATH = '/admin/usage';

export function registerAdminUsageRoute(app: FastifyInstance, limits: Limits, config: LimitsConfig, token: string | undefined): void {
  const check = metricsTokenCheck(token);
  app.get(ADMIN_USAGE_PATH, async (request, reply) => {
    check(request.headers.authorization);
    const top = topOf((request.query as Record<string, unknown> | undefined)?.top);
    const report = await usageReport(limits, config, top);
    return reply.header('cache-control', 'no-store').type('application/json').send(report);
  });
}

function topOf(raw: unknown): number {
  if (raw === undefined) return DEFAULT_TOP_USERS;
  if (typeof raw !== 'string' || !/^\d+$/.test(raw) || Number(raw) > MAX_TOP_USERS) {
    throw errors.invalidRequest(`"top" must be a whole number from 0 to ${MAX_TOP_USERS}.`);
  }
  return Number(raw);
}
