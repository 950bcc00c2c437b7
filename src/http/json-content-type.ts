/**
 * Whether Fastify would read a body with this Content-Type with its JSON parser. The cached
 * routes' pipeline reads its bodies without Fastify, and must accept exactly what Fastify
 * accepts on every other route (and accepted on the cached routes before). Rather than a
 * second rule that can drift (the first one took `application/json garbage` for JSON), this
 * asks the parser Fastify itself uses on every request (lib/content-type.js, the media type
 * grammar of RFC 9110 section 8.3.1): Fastify then runs its `application/json` parser for a
 * valid header whose media type is application/json, whatever its parameters, and answers 415
 * for an invalid one (the pipeline answers 415 for any other media type too, text/plain
 * included). `ContentType.from` caches its answers by header value, so a hit pays one Map
 * lookup for it.
 */
import { createRequire } from 'node:module';

interface ParsedContentType {
  readonly isValid: boolean;
  /** Lower-cased, as are `subtype` and the parameter names. */
  readonly type: string;
  readonly subtype: string;
}

interface ContentTypeParser {
  from(headerValue: string): ParsedContentType;
}

// Not in Fastify's typed API: loaded by path (the package has no exports map). A Fastify that
// moved it fails at start-up, and test/content-type-agreement.test.ts pins the behaviour.
const ContentType = createRequire(import.meta.url)('fastify/lib/content-type.js') as ContentTypeParser;

export function isJsonContentType(value: string | undefined): boolean {
  if (value === undefined) return false;
  const parsed = ContentType.from(value);
  return parsed.isValid && parsed.type === 'application' && parsed.subtype === 'json';
}
