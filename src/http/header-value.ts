/**
 * A client-chosen text (a model id) as a response header value. Node's writeHead throws on a
 * character outside what HTTP allows in a header, and a model id is whatever the client sent:
 * one with a control character or a non-Latin-1 letter would otherwise turn an answer into an
 * exception. Every real id is printable ASCII and passes unchanged; any other is percent-encoded
 * (as encodeURIComponent does), so the header still names it without ambiguity.
 */
export function headerSafe(value: string): string {
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i);
    if (code < 0x20 || code > 0x7e) return encodeURIComponent(value);
  }
  return value;
}
