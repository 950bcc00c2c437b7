/**
 * A Responses API entry in either form: a stored stream is replayed as it was received (the
 * events byte for byte), a stored response object is rendered as its events; a JSON request
 * on a stream-filled entry gets the response its finishing event carries, which is the object
 * the JSON API returns.
 */
import { renderResponseEvents } from '../openai/responses-renderer.js';
import { asResponseObject, FINISHED_EVENT_TYPES } from '../openai/responses-types.js';
import { parseSse } from '../openai/sse-parser.js';
import type { CacheEntry } from './entry.js';

export function responseJsonFromEntry(entry: CacheEntry): Buffer | undefined {
  if (entry.form === 'json') return entry.body;
  const events = parseSse(entry.body);
  for (let i = events.length - 1; i >= 0; i--) {
    const chunk = events[i]?.chunk;
    if (typeof chunk?.['type'] !== 'string' || !FINISHED_EVENT_TYPES.has(chunk['type'])) continue;
    const response = asResponseObject(chunk['response']);
    return response && Buffer.from(JSON.stringify(response));
  }
  return undefined;
}

export function responseEventsFromEntry(entry: CacheEntry): Buffer | undefined {
  if (entry.form === 'sse') return entry.body;
  try {
    const response = asResponseObject(JSON.parse(entry.body.toString('utf8')));
    return response && renderResponseEvents(response);
  } catch {
    return undefined;
  }
}
