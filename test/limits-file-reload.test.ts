/**
 * LIMITS_FILE: one user's limit raised (or lifted, or lowered) without a restart, while traffic
 * flows: the file is re-read when it changes and on SIGHUP (the real process), a malformed file is
 * refused with one log line and the limits in force stay, and a bad file at start-up stops it
 * with one line naming LIMITS_FILE.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { chat, chatBody, unique } from './helpers/cache-e2e.js';
import { fakeUpstreamEnv } from './helpers/gateway.js';
import { runGatewayProcess, startGatewayProcess } from './helpers/gateway-process.js';
import { AUTH, as, centPerPromptTokenPrices, paidAnswer, spend, useLimitedGateways } from './helpers/limits.js';
import { waitForModelLists } from './helpers/metrics-scrape.js';

function limitsDir(): string {
  return mkdtempSync(join(tmpdir(), 'cachegate-limits-'));
}

function writeLimits(file: string, content: unknown): void {
  writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content));
}

describe('LIMITS_FILE', () => {
  const setup = useLimitedGateways('memory');

  it("raises one user's budget without a restart while traffic flows; a malformed file is refused and the old limits stay", async () => {
    const file = join(limitsDir(), 'limits.json');
    writeLimits(file, { users: { bob: { dailyUsd: 0.02 } } });
    const running = await setup.start({ USER_BUDGET_DAILY_USD: '0.01', LIMITS_FILE: file });
    expect((await spend(setup, running, 'ann', 1)).status).toBe(200);
    expect((await chat(running, chatBody(unique('ann over')), as('ann'))).status).toBe(429);
    // Bob's own line in the file: two cents.
    expect((await spend(setup, running, 'bob', 1)).status).toBe(200);
    expect((await spend(setup, running, 'bob', 1)).status).toBe(200);
    expect((await chat(running, chatBody(unique('bob over')), as('bob'))).status).toBe(429);

    // Traffic (cache hits from several users) all along the reloads: none may fail.
    const cached = chatBody(unique('hot'));
    setup.fake.queue.push(paidAnswer(0));
    expect((await chat(running, cached, as('carl'))).status).toBe(200);
    let traffic = true;
    const statuses: number[] = [];
    const load = Promise.all(
      ['ann', 'bob', 'carl', 'dora'].map(async (user) => {
        while (traffic) statuses.push((await chat(running, cached, as(user))).status);
      }),
    );

    writeLimits(file, { users: { bob: { dailyUsd: 0.02 }, ann: { dailyUsd: 0.05 } } });
    await expect.poll(() => running.logs.filter((line) => line.includes('user limits reloaded')).length, { timeout: 5_000 }).toBe(1);
    expect((await spend(setup, running, 'ann', 1)).status).toBe(200);

    writeLimits(file, '{"users": {"ann": {"dailyUsd": -1}}}');
    await expect.poll(() => running.logs.filter((line) => line.includes('limits file refused')), { timeout: 5_000 }).toHaveLength(1);
    const refusedLine = JSON.parse(running.logs.find((line) => line.includes('limits file refused'))!);
    expect(refusedLine.level).toBe(50);
    expect(refusedLine.err).toBe(`LIMITS_FILE ${file}: users["ann"].dailyUsd must be a number of at least 0, or null for no limit`);
    // The previous limits stay: Ann still has $0.05, Bob still $0.02 (spent).
    expect((await spend(setup, running, 'ann', 1)).status).toBe(200);
    expect((await chat(running, chatBody(unique('bob still over')), as('bob'))).status).toBe(429);

    // null lifts a limit for one user; a lower one applies at once.
    writeLimits(file, { users: { bob: { dailyUsd: null }, ann: { dailyUsd: 0.01 } } });
    await expect.poll(() => running.logs.filter((line) => line.includes('user limits reloaded')).length, { timeout: 5_000 }).toBe(2);
    expect((await spend(setup, running, 'bob', 1)).status).toBe(200);
    expect((await chat(running, chatBody(unique('ann lowered')), as('ann'))).status).toBe(429);

    traffic = false;
    await load;
    expect(statuses.length).toBeGreaterThan(20);
    expect(new Set(statuses)).toEqual(new Set([200]));
  });

  it('per-user requests and tokens per minute and monthly budgets from the file; a user the file does not name keeps the defaults', async () => {
    const file = join(limitsDir(), 'limits.json');
    writeLimits(file, { users: { ann: { rpm: 2, tpm: 5 }, bob: { rpm: null, monthlyUsd: 0.02 } } });
    const running = await setup.start({ USER_RPM: '3', USER_TPM: '1000', USER_BUDGET_MONTHLY_USD: '1', LIMITS_FILE: file });
    const body = chatBody(unique('rpm'));
    for (const status of [200, 200, 429]) expect((await chat(running, body, as('ann'))).status).toBe(status);
    for (let i = 0; i < 5; i++) expect((await chat(running, body, as('bob'))).status).toBe(200);
    for (const status of [200, 200, 200, 429]) expect((await chat(running, body, as('carl'))).status).toBe(status);
    // Next minute: Ann's 5 tokens, then her next paid call is refused; Bob's two cents a month.
    setup.clock.advance(60_000);
    expect((await spend(setup, running, 'ann', 0, 5)).status).toBe(200);
    setup.clock.advance(1_000);
    const tokens = await chat(running, chatBody(unique('ann tokens')), as('ann'));
    expect(JSON.parse(tokens.text).error.message).toMatch(/^Rate limit reached: at most 5 upstream tokens per minute per user/);
    expect((await spend(setup, running, 'bob', 2)).status).toBe(200);
    const monthly = await chat(running, chatBody(unique('bob month')), as('bob'));
    expect(JSON.parse(monthly.text).error.message).toMatch(/^Your monthly budget of \$0\.02 is spent/);
    expect((await spend(setup, running, 'carl', 3)).status).toBe(200);
  });

  it('names a client without X-OpenWebUI-User-Id by the key: id /admin/usage shows, never by its key', async () => {
    const file = join(limitsDir(), 'limits.json');
    writeLimits(file, { users: {} });
    const running = await setup.start({ USER_BUDGET_DAILY_USD: '0.01', LIMITS_FILE: file });
    setup.fake.queue.push(paidAnswer(1));
    expect((await chat(running, chatBody(unique('script')), AUTH)).status).toBe(200);
    expect((await chat(running, chatBody(unique('script')), AUTH)).status).toBe(429);
    const usage = await (await fetch(`${running.url}/admin/usage`)).json();
    const id: string = usage.users[0].user;
    expect(id).toMatch(/^key:/);
    writeLimits(file, { users: { [id]: { dailyUsd: 0.02 } } });
    await expect.poll(() => running.logs.filter((line) => line.includes('user limits reloaded')).length, { timeout: 5_000 }).toBe(1);
    setup.fake.queue.push(paidAnswer(1));
    expect((await chat(running, chatBody(unique('script')), AUTH)).status).toBe(200);
    expect((await chat(running, chatBody(unique('script')), AUTH)).status).toBe(429);
  });

  it('SIGHUP re-reads it in the running process', async () => {
    const file = join(limitsDir(), 'limits.json');
    writeLimits(file, { users: {} });
    const { fake } = setup;
    const gateway = await startGatewayProcess({
      ...fakeUpstreamEnv(fake),
      LOG_LEVEL: 'info',
      PRICES_FILE: centPerPromptTokenPrices(),
      USER_BUDGET_DAILY_USD: '0.01',
      LIMITS_FILE: file,
    });
    await waitForModelLists(gateway.url);
    fake.reset();
    const send = (user: string) =>
      fetch(`${gateway.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-openwebui-user-id': user },
        body: JSON.stringify(chatBody(unique('hup'))),
      });
    fake.queue.push(paidAnswer(1));
    expect((await send('ann')).status).toBe(200);
    expect((await send('ann')).status).toBe(429);
    writeLimits(file, { users: { ann: { dailyUsd: 1 } } });
    gateway.signal('SIGHUP');
    await expect
      .poll(() => gateway.logs().filter((line) => line.msg === 'user limits reloaded' && line.trigger === 'signal').length, { timeout: 5_000 })
      .toBe(1);
    fake.queue.push(paidAnswer(1));
    expect((await send('ann')).status).toBe(200);
    gateway.kill();
  });

  it('a malformed file at start-up stops it with one line naming LIMITS_FILE', async () => {
    const file = join(limitsDir(), 'limits.json');
    writeLimits(file, { users: { ann: { dailyUSD: 5 } } });
    const { code, stderr } = await runGatewayProcess({ LIMITS_FILE: file });
    expect(code).toBe(1);
    expect(stderr).toBe(`gateway: configuration error: LIMITS_FILE ${file}: users["ann"]: unknown field "dailyUSD"; allowed: dailyUsd, monthlyUsd, rpm, tpm\n`);
  });
});
