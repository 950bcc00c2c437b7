/**
 * The vitest lifecycle of a fake upstream shared by the tests of one file: started before the
 * first test, closed after the last, and after each test put back as it started (records,
 * canned answers, stream breakages, pacing), so no test inherits another's setup. Gateways a
 * test hands to closeAfterTest are closed first, while the fake still answers.
 */
import { afterAll, afterEach, beforeAll } from 'vitest';
import { startFakeUpstream, type FakeUpstream, type FakeUpstreamOptions } from './fake-upstream.js';

export interface FakeUpstreamFixture {
  /** The file's fake upstream; there is none before beforeAll has run. */
  readonly fake: FakeUpstream;
  /** Closes `gateway` after the running test (for tests that start several); returns it. */
  closeAfterTest<Gateway extends { close(): Promise<void> }>(gateway: Gateway): Gateway;
}

type Pacing = Pick<Required<FakeUpstreamOptions>, 'latencyMs' | 'chunkDelayMs' | 'chunks'>;

/** Registers the hooks; call it at the top level of a test file. */
export function setUpFakeUpstream(): FakeUpstreamFixture {
  let started: FakeUpstream | undefined;
  let pacing: Pacing | undefined;
  const gateways: Array<{ close(): Promise<void> }> = [];

  beforeAll(async () => {
    started = await startFakeUpstream();
    const { latencyMs, chunkDelayMs, chunks } = started.options;
    pacing = { latencyMs, chunkDelayMs, chunks };
  });

  afterEach(async () => {
    await Promise.all(gateways.splice(0).map((gateway) => gateway.close()));
    started?.reset();
    if (started) Object.assign(started.options, pacing);
  });

  afterAll(async () => {
    await started?.close();
  });

  return {
    get fake(): FakeUpstream {
      if (!started) throw new Error('the fake upstream is started in beforeAll: use it inside a test or hook');
      return started;
    },
    closeAfterTest(gateway) {
      gateways.push(gateway);
      return gateway;
    },
  };
}
