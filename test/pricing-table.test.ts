/**
 * The price table and the cost of an answer: the built-in table (dated, plausible, complete for
 * the models the gateway routes by default), the cost formula (cached input at its own rate),
 * PRICES_FILE overriding and extending it, and a bad PRICES_FILE stopping start-up with one line.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { BUILTIN_PRICES, BUILTIN_PRICES_TAKEN_ON } from '../src/pricing/builtin-prices.js';
import { loadPrices, Prices, PricesFileError } from '../src/pricing/prices.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const dir = mkdtempSync(join(tmpdir(), 'gateway-prices-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function pricesFile(name: string, content: string): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

const usd = (n: number) => Math.round(n * 1e12) / 1e12;

describe('the built-in table', () => {
  it('says in its source file on which date it was taken, and that operators should verify it', () => {
    expect(BUILTIN_PRICES_TAKEN_ON).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    const source = readFileSync(join(ROOT, 'src/pricing/builtin-prices.ts'), 'utf8');
    expect(source).toContain(`BUILTIN_PRICES_TAKEN_ON = '${BUILTIN_PRICES_TAKEN_ON}'`);
    expect(source).toMatch(/verify/i);
    expect(source).toContain('PRICES_FILE');
  });

  it('prices the current OpenAI and Groq chat and embedding models', () => {
    const openai = [
      'gpt-5',
      'gpt-5-mini',
      'gpt-5-nano',
      'gpt-4.1',
      'gpt-4.1-mini',
      'gpt-4o',
      'gpt-4o-mini',
      'o3',
      'o4-mini',
      'text-embedding-3-small',
      'text-embedding-3-large',
    ];
    const groq = [
      'llama-3.1-8b-instant',
      'llama-3.3-70b-versatile',
      'openai/gpt-oss-120b',
      'openai/gpt-oss-20b',
      'meta-llama/llama-4-scout-17b-16e-instruct',
      'qwen/qwen3-32b',
      'moonshotai/kimi-k2-instruct-0905',
    ];
    for (const model of openai) expect(BUILTIN_PRICES.openai?.[model], model).toBeDefined();
    for (const model of groq) expect(BUILTIN_PRICES.groq?.[model], model).toBeDefined();
  });

  it('is plausible: every price a finite non-negative number; cached input cheaper than input; output not cheaper than input for chat models', () => {
    for (const [provider, models] of Object.entries(BUILTIN_PRICES)) {
      for (const [model, price] of Object.entries(models ?? {})) {
        const where = `${provider}/${model}`;
        for (const value of [price.input, price.output, price.cachedInput ?? 0]) {
          expect(Number.isFinite(value) && value >= 0, where).toBe(true);
        }
        // USD per 1M tokens: nothing the table holds costs more than $1000 per 1M tokens or is free to read.
        expect(price.input, where).toBeGreaterThan(0);
        expect(price.output, where).toBeLessThanOrEqual(1000);
        if (price.cachedInput !== undefined) expect(price.cachedInput, where).toBeLessThan(price.input);
        if (!model.includes('embedding')) expect(price.output, where).toBeGreaterThanOrEqual(price.input);
        else expect(price.output, where).toBe(0);
      }
    }
  });

  it('holds the published list prices of the flagship models (spot check)', () => {
    expect(BUILTIN_PRICES.openai?.['gpt-4o-mini']).toEqual({ input: 0.15, cachedInput: 0.075, output: 0.6 });
    expect(BUILTIN_PRICES.openai?.['gpt-5']).toEqual({ input: 1.25, cachedInput: 0.125, output: 10 });
    expect(BUILTIN_PRICES.groq?.['llama-3.3-70b-versatile']).toEqual({ input: 0.59, output: 0.79 });
  });
});

describe('Prices.cost', () => {
  const prices = new Prices({
    openai: { 'gpt-x': { input: 2, cachedInput: 0.5, output: 8 }, 'emb-x': { input: 0.1, output: 0 } },
    groq: { 'llama-x': { input: 0.05, output: 0.08 } },
  });

  it('prompt and completion tokens at their rates, per 1M tokens', () => {
    expect(usd(prices.cost('openai', 'gpt-x', { prompt_tokens: 1000, completion_tokens: 500 })!)).toBe(usd((1000 * 2 + 500 * 8) / 1e6));
    expect(usd(prices.cost('groq', 'llama-x', { prompt_tokens: 1_000_000, completion_tokens: 1_000_000 })!)).toBe(0.13);
  });

  it('cached prompt tokens (usage.prompt_tokens_details.cached_tokens) at the cached rate, the rest at the full rate', () => {
    const usage = { prompt_tokens: 1000, completion_tokens: 100, prompt_tokens_details: { cached_tokens: 600 } };
    expect(usd(prices.cost('openai', 'gpt-x', usage)!)).toBe(usd((400 * 2 + 600 * 0.5 + 100 * 8) / 1e6));
  });

  it('without a cached rate, cached tokens cost the full input rate', () => {
    const usage = { prompt_tokens: 1000, completion_tokens: 0, prompt_tokens_details: { cached_tokens: 1000 } };
    expect(usd(prices.cost('groq', 'llama-x', usage)!)).toBe(usd((1000 * 0.05) / 1e6));
  });

  it('never counts more cached tokens than prompt tokens, nor negative or non-numeric counts', () => {
    expect(usd(prices.cost('openai', 'gpt-x', { prompt_tokens: 100, prompt_tokens_details: { cached_tokens: 5000 } })!)).toBe(usd((100 * 0.5) / 1e6));
    expect(prices.cost('openai', 'gpt-x', { prompt_tokens: -5, completion_tokens: Number.NaN, prompt_tokens_details: null })).toBe(0);
  });

  it('embeddings: usage without completion_tokens costs the input only', () => {
    expect(usd(prices.cost('openai', 'emb-x', { prompt_tokens: 3000, total_tokens: 3000 })!)).toBe(usd((3000 * 0.1) / 1e6));
  });

  it("a dated snapshot bills as its base id; an unknown model, or another provider's, has no price", () => {
    expect(prices.pricedId('openai', 'gpt-x-2025-08-07')).toBe('gpt-x');
    expect(prices.pricedId('openai', 'gpt-x-0613')).toBe('gpt-x');
    expect(prices.cost('openai', 'gpt-x-2025-08-07', { prompt_tokens: 10 })).toBe(prices.cost('openai', 'gpt-x', { prompt_tokens: 10 }));
    expect(prices.cost('openai', 'gpt-y', { prompt_tokens: 10 })).toBeUndefined();
    expect(prices.cost('groq', 'gpt-x', { prompt_tokens: 10 })).toBeUndefined();
    expect(prices.pricedId('openai', 'constructor')).toBeUndefined();
  });

  it('a snapshot the table prices itself keeps its own price (gpt-4o-2024-05-13 is dearer than gpt-4o)', () => {
    const builtin = loadPrices(undefined);
    const usage = { prompt_tokens: 1_000_000, completion_tokens: 0 };
    expect(builtin.cost('openai', 'gpt-4o-2024-05-13', usage)).toBe(5);
    expect(builtin.cost('openai', 'gpt-4o-2024-08-06', usage)).toBe(2.5);
  });
});

describe('PRICES_FILE', () => {
  it('unset: the built-in table', () => {
    const prices = loadPrices(undefined);
    expect(prices.models('openai').sort()).toEqual(Object.keys(BUILTIN_PRICES.openai ?? {}).sort());
  });

  it('overrides a built-in price and adds new models, keeping every other built-in one', () => {
    const file = pricesFile(
      'ok.json',
      JSON.stringify({
        openai: { 'gpt-4o-mini': { input: 1, output: 2 }, 'my-finetune': { input: 3, cachedInput: 1, output: 4 } },
        groq: { 'brand-new-model': { input: 0.5, output: 0.5 } },
      }),
    );
    const prices = loadPrices(file);
    const million = { prompt_tokens: 1_000_000, completion_tokens: 1_000_000 };
    expect(prices.cost('openai', 'gpt-4o-mini', million)).toBe(3);
    // The override replaces the whole entry: no cached rate left over from the built-in one.
    expect(prices.cost('openai', 'gpt-4o-mini', { prompt_tokens: 1_000_000, prompt_tokens_details: { cached_tokens: 1_000_000 } })).toBe(1);
    expect(prices.cost('openai', 'my-finetune', { ...million, prompt_tokens_details: { cached_tokens: 1_000_000 } })).toBe(5);
    expect(prices.cost('groq', 'brand-new-model', million)).toBe(1);
    expect(prices.cost('openai', 'gpt-4o', million)).toBe(12.5);
    expect(prices.cost('groq', 'llama-3.1-8b-instant', million)).toBeCloseTo(0.13, 12);
  });

  it('an empty object changes nothing', () => {
    expect(loadPrices(pricesFile('empty.json', '{}')).models('groq').length).toBe(Object.keys(BUILTIN_PRICES.groq ?? {}).length);
  });

  const malformed: Array<[string, string, RegExp]> = [
    ['not JSON', '{"openai": {', /not valid JSON/],
    ['an array', '[]', /must hold an object/],
    ['an unknown provider', '{"anthropic":{}}', /unknown provider "anthropic"/],
    ['models as an array', '{"openai":[]}', /"openai" must be an object of models/],
    ['a price as a number', '{"openai":{"gpt-4o":1}}', /openai\/"gpt-4o" must be an object/],
    ['a missing output', '{"openai":{"gpt-4o":{"input":1}}}', /non-negative numbers "input" and "output"/],
    ['a negative price', '{"groq":{"x":{"input":-1,"output":1}}}', /non-negative/],
    ['a price as a string', '{"groq":{"x":{"input":"0.1","output":1}}}', /non-negative/],
    ['a misspelt field', '{"openai":{"gpt-4o":{"input":1,"output":2,"cached_input":0.5}}}', /unknown field "cached_input"/],
  ];
  for (const [what, content, message] of malformed) {
    it(`refuses ${what} with a PricesFileError naming PRICES_FILE, on one line`, () => {
      const file = pricesFile(`bad-${what.replace(/\W+/g, '-')}.json`, content);
      let thrown: unknown;
      try {
        loadPrices(file);
      } catch (error) {
        thrown = error;
      }
      expect(thrown).toBeInstanceOf(PricesFileError);
      const text = (thrown as Error).message;
      expect(text).toMatch(/^PRICES_FILE /);
      expect(text).toContain(file);
      expect(text).toMatch(message);
      expect(text).not.toContain('\n');
    });
  }

  it('refuses a file that cannot be read', () => {
    expect(() => loadPrices(join(dir, 'missing.json'))).toThrow(/PRICES_FILE .*missing\.json could not be read: ENOENT/);
  });

  it('a JSON syntax error spread over lines is still reported on one line', () => {
    const file = pricesFile('multiline.json', '{\n  "openai": {\n    "gpt-4o": { "input": 1,, }\n  }\n}\n');
    expect(() => loadPrices(file)).toThrow(PricesFileError);
    try {
      loadPrices(file);
    } catch (error) {
      expect((error as Error).message).not.toContain('\n');
    }
  });
});

/** Runs the real entry point; it must exit on its own. */
function runMain(env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
      cwd: ROOT,
      env: { PATH: process.env['PATH'] ?? '', PORT: '0', HOST: '127.0.0.1', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the gateway did not exit: ${stderr}`));
    }, 15_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('the real process with a malformed PRICES_FILE', () => {
  it('exits 1 before listening, with one stderr line naming PRICES_FILE and no key', async () => {
    const file = pricesFile('process-bad.json', '{\n  "openai": { "gpt-4o": { "input": 1 } }\n}\n');
    const { code, stdout, stderr } = await runMain({ PRICES_FILE: file, OPENAI_API_KEYS: 'sk-never-printed-prices-7777' });
    expect(code).toBe(1);
    const lines = stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^gateway: configuration error: PRICES_FILE /);
    expect(lines[0]).toContain('openai/"gpt-4o"');
    expect(stderr + stdout).not.toContain('sk-never-printed-prices-7777');
    expect(stdout).not.toMatch(/listening/i);
  });
});
