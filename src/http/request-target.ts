/**
 * Every request target is brought to one spelling before anything routes it, so that
 * `/v1/./chat/completions`, `/v1/chat/completions/`, `//v1/chat/completions`,
 * `/v1/chat/%63ompletions` or `POST http://host/v1/chat/completions` are the cached route
 * they name (validated, cached, counted in tokens and cost) and not a passthrough request the
 * provider would read as that route anyway. The cached routes' pipeline, Fastify's router and the URL
 * the passthrough forwards all see the normalised target.
 *
 * Normalisation (RFC 3986 section 6.2.2, on the path only; the query is left as sent):
 * absolute-form reduced to origin-form (RFC 9112 section 3.2.2), percent-encoded unreserved
 * characters decoded, dot segments resolved, repeated slashes collapsed, a trailing slash
 * dropped. Refused with a 400: an encoded `/` (decoding it would change the path's segments,
 * keeping it lets a provider that decodes it see another path than the one routed here) and
 * a `\` (URL parsers, the one that builds the forwarded URL included, read it as `/`).
 */
import type { IncomingMessage } from 'node:http';
import { errors, type GatewayError } from '../errors.js';

const SLASH = 0x2f;
const DOT = 0x2e;
const PERCENT = 0x25;
const QUESTION = 0x3f;
const HASH = 0x23;
const BACKSLASH = 0x5c;
const HEX_PAIR = /^[0-9a-f]{2}$/i;

/** Requests whose target was refused, with the answer; read by the server's first hook. */
const refused = new WeakMap<IncomingMessage, GatewayError>();

/**
 * Rewrites `request.url` to its normal form, or records why it cannot be (targetRefusalOf).
 * An already normal target, the usual case, costs one scan of its path and no allocation.
 */
export function normaliseRequestTarget(request: IncomingMessage): void {
  const target = request.url;
  if (target === undefined || isNormal(target)) return;
  const normal = normalForm(target);
  if (normal === undefined) refused.set(request, errors.invalidRequest('The request path contains an encoded "/" or a "\\", which cannot be routed safely.'));
  else request.url = normal;
}

/** The 400 to answer a request whose target was refused with; undefined for every other. */
export function targetRefusalOf(request: IncomingMessage): GatewayError | undefined {
  return refused.get(request);
}

/** True when the path (up to `?` or `#`) is origin-form with nothing to normalise in it. */
function isNormal(target: string): boolean {
  if (target.charCodeAt(0) !== SLASH) return false;
  let previous = SLASH;
  let i = 1;
  for (; i < target.length; i++) {
    const c = target.charCodeAt(i);
    if (c === QUESTION || c === HASH) break;
    if (c === PERCENT || c === BACKSLASH) return false;
    if (c === SLASH && previous === SLASH) return false;
    if (c === DOT && previous === SLASH && isDotSegment(target, i)) return false;
    previous = c;
  }
  // A trailing slash, except the root's.
  return previous !== SLASH || i === 1;
}

/** A `.` or `..` segment starts at `i`. */
function isDotSegment(target: string, i: number): boolean {
  let end = i + 1;
  if (target.charCodeAt(end) === DOT) end++;
  const next = target.charCodeAt(end);
  return Number.isNaN(next) || next === SLASH || next === QUESTION || next === HASH;
}

/** The target in normal form, undefined when it must be refused; left as is when not a path. */
function normalForm(target: string): string | undefined {
  let originForm = target;
  if (target.charCodeAt(0) !== SLASH) {
    const absolute = /^https?:\/\/[^/?#]*/i.exec(target);
    // Asterisk-form, authority-form or garbage: not a path to normalise; the router refuses it.
    if (!absolute) return target;
    originForm = target.slice(absolute[0].length);
    if (originForm.charCodeAt(0) !== SLASH) originForm = `/${originForm}`;
  }
  const end = pathEnd(originForm);
  const path = decodeUnreserved(originForm.slice(0, end));
  if (path === undefined || path.includes('\\')) return undefined;
  const segments: string[] = [];
  for (const segment of path.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') segments.pop();
    else segments.push(segment);
  }
  return `/${segments.join('/')}${originForm.slice(end)}`;
}

function pathEnd(target: string): number {
  for (let i = 0; i < target.length; i++) {
    const c = target.charCodeAt(i);
    if (c === QUESTION || c === HASH) return i;
  }
  return target.length;
}

/**
 * Percent-encoded unreserved characters (ALPHA, DIGIT, `-`, `.`, `_`, `~`) decoded, every other
 * escape kept as sent; undefined for an encoded `/` or `\`. A malformed escape is kept too:
 * the router answers it with its own 400.
 */
function decodeUnreserved(path: string): string | undefined {
  if (!path.includes('%')) return path;
  let out = '';
  let from = 0;
  for (let i = path.indexOf('%'); i !== -1; i = path.indexOf('%', i + 1)) {
    const hex = path.slice(i + 1, i + 3);
    if (!HEX_PAIR.test(hex)) continue;
    const code = Number.parseInt(hex, 16);
    if (code === SLASH || code === BACKSLASH) return undefined;
    if (!isUnreserved(code)) continue;
    out += path.slice(from, i) + String.fromCharCode(code);
    from = i + 3;
  }
  return out + path.slice(from);
}

function isUnreserved(code: number): boolean {
  return (
    (code >= 0x41 && code <= 0x5a) || // A-Z
    (code >= 0x61 && code <= 0x7a) || // a-z
    (code >= 0x30 && code <= 0x39) || // 0-9
    code === 0x2d || // -
    code === DOT ||
    code === 0x5f || // _
    code === 0x7e // ~
  );
}
