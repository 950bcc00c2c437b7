/**
 * The budget and rate-limit variables: unset means no limit; amounts and counts are read exactly;
 * a bad value stops start-up with one line naming the variable (through loadConfig and the real
 * process). LIMITS_FILE's shape is checked field by field, and a mistake names where it is.
 */
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';
import { LimitsFileError, parseLimitsFile } from '../src/limits/limits-file.js';
import { runGatewayProcess } from './helpers/gateway-process.js';

function refusal(env: Record<string, string>): string {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).not.toContain('\n');
    return (error as Error).message;
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(env)}`);
}

describe('budget and rate-limit variables', () => {
  it('are off when unset (or empty, as .env.example leaves them)', () => {
    for (const env of [{}, { BUDGET_DAILY_USD: '', USER_RPM: ' ', LIMITS_FILE: '' }]) {
      const config = loadConfig(env);
      expect([config.budgetDailyUsd, config.budgetMonthlyUsd, config.userBudgetDailyUsd, config.userBudgetMonthlyUsd]).toEqual([
        undefined,
        undefined,
        undefined,
        undefined,
      ]);
      expect([config.userRpm, config.userTpm, config.limitsFile]).toEqual([undefined, undefined, undefined]);
    }
  });

  it('read amounts in USD and whole counts per minute', () => {
    const config = loadConfig({
      BUDGET_DAILY_USD: '0.50',
      BUDGET_MONTHLY_USD: '2',
      USER_BUDGET_DAILY_USD: '0',
      USER_BUDGET_MONTHLY_USD: '12.345',
      USER_RPM: '60',
      USER_TPM: '100000',
      LIMITS_FILE: '/run/cachegate-secrets/limits.json',
    });
    expect(config).toMatchObject({
      budgetDailyUsd: 0.5,
      budgetMonthlyUsd: 2,
      userBudgetDailyUsd: 0,
      userBudgetMonthlyUsd: 12.345,
      userRpm: 60,
      userTpm: 100_000,
      limitsFile: '/run/cachegate-secrets/limits.json',
    });
  });

  const bad: Array<[Record<string, string>, string]> = [
    [{ BUDGET_DAILY_USD: '-1' }, 'BUDGET_DAILY_USD must be an amount in USD such as 2 or 0.50, got "-1"'],
    [{ BUDGET_MONTHLY_USD: '$5' }, 'BUDGET_MONTHLY_USD must be an amount in USD such as 2 or 0.50, got "$5"'],
    [{ USER_BUDGET_DAILY_USD: '1e3' }, 'USER_BUDGET_DAILY_USD must be an amount in USD such as 2 or 0.50, got "1e3"'],
    [{ USER_BUDGET_MONTHLY_USD: '5000000' }, 'USER_BUDGET_MONTHLY_USD must be at most 1000000 USD, got 5000000'],
    [{ USER_RPM: '0' }, 'USER_RPM must be a whole number of at least 1, got "0"'],
    [{ USER_TPM: '1.5' }, 'USER_TPM must be a whole number of at least 1, got "1.5"'],
  ];
  for (const [env, message] of bad) {
    it(`refuse ${JSON.stringify(env)} with one line naming the variable`, () => {
      expect(refusal(env)).toBe(message);
    });
  }

  it('stop the real process with that line', async () => {
    const { code, stderr } = await runGatewayProcess({ USER_RPM: 'many' });
    expect(code).toBe(1);
    expect(stderr).toBe('gateway: configuration error: USER_RPM must be a whole number of at least 1, got "many"\n');
  });
});

describe('LIMITS_FILE content', () => {
  it('takes numbers, null (no limit) and users without fields', () => {
    const overrides = parseLimitsFile('l.json', '{"users":{"ann":{"dailyUsd":5,"monthlyUsd":50,"rpm":60,"tpm":100000},"bob":{"rpm":null},"key:abc":{}}}');
    expect(Object.fromEntries(overrides)).toEqual({ ann: { dailyUsd: 5, monthlyUsd: 50, rpm: 60, tpm: 100_000 }, bob: { rpm: null }, 'key:abc': {} });
    expect(parseLimitsFile('l.json', '{}').size).toBe(0);
  });

  const malformed: Array<[string, string]> = [
    ['{"users":', 'LIMITS_FILE l.json: not valid JSON'],
    ['[]', 'LIMITS_FILE l.json: must be a JSON object like {"users":{"<id>":{"dailyUsd":5}}}'],
    ['{"user":{}}', 'LIMITS_FILE l.json: unknown field "user"; allowed: users'],
    ['{"users":[]}', 'LIMITS_FILE l.json: "users" must be an object of user id → limits'],
    ['{"users":{"ann":5}}', 'LIMITS_FILE l.json: users["ann"] must be an object such as {"dailyUsd":5,"rpm":60}'],
    ['{"users":{"ann":{"rpm":"60"}}}', 'LIMITS_FILE l.json: users["ann"].rpm must be a number of at least 0, or null for no limit'],
    ['{"users":{"ann":{"rpm":1.5}}}', 'LIMITS_FILE l.json: users["ann"].rpm must be a whole number'],
    ['{"users":{"ann":{"monthlyUsd":2000000}}}', 'LIMITS_FILE l.json: users["ann"].monthlyUsd must be at most 1000000 USD'],
    ['{"users":{"ann":{"daily":5}}}', 'LIMITS_FILE l.json: users["ann"]: unknown field "daily"; allowed: dailyUsd, monthlyUsd, rpm, tpm'],
    ['{"users":{"":{}}}', 'LIMITS_FILE l.json: users[""]: a user id must have 1 to 512 characters'],
  ];
  for (const [text, message] of malformed) {
    it(`refuses ${text}`, () => {
      let caught: unknown;
      try {
        parseLimitsFile('l.json', text);
      } catch (error) {
        caught = error;
      }
      expect(caught).toBeInstanceOf(LimitsFileError);
      expect((caught as Error).message.startsWith(message)).toBe(true);
    });
  }
});
