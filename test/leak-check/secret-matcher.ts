/**
 * Finds secrets (provider keys, client keys, tokens, passwords) in text the gateway emitted.
 * A secret counts as leaked when the text holds:
 * - the secret itself, or its URL-encoded or JSON-escaped form, or the base64 of the secret or
 *   of `Bearer <secret>` (base64 only where it starts on a 3-byte boundary of the encoded text,
 *   as when a whole header value is encoded; the gateway encodes nothing, so this is a backstop),
 *   or its hex; and bytes logged as a JSON array of numbers (pino writes a Buffer as
 *   {"type":"Buffer","data":[80,79,83,84,…]}: the raw request bytes of a parser error) are
 *   decoded and searched too;
 * - any 12 or more consecutive characters of it (a truncated quote: "sk-proj-abcd1234…"), when
 *   that run holds at least 6 different characters, so a secret padded with "aaaa…" or "0000…"
 *   is not found in every run of a's or zeros;
 * - OpenAI's masked quoting, as in "Incorrect API key provided: sk-proj-********wxyz": its first
 *   8 characters, then up to 200 characters with no space or quote, then its last 4 (secrets of
 *   13 characters or more, so prefix and suffix do not overlap).
 * Secrets shorter than 8 characters are not registered: "c1" or "sk-a" would be found in
 * ordinary text. Matching is case-sensitive, as keys are.
 */
import { createHash } from 'node:crypto';

export interface RegisteredSecret {
  value: string;
  /** Where the test configured it, e.g. "GATEWAY_API_KEYS of startGateway". */
  origin: string;
}

export type MatchRule = 'exact' | 'encoded' | 'substring' | 'masked';

export interface SecretMatch {
  secret: RegisteredSecret;
  rule: MatchRule;
  start: number;
  end: number;
}

export const MIN_SECRET_LENGTH = 8;
const WINDOW = 12;
const BLOCK = 6;
const MIN_DISTINCT = 6;
const MASK_PREFIX = 8;
const MASK_SUFFIX = 4;
const MASK_GAP = 200;
/** A JSON array of at least 8 byte values: a serialised Buffer. */
const BYTE_ARRAY = /\[(\d{1,3}(?:,\d{1,3}){7,})\]/g;

interface BlockAt {
  secret: RegisteredSecret;
  offset: number;
}

function distinctCharacters(text: string): number {
  return new Set(text).size;
}

function allIndexes(text: string, needle: string): number[] {
  const found: number[] = [];
  for (let at = text.indexOf(needle); at !== -1; at = text.indexOf(needle, at + 1)) found.push(at);
  return found;
}

export class SecretMatcher {
  readonly secrets: RegisteredSecret[] = [];
  private readonly known = new Map<string, RegisteredSecret>();
  /** Other spellings of a secret: encoded forms, each with the secret it stands for. */
  private readonly spellings: Array<{ text: string; secret: RegisteredSecret; rule: MatchRule }> = [];
  /**
   * Every 12-character run of a secret contains one of its 6-character blocks at offsets 0, 6,
   * 12… (a run of 12 always covers a whole aligned block), so finding the blocks and growing
   * each hit in both directions finds every such run with a few indexOf calls per text.
   */
  private readonly blocks = new Map<string, BlockAt[]>();

  /** Registers a secret; false when it is too short to look for or already known. */
  add(value: string, origin: string): boolean {
    if (value.length < MIN_SECRET_LENGTH || this.known.has(value)) return false;
    const secret: RegisteredSecret = { value, origin };
    this.known.set(value, secret);
    this.secrets.push(secret);
    this.spellings.push({ text: value, secret, rule: 'exact' });
    const encodings = [
      encodeURIComponent(value),
      JSON.stringify(value).slice(1, -1),
      Buffer.from(value).toString('base64').replace(/=+$/, ''),
      Buffer.from(`Bearer ${value}`).toString('base64').replace(/=+$/, ''),
      Buffer.from(value).toString('hex'),
    ];
    for (const text of new Set(encodings)) if (text !== value) this.spellings.push({ text, secret, rule: 'encoded' });
    for (let offset = 0; offset + BLOCK <= value.length && value.length >= WINDOW; offset += BLOCK) {
      const block = value.slice(offset, offset + BLOCK);
      const list = this.blocks.get(block) ?? [];
      list.push({ secret, offset });
      this.blocks.set(block, list);
    }
    return true;
  }

  has(value: string): boolean {
    return this.known.has(value);
  }

  /** Every leak in `text`, one per place. */
  find(text: string): SecretMatch[] {
    const matches = this.findIn(text);
    if (text.includes('[')) {
      for (const array of text.matchAll(BYTE_ARRAY)) {
        const bytes = (array[1] ?? '').split(',').map(Number);
        if (bytes.some((byte) => byte > 255)) continue;
        const start = array.index;
        const end = start + array[0].length;
        for (const inner of this.findIn(Buffer.from(bytes).toString('latin1'))) matches.push({ secret: inner.secret, rule: 'encoded', start, end });
      }
    }
    return outermost(matches);
  }

  private findIn(text: string): SecretMatch[] {
    const matches: SecretMatch[] = [];
    const seen = new Set<string>();
    const push = (match: SecretMatch) => {
      const id = `${match.secret.value}\u0000${match.start}`;
      if (seen.has(id)) return;
      seen.add(id);
      matches.push(match);
    };
    for (const { text: spelling, secret, rule } of this.spellings) {
      for (const at of allIndexes(text, spelling)) push({ secret, rule, start: at, end: at + spelling.length });
    }
    for (const [block, places] of this.blocks) {
      for (const at of allIndexes(text, block)) {
        for (const { secret, offset } of places) {
          const match = this.grow(text, at, secret, offset);
          if (match) push(match);
        }
      }
    }
    for (const secret of this.secrets) {
      const match = this.masked(text, secret);
      if (match) push(match);
    }
    return matches;
  }

  /** The longest run of `secret` around its block found at `at`, when it is long and varied enough. */
  private grow(text: string, at: number, secret: RegisteredSecret, offset: number): SecretMatch | undefined {
    const value = secret.value;
    let left = 0;
    while (at - left > 0 && offset - left > 0 && text[at - left - 1] === value[offset - left - 1]) left++;
    let right = BLOCK;
    while (at + right < text.length && offset + right < value.length && text[at + right] === value[offset + right]) right++;
    if (left + right < WINDOW) return undefined;
    const start = at - left;
    const end = at + right;
    if (distinctCharacters(text.slice(start, end)) < MIN_DISTINCT) return undefined;
    return { secret, rule: end - start === value.length ? 'exact' : 'substring', start, end };
  }

  private masked(text: string, secret: RegisteredSecret): SecretMatch | undefined {
    const value = secret.value;
    if (value.length <= MASK_PREFIX + MASK_SUFFIX) return undefined;
    const prefix = value.slice(0, MASK_PREFIX);
    const suffix = value.slice(-MASK_SUFFIX);
    for (const at of allIndexes(text, prefix)) {
      const from = at + MASK_PREFIX;
      let gap = 0;
      while (gap <= MASK_GAP && from + gap < text.length) {
        if (text.startsWith(suffix, from + gap)) return { secret, rule: 'masked', start: at, end: from + gap + MASK_SUFFIX };
        const next = text[from + gap];
        if (next === ' ' || next === '"' || next === '\n' || next === '\t' || next === "'") break;
        gap++;
      }
    }
    return undefined;
  }

  /** `text` around a match, every registered secret in it masked, for a report. */
  excerpt(text: string, match: SecretMatch, around = 80): string {
    const from = Math.max(0, match.start - around);
    const to = Math.min(text.length, match.end + around);
    let piece = `${from > 0 ? '…' : ''}${text.slice(from, match.start)}«MASKED ${match.rule} ${hint(match.secret.value)}»${text.slice(match.end, to)}${to < text.length ? '…' : ''}`;
    for (const secret of this.secrets) piece = piece.split(secret.value).join(`«${hint(secret.value)}»`);
    return piece.replace(/[\r\n]+/g, '⏎');
  }
}

/**
 * One finding per place: keys sharing a prefix ("sk-test-openai-key-one…", "…-two…") would
 * otherwise report the run they share inside the whole key that leaked.
 */
function outermost(matches: SecretMatch[]): SecretMatch[] {
  const widest = [...matches].sort((a, b) => a.start - b.start || b.end - a.end);
  const kept: SecretMatch[] = [];
  for (const match of widest) {
    const last = kept.at(-1);
    if (last && match.start >= last.start && match.end <= last.end) continue;
    kept.push(match);
  }
  return kept;
}

/** What identifies a secret in a report without spelling it out: its first 4 characters, length and a hash. */
export function hint(value: string): string {
  return `${value.slice(0, 4)}…(${value.length} chars, sha256 ${createHash('sha256').update(value).digest('hex').slice(0, 6)})`;
}
