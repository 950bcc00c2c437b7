/**
 * Who a request is counted for: Open WebUI's X-OpenWebUI-User-Id (its users share one gateway
 * key), else the client key, named by a short hash (`key:…`, what /admin/usage shows and what
 * LIMITS_FILE may name), never by the key itself; `anonymous` when neither is sent.
 */
import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';

/** 72 bits of the key's SHA-256: tells a deployment's keys apart, says nothing of the key. */
const KEY_ID_CHARS = 12;
/** Client keys are few (GATEWAY_API_KEYS); with auth off any string may come, so the memo stays small. */
const MAX_REMEMBERED_KEYS = 64;

const keyIds = new Map<string, string>();

export function userOf(headers: IncomingHttpHeaders, clientKey: string | undefined): string {
  const header = headers['x-openwebui-user-id'];
  const id = Array.isArray(header) ? header[0] : header;
  if (id) return id;
  if (clientKey === undefined) return 'anonymous';
  let keyId = keyIds.get(clientKey);
  if (keyId === undefined) {
    keyId = `key:${createHash('sha256').update(clientKey).digest('base64url').slice(0, KEY_ID_CHARS)}`;
    if (keyIds.size >= MAX_REMEMBERED_KEYS) keyIds.clear();
    keyIds.set(clientKey, keyId);
  }
  return keyId;
}
