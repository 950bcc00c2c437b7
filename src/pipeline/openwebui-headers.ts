/**
 * Open WebUI's identity headers, on every authenticated route: X-OpenWebUI-Chat-Id (regenerations)
 * and X-OpenWebUI-User-Id (the per-user cache scope, the user budgets and rate limits count for). Open WebUI sends UUIDs (36 bytes); anything
 * much longer is no id of its, and what a client sends there is hashed or remembered per request,
 * so its length is capped.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { errors, type GatewayError } from '../errors.js';

/** Longest X-OpenWebUI-Chat-Id / X-OpenWebUI-User-Id accepted (bytes). */
export const MAX_OPENWEBUI_ID_BYTES = 256;

const CAPPED: ReadonlyArray<[header: string, name: string]> = [
  ['x-openwebui-chat-id', 'X-OpenWebUI-Chat-Id'],
  ['x-openwebui-user-id', 'X-OpenWebUI-User-Id'],
];

/** The 400 for an over-long Open WebUI id header, or undefined when they fit. */
export function overlongOpenWebUiHeader(headers: IncomingHttpHeaders): GatewayError | undefined {
  for (const [header, name] of CAPPED) {
    const value = headers[header];
    if (value === undefined) continue;
    // Node decodes header bytes as latin1: one character per byte.
    const length = typeof value === 'string' ? value.length : value.join(', ').length;
    if (length > MAX_OPENWEBUI_ID_BYTES) return errors.headerTooLong(name, MAX_OPENWEBUI_ID_BYTES);
  }
  return undefined;
}
