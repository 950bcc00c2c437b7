/**
 * Which Responses API requests the cache must leave alone. A `background: true` request is
 * answered with a queued response to poll, not with an answer; a request in a `conversation`
 * reads and appends to a conversation the provider keeps, so the same body means a different
 * context each turn. Both go upstream uncached, every time.
 *
 * `previous_response_id` is cached like any other field: it names a response the provider
 * stored, which never changes once made, so the same id with the same input is the same request.
 */
export function keepsProviderState(fields: Record<string, unknown>): boolean {
  return fields['background'] === true || (fields['conversation'] !== undefined && fields['conversation'] !== null);
}
