import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keysFromEnv } from '../src/keys/env-keys.js';
import { KeysFileError, readKeysFile } from '../src/keys/keys-file.js';

const SECRET = 'sk-secret-value-that-must-not-leak-0123456789';

describe('keysFromEnv', () => {
  it('reads comma-separated lists and single keys, trimmed, deduplicated, without empties', () => {
    const env = {
      OPENAI_API_KEYS: ' sk-a , sk-b,,sk-a ',
      OPENAI_API_KEY: 'sk-c',
      GROQ_API_KEY: ' gsk_1 ',
    };
    expect(keysFromEnv(env)).toEqual({ openai: ['sk-a', 'sk-b', 'sk-c'], groq: ['gsk_1'] });
  });

  it('gives empty lists when nothing is set', () => {
    expect(keysFromEnv({})).toEqual({ openai: [], groq: [] });
    expect(keysFromEnv({ GROQ_API_KEYS: ' , ' })).toEqual({ openai: [], groq: [] });
  });

  it('refuses a key with inner whitespace, naming the variable but not the value', () => {
    const attempt = (): unknown => keysFromEnv({ GROQ_API_KEYS: `gsk_ok,${SECRET} tail` });
    expect(attempt).toThrow(/GROQ_API_KEYS: entry 2/);
    try {
      attempt();
    } catch (error) {
      expect(String((error as Error).message)).not.toContain(SECRET.slice(0, 10));
    }
  });
});

describe('readKeysFile', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'keys-source-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function fileWith(name: string, content: string): Promise<string> {
    const path = join(dir, name);
    await writeFile(path, content);
    return path;
  }

  it('reads both providers, trimmed and deduplicated', async () => {
    const path = await fileWith('ok.json', JSON.stringify({ openai: [' sk-1', 'sk-2', 'sk-1'], groq: ['gsk_1'] }));
    expect(await readKeysFile(path)).toEqual({ openai: ['sk-1', 'sk-2'], groq: ['gsk_1'] });
  });

  it('treats a missing provider as no keys', async () => {
    const path = await fileWith('groq-only.json', JSON.stringify({ groq: ['gsk_1'] }));
    expect(await readKeysFile(path)).toEqual({ openai: [], groq: ['gsk_1'] });
  });

  it.each([
    ['not JSON', `{"openai":["${SECRET}"`, /not valid JSON/],
    ['a bare key', SECRET, /not valid JSON/],
    ['an array', JSON.stringify([SECRET]), /must be a JSON object/],
    ['null', 'null', /must be a JSON object/],
    ['a string instead of an array', JSON.stringify({ openai: SECRET }), /"openai" must be an array/],
    ['a number in the list', JSON.stringify({ groq: [SECRET, 5] }), /"groq"\[1\] must be a non-empty key string/],
    ['an empty key', JSON.stringify({ openai: [SECRET, '  '] }), /"openai"\[1\]/],
    ['a key with a space', JSON.stringify({ openai: [`${SECRET} x`] }), /"openai"\[0\]/],
    ['an unknown provider', JSON.stringify({ OpenAI: [SECRET] }), /unknown field "OpenAI"/],
    ['a key as a field name', JSON.stringify({ [SECRET]: [] }), /unknown field \(name not shown\)/],
  ])('refuses %s without quoting the file', async (_label, content, message) => {
    const path = await fileWith('bad.json', content);
    const error = await readKeysFile(path).then(
      () => undefined,
      (caught: unknown) => caught,
    );
    expect(error).toBeInstanceOf(KeysFileError);
    const text = `${(error as Error).message} ${String((error as Error).cause ?? '')}`;
    expect(text).toMatch(message);
    expect(text).toContain(path);
    expect(text).not.toContain(SECRET.slice(0, 10));
  });

  it('names the reason when the file cannot be read', async () => {
    await expect(readKeysFile(join(dir, 'absent.json'))).rejects.toThrow(/cannot be read \(ENOENT\)/);
  });
});
