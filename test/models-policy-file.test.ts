/**
 * MODELS_FILE's format and meaning: what a valid file means (aliases, allow globs, fallbacks per
 * model and `*`), every way a file can be wrong refused with one line naming the file and the
 * fault, and a gateway process given a bad file refusing to start with that one line.
 */
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { ModelPolicy } from '../src/models-policy/model-policy.js';
import { parseModelsFile } from '../src/models-policy/models-file.js';
import { runGatewayProcess } from './helpers/gateway-process.js';
import { writeModelsFile } from './helpers/models-file.js';

const parse = (value: unknown): ModelPolicy => parseModelsFile('/etc/models.json', typeof value === 'string' ? value : JSON.stringify(value));

const SPEC_EXAMPLE = {
  aliases: { fast: 'groq/llama-3.1-8b-instant', smart: 'gpt-4o' },
  allow: ['gpt-4o-mini', 'gpt-4o', 'llama-*', 'text-embedding-3-small'],
  fallbacks: { 'gpt-4o-mini': ['groq/llama-3.3-70b-versatile'], '*': ['gpt-4o-mini'] },
};

describe('a valid MODELS_FILE', () => {
  const policy = parse(SPEC_EXAMPLE);

  it('resolves an alias to its target, whatever the allow list says', () => {
    expect(policy.resolve('fast')).toBe('groq/llama-3.1-8b-instant');
    expect(policy.resolve('smart')).toBe('gpt-4o');
  });

  it('serves only ids the allow globs match (a forced prefix aside), refusing the rest', () => {
    expect(policy.resolve('gpt-4o-mini')).toBe('gpt-4o-mini');
    expect(policy.resolve('llama-3.3-70b-versatile')).toBe('llama-3.3-70b-versatile');
    expect(policy.resolve('groq/llama-3.3-70b-versatile')).toBe('groq/llama-3.3-70b-versatile');
    for (const refused of ['gpt-4o-2024-08-06', 'whisper-1', 'gpt-4', 'o1', 'xllama-3', 'openai/gpt-oss-120b', 'GPT-4O-MINI']) {
      expect(policy.resolve(refused), refused).toBeUndefined();
    }
  });

  it('treats glob metacharacters other than * literally', () => {
    const dotted = parse({ allow: ['gpt-4.1*', 'a+b'] });
    expect(dotted.isAllowed('gpt-4.1-mini')).toBe(true);
    expect(dotted.isAllowed('gpt-4x1-mini')).toBe(false);
    expect(dotted.isAllowed('a+b')).toBe(true);
    expect(dotted.isAllowed('aab')).toBe(false);
  });

  it('gives a model its own fallback list, else the list of "*" (aliases in a list replaced by their targets)', () => {
    expect(policy.fallbacksOf('gpt-4o-mini', 'gpt-4o-mini')).toEqual(['groq/llama-3.3-70b-versatile']);
    expect(policy.fallbacksOf('smart', 'gpt-4o')).toEqual(['gpt-4o-mini']);
    expect(parse({ aliases: { fast: 'llama-3.1-8b-instant' }, fallbacks: { 'gpt-4o': ['fast'] } }).fallbacksOf('gpt-4o', 'gpt-4o')).toEqual([
      'llama-3.1-8b-instant',
    ]);
    expect(parse({ fallbacks: { 'gpt-4o': ['gpt-4o-mini'] } }).fallbacksOf('llama-3', 'llama-3')).toEqual([]);
  });

  it('lists the allowed models and every alias (owned by "gateway")', () => {
    const listed = policy.listed(
      ['gpt-4o-mini', 'whisper-1', 'llama-3.3-70b-versatile', 'text-embedding-3-large'].map((id) => ({
        id,
        object: 'model' as const,
        created: 1,
        owned_by: 'x',
      })),
    );
    expect(listed.map((m) => [m.id, m.owned_by])).toEqual([
      ['gpt-4o-mini', 'x'],
      ['llama-3.3-70b-versatile', 'x'],
      ['fast', 'gateway'],
      ['smart', 'gateway'],
    ]);
  });

  it('changes nothing when empty', () => {
    const empty = parse({});
    expect(empty.resolve('anything-at-all')).toBe('anything-at-all');
    expect(empty.fallbacksOf('gpt-4o', 'gpt-4o')).toEqual([]);
    const models = [{ id: 'a', object: 'model' as const, created: 0, owned_by: 'x' }];
    expect(empty.listed(models)).toBe(models);
    expect(ModelPolicy.empty().resolve('x')).toBe('x');
  });

  it('serves nothing but the aliases with an empty allow list', () => {
    const onlyAliases = parse({ aliases: { chat: 'gpt-4o-mini' }, allow: [] });
    expect(onlyAliases.resolve('chat')).toBe('gpt-4o-mini');
    expect(onlyAliases.resolve('gpt-4o-mini')).toBeUndefined();
  });
});

describe('the documented examples', () => {
  it('deploy/models.example.json is valid: OpenAI and Groq fall back to each other', async () => {
    const example = parse(await readFile(new URL('../deploy/models.example.json', import.meta.url), 'utf8'));
    expect(example.fallbacksOf('gpt-4o-mini', 'gpt-4o-mini')).toEqual(['groq/llama-3.3-70b-versatile']);
    expect(example.fallbacksOf('llama-3.3-70b-versatile', 'llama-3.3-70b-versatile')).toEqual(['openai/gpt-4o-mini']);
    expect(example.resolve('fast')).toBe('groq/llama-3.1-8b-instant');
    expect(example.resolve('whisper-1')).toBeUndefined();
  });

  it('every JSON example of the README’s model policy section and .env.example is valid', async () => {
    const readme = await readFile(new URL('../README.md', import.meta.url), 'utf8');
    const section = readme.slice(readme.indexOf('## Model policy'), readme.indexOf('\n## ', readme.indexOf('## Model policy') + 1));
    const blocks = [...section.matchAll(/```json\n([\s\S]*?)```/g)].map((match) => match[1]!);
    expect(blocks.length).toBeGreaterThan(0);
    for (const block of blocks) expect(() => parse(block)).not.toThrow();
    const envExample = await readFile(new URL('../.env.example', import.meta.url), 'utf8');
    const line = envExample.split('\n').find((text) => text.startsWith('# {"aliases"'));
    expect(() => parse(line!.slice(2))).not.toThrow();
  });
});

describe('a MODELS_FILE that cannot be used is refused with one line naming the file and the fault', () => {
  const cases: Array<[string, unknown, RegExp]> = [
    ['not JSON', '{"aliases": {', /not valid JSON/],
    ['not an object', '[1,2]', /must be a JSON object/],
    ['an unknown field', { alias: {} }, /unknown field "alias"; allowed: aliases, allow, fallbacks/],
    ['aliases not an object', { aliases: ['fast'] }, /"aliases" must be an object/],
    ['an alias without a target', { aliases: { fast: '' } }, /"aliases"\."fast" must be a model id string/],
    ['an alias with a number', { aliases: { fast: 3 } }, /"aliases"\."fast" must be a model id string/],
    ['an alias named "*"', { aliases: { '*': 'gpt-4o' } }, /alias "\*" is not a usable name/],
    ['an alias of an alias', { aliases: { a: 'b', b: 'gpt-4o' } }, /"aliases"\."a" points to another alias \("b"\)/],
    ['allow not an array', { allow: 'gpt-*' }, /"allow" must be an array/],
    ['an allow entry with whitespace', { allow: ['gpt 4o'] }, /"allow"\[0\] must be a model id or glob/],
    ['fallbacks not an object', { fallbacks: [] }, /"fallbacks" must be an object/],
    ['a fallback list not an array', { fallbacks: { 'gpt-4o': 'gpt-4o-mini' } }, /"fallbacks"\."gpt-4o" must be an array/],
    ['a fallback that is not an id', { fallbacks: { 'gpt-4o': [null] } }, /"fallbacks"\."gpt-4o"\[0\] must be a model id/],
    ['a model falling back to itself', { fallbacks: { 'gpt-4o': ['gpt-4o'] } }, /"fallbacks"\."gpt-4o" lists the model itself/],
  ];
  it.each(cases)('%s', (_name, content, message) => {
    expect(() => parse(content)).toThrow(message);
    expect(() => parse(content)).toThrow(/^MODELS_FILE \/etc\/models\.json: /);
  });
});

describe('the gateway process', () => {
  it('refuses to start with a bad MODELS_FILE, in one line naming it and the fault', async () => {
    const models = await writeModelsFile({ aliases: { fast: ['llama'] } });
    const { code, stderr } = await runGatewayProcess({ MODELS_FILE: models.path, OPENAI_API_KEYS: 'sk-fake-never-used-0000' });
    expect(code).toBe(1);
    expect(stderr.trim().split('\n')).toEqual([
      `gateway: configuration error: MODELS_FILE ${models.path}: "aliases"."fast" must be a model id string (non-empty, no whitespace)`,
    ]);
  });

  it('refuses to start with a MODELS_FILE that does not exist', async () => {
    const { code, stderr } = await runGatewayProcess({ MODELS_FILE: '/nonexistent/models.json', OPENAI_API_KEYS: 'sk-fake-never-used-0000' });
    expect(code).toBe(1);
    expect(stderr.trim()).toBe('gateway: configuration error: MODELS_FILE /nonexistent/models.json: cannot be read (ENOENT)');
  });
});
