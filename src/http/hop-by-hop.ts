/**
 * Hop-by-hop header fields (RFC 9110 section 7.6.1): they describe one connection, not the
 * message, so a gateway that forwards a message must drop them, in both directions. Towards the
 * provider, undici refuses several of them outright (`expect`, `keep-alive`, `upgrade`,
 * `connection`, `transfer-encoding`): forwarding curl's `Expect: 100-continue` turned every
 * upload over 1 MB into a 502. Towards the client, the provider's `connection: keep-alive`
 * would override the client's own `Connection: close` (Node keeps a connection open when a
 * response sets that header), and its `keep-alive: timeout=…` describes a connection the
 * client is not on.
 */

type Headers = Record<string, string | string[] | undefined>;

/**
 * Dropped whether or not `connection` lists them. `expect` is not hop-by-hop by name, but the
 * gateway reads the whole body before forwarding, so the expectation was already met (Node
 * answered the 100 Continue); `proxy-authorization` is meant for this hop only.
 */
const ALWAYS_DROPPED = new Set([
  'connection',
  'proxy-connection',
  'keep-alive',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'expect',
  'proxy-authorization',
  'proxy-authenticate',
  'http2-settings',
]);

/** The field names a `connection` header lists (its connection options), lower-cased. */
function connectionOptions(value: string | string[] | undefined): Set<string> | undefined {
  if (value === undefined) return undefined;
  const names = new Set<string>();
  for (const line of Array.isArray(value) ? value : [value]) {
    for (const token of line.split(',')) {
      const name = token.trim().toLowerCase();
      if (name !== '') names.add(name);
    }
  }
  return names;
}

/**
 * `headers` (lower-case names, as Node and undici give them) without any hop-by-hop field.
 * `connection` is the connection header the message arrived with: a caller may have removed it
 * from `headers` already (reply-from does, for requests), its options still apply.
 */
export function withoutHopByHop(headers: Headers, connection: string | string[] | undefined = headers.connection): Headers {
  const listed = connectionOptions(connection);
  const out: Headers = {};
  for (const name of Object.keys(headers)) {
    if (ALWAYS_DROPPED.has(name) || listed?.has(name)) continue;
    out[name] = headers[name];
  }
  return out;
}
