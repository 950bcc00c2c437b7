/**
 * The leak check's matching rules: what counts as a secret found in gateway output, and what
 * must not (ordinary text that happens to share a run of a's with a padded test key).
 */
import { describe, expect, it } from 'vitest';
import { SecretMatcher } from './secret-matcher.js';

// Fake, shaped like a real key; the hyphens keep secret scanners quiet.
const OPENAI_KEY = 'sk-proj-fake-Xq3vT9mB-2nLw7RkP-z4Hc8Ys1-Jd6Fg0Ae';
const PADDED_KEY = 'sk-e2e-openai-alpha-aaaaaaaaaaaaaaaa';

function matcherFor(...secrets: string[]): SecretMatcher {
  const matcher = new SecretMatcher();
  for (const secret of secrets) matcher.add(secret, 'test');
  return matcher;
}

const rules = (matcher: SecretMatcher, text: string) => matcher.find(text).map((match) => match.rule);

describe('found', () => {
  it('the secret itself, anywhere in a line', () => {
    expect(rules(matcherFor(OPENAI_KEY), `{"msg":"upstream","key":"${OPENAI_KEY}"}`)).toEqual(['exact']);
  });

  it('its URL-encoded and JSON-escaped spellings', () => {
    const secret = 'tok/en+with="odd"chars-0123';
    const matcher = matcherFor(secret);
    expect(rules(matcher, `GET /x?t=${encodeURIComponent(secret)}`)).toContain('encoded');
    expect(rules(matcher, JSON.stringify({ token: secret }))).toContain('encoded');
  });

  it('the base64 of the secret and of "Bearer <secret>"', () => {
    const matcher = matcherFor(OPENAI_KEY);
    expect(rules(matcher, `x: ${Buffer.from(`Bearer ${OPENAI_KEY}`).toString('base64')}`)).toEqual(['encoded']);
    expect(rules(matcher, Buffer.from(OPENAI_KEY).toString('base64'))).toEqual(['encoded']);
  });

  it('its hex, and bytes logged as a serialised Buffer (a JSON array of numbers)', () => {
    const matcher = matcherFor(OPENAI_KEY);
    expect(rules(matcher, `raw=${Buffer.from(`x ${OPENAI_KEY}`).toString('hex')}`)).toEqual(['encoded']);
    const rawPacket = Buffer.from(`POST / HTTP/1.1\r\nAuthorization: Bearer ${OPENAI_KEY}\r\n`);
    const line = JSON.stringify({ level: 10, err: { message: 'Parse Error', rawPacket } });
    expect(line).toContain('"rawPacket":{"type":"Buffer","data":[80,79,83,84');
    expect(rules(matcher, line)).toEqual(['encoded']);
  });

  it('any 12 consecutive characters of it (a truncated quote), at its start, middle or end', () => {
    const matcher = matcherFor(OPENAI_KEY);
    for (const from of [0, 7, 20, OPENAI_KEY.length - 12]) {
      expect(rules(matcher, `key "${OPENAI_KEY.slice(from, from + 12)}…" refused`), `from ${from}`).toEqual(['substring']);
    }
  });

  it("OpenAI's masked quoting: the first 8 characters, a mask, the last 4", () => {
    const matcher = matcherFor(OPENAI_KEY, PADDED_KEY);
    const masked = `${OPENAI_KEY.slice(0, 8)}${'*'.repeat(36)}${OPENAI_KEY.slice(-4)}`;
    expect(rules(matcher, `{"error":{"message":"Incorrect API key provided: ${masked}. You can find…"}}`)).toEqual(['masked']);
    expect(rules(matcher, 'Incorrect API key provided: sk-e2e-o***aaaa.')).toEqual(['masked']);
  });

  it('a part of a padded key that holds more than its padding', () => {
    expect(rules(matcherFor(PADDED_KEY), 'quoted: ai-alpha-aaaaaa')).toEqual(['substring']);
  });
});

describe('not found', () => {
  it('11 consecutive characters, or 12 with fewer than 6 different ones (the padding alone)', () => {
    const matcher = matcherFor(OPENAI_KEY, PADDED_KEY);
    expect(matcher.find(`quoted ${OPENAI_KEY.slice(3, 14)} only`)).toEqual([]);
    expect(matcher.find('Echo: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa. The quick brown fox.')).toEqual([]);
  });

  it('prefix and suffix in different words or strings', () => {
    const matcher = matcherFor(OPENAI_KEY);
    expect(matcher.find(`${OPENAI_KEY.slice(0, 8)} and later ${OPENAI_KEY.slice(-4)}`)).toEqual([]);
    expect(matcher.find(`{"a":"${OPENAI_KEY.slice(0, 8)}","b":"${OPENAI_KEY.slice(-4)}"}`)).toEqual([]);
  });

  it('secrets shorter than 8 characters are not registered (they would be found in ordinary text)', () => {
    const matcher = new SecretMatcher();
    expect(matcher.add('sk-a', 'test')).toBe(false);
    expect(matcher.add('c1', 'test')).toBe(false);
    expect(matcher.find('sk-a c1 desk-a')).toEqual([]);
  });
});

it('the excerpt of a finding masks the secret and every other registered one', () => {
  const other = 'gw-client-key-test-3333333333';
  const matcher = matcherFor(OPENAI_KEY, other);
  const text = `{"client":"${other}","provider":"${OPENAI_KEY}"}`;
  const [first] = matcher.find(text).filter((match) => match.secret.value === OPENAI_KEY);
  const excerpt = matcher.excerpt(text, first!);
  expect(excerpt).not.toContain(OPENAI_KEY.slice(0, 12));
  expect(excerpt).not.toContain(other.slice(0, 12));
  expect(excerpt).toContain('«MASKED exact sk-p…(48 chars, sha256 ');
});
