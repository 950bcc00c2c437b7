/**
 * Plumbing for the budget and rate-limit tests: a price table where one prompt token of
 * gpt-4o-mini costs exactly one cent (completion tokens are free), canned upstream answers whose
 * usage sets what a call costs and how many tokens it used, and a clock the tests move.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CannedResponse } from './fake-upstream.js';

/** A PRICES_FILE: gpt-4o-mini at $10,000 per 1M prompt tokens ($0.01 each), completions free. */
export function centPerPromptTokenPrices(): string {
  const dir = mkdtempSync(join(tmpdir(), 'cachegate-limits-prices-'));
  const file = join(dir, 'prices.json');
  writeFileSync(file, JSON.stringify({ openai: { 'gpt-4o-mini': { input: 10_000, output: 0 } } }));
  return file;
}

/** A chat completion whose usage costs `cents` cents and counts `cents + freeTokens` tokens. */
export function paidAnswer(cents: number, freeTokens = 0, text = 'paid answer'): CannedResponse {
  return {
    status: 200,
    body: {
      id: `chatcmpl-paid-${Math.random().toString(36).slice(2)}`,
      object: 'chat.completion',
      created: 1_700_000_000,
      model: 'gpt-4o-mini',
      choices: [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: 'stop' }],
      usage: { prompt_tokens: cents, completion_tokens: freeTokens, total_tokens: cents + freeTokens },
    },
  };
}

/** A clock for the gateway's periods, set and moved by the test (far in the future: Redis expiries stay ahead of real time). */
export class TestClock {
  constructor(public ms: number) {}
  readonly now = (): number => this.ms;
  set(iso: string): void {
    this.ms = Date.parse(iso);
  }
  advance(ms: number): void {
    this.ms += ms;
  }
}

export function limitsFileIn(dir: string, content: unknown): string {
  const file = join(dir, 'limits.json');
  writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content));
  return file;
}
