/**
 * The README's monthly cap for a small team, read from the README itself and set on a running
 * gateway (Redis counters, as in the compose deployment): a scripted spender is stopped at its
 * daily cap, the team at the monthly one, each at the cent, while cached answers keep flowing.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { chat, chatBody, unique } from './helpers/cache-e2e.js';
import { REPO_ROOT } from './deploy-harness.js';
import { as, paidAnswer, useLimitedGateways } from './helpers/limits.js';

async function readmeExample(): Promise<Record<string, string>> {
  const readme = await readFile(join(REPO_ROOT, 'README.md'), 'utf8');
  const block = /\*\*A monthly cap for a small team\*\*[\s\S]*?```sh\n([\s\S]*?)```/.exec(readme)?.[1];
  if (block === undefined) throw new Error("README.md has no 'A monthly cap for a small team' example");
  const env: Record<string, string> = {};
  for (const line of block.split('\n')) {
    const match = /^([A-Z_]+)=(\S+)/.exec(line);
    if (match) env[match[1]!] = match[2]!;
  }
  return env;
}

describe("the README's monthly cap for a small team", () => {
  const setup = useLimitedGateways('redis');

  it('stops a scripted spender at its daily cap and the team at the monthly cap, while cached answers flow', async () => {
    const example = await readmeExample();
    expect(example).toEqual({ BUDGET_MONTHLY_USD: '2', USER_BUDGET_DAILY_USD: '0.25', USER_RPM: '30' });
    const running = await setup.start(example);
    const cached = chatBody(unique('team FAQ'));
    setup.fake.queue.push(paidAnswer(0));
    expect((await chat(running, cached, as('reader'))).status).toBe(200);

    // The script spends a cent a call: 25 calls, then refused, with the message Open WebUI shows.
    const statuses: number[] = [];
    for (let call = 0; call < 26; call++) {
      setup.fake.queue.push(paidAnswer(1));
      statuses.push((await chat(running, chatBody(unique('script')), as('script'))).status);
      if (call === 20) setup.clock.advance(60_000); // stays under USER_RPM=30
    }
    expect(statuses.slice(0, 25)).toEqual(Array(25).fill(200));
    const refused = await chat(running, chatBody(unique('script again')), as('script'));
    expect(statuses[25]).toBe(429);
    expect(JSON.parse(refused.text).error.message).toMatch(/^Your daily budget of \$0\.25 is spent \(\$0\.25 used today\)/);
    setup.fake.queue.splice(0);

    // The rest of the team spends the month's $2 (7 users x $0.25): then everyone is refused.
    for (let user = 0; user < 7; user++) {
      setup.fake.queue.push(paidAnswer(25));
      expect((await chat(running, chatBody(unique('team')), as(`member-${user}`))).status).toBe(200);
    }
    const capped = await chat(running, chatBody(unique('after the cap')), as('newcomer'));
    expect(capped.status).toBe(429);
    expect(JSON.parse(capped.text).error.message).toMatch(/^This gateway's monthly budget of \$2\.00 is spent \(\$2\.00 used this month\)/);
    expect(setup.fake.completionCalls()).toHaveLength(1 + 25 + 7);

    // Cached answers keep flowing, for everyone.
    for (const user of ['reader', 'script', 'newcomer']) {
      const hit = await chat(running, cached, as(user));
      expect(hit.status).toBe(200);
      expect(hit.xCache).toBe('HIT');
    }
  });
});
