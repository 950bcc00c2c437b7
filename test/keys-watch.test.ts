import { mkdir, mkdtemp, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isUnavailable } from '../src/keys/pool.js';
import { createKeyPools, replaceAllKeys } from '../src/keys/pools.js';
import type { KeyLogger, ProviderKeys } from '../src/keys/types.js';
import { watchKeysFile, type KeysFileWatcher } from '../src/keys/watch-keys-file.js';

const OLD: ProviderKeys = { openai: ['sk-old-aaaaaaaaaaaaaaaaaaaa'], groq: ['gsk_old_bbbbbbbbbbbbbbbbbbbb'] };
const NEW: ProviderKeys = { openai: ['sk-new-cccccccccccccccccccc', 'sk-new-dddddddddddddddddddd'], groq: [] };
const ALL_KEYS = [...OLD.openai, ...OLD.groq, ...NEW.openai];

type LogRecord = { level: number; msg: string; [field: string]: unknown };

function capturingLogger(): { log: KeyLogger; records: LogRecord[]; raw: () => string } {
  const chunks: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      chunks.push(chunk.toString());
      done();
    },
  });
  const log: KeyLogger = pino({ level: 'info' }, sink);
  return {
    log,
    get records() {
      return chunks
        .join('')
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as LogRecord);
    },
    raw: () => chunks.join(''),
  };
}

async function eventually(check: () => void, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      check();
      return;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }
}

const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function expectNoKeyMaterial(text: string): void {
  for (const key of ALL_KEYS) {
    expect(text).not.toContain(key.slice(0, 8));
    expect(text).not.toContain(key.slice(-8));
  }
}

describe('watchKeysFile', () => {
  let dir: string;
  let path: string;
  let watcher: KeysFileWatcher | undefined;
  let received: ProviderKeys[];
  let logger: ReturnType<typeof capturingLogger>;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'keys-watch-'));
    path = join(dir, 'keys.json');
    await writeFile(path, JSON.stringify(OLD));
    received = [];
    logger = capturingLogger();
  });

  afterEach(async () => {
    watcher?.close();
    watcher = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  // Polling is slowed to a minute where a test is about the directory watch alone.
  function start(filePath = path, pollIntervalMs = 200): void {
    watcher = watchKeysFile(filePath, (keys) => received.push(keys), logger.log, {
      current: OLD,
      debounceMs: 50,
      pollIntervalMs,
    });
  }

  it('applies a file rewritten in place', async () => {
    start(path, 60_000);
    await writeFile(path, JSON.stringify(NEW));
    await eventually(() => expect(received).toEqual([NEW]));
  });

  it('applies a file replaced by rename, as editors save', async () => {
    start(path, 60_000);
    const temporary = join(dir, '.keys.json.tmp');
    await writeFile(temporary, JSON.stringify(NEW));
    await rename(temporary, path);
    await eventually(() => expect(received).toEqual([NEW]));
    // The watch survives the inode change: a second replace is seen too.
    await writeFile(temporary, JSON.stringify(OLD));
    await rename(temporary, path);
    await eventually(() => expect(received).toEqual([NEW, OLD]));
  });

  it('applies a Kubernetes-style secret update (..data symlink swap)', async () => {
    await mkdir(join(dir, '..v1'));
    await writeFile(join(dir, '..v1', 'keys.json'), JSON.stringify(OLD));
    await symlink('..v1', join(dir, '..data'));
    const mounted = join(dir, 'mounted.json');
    await symlink(join('..data', 'keys.json'), mounted);
    start(mounted, 60_000);

    await mkdir(join(dir, '..v2'));
    await writeFile(join(dir, '..v2', 'keys.json'), JSON.stringify(NEW));
    await symlink('..v2', join(dir, '..data_tmp'));
    await rename(join(dir, '..data_tmp'), join(dir, '..data'));
    await eventually(() => expect(received).toEqual([NEW]));
  });

  it('sees in-place edits behind a symlink into another directory (stat polling)', async () => {
    // The directory watch sees only the link's directory; the target changes elsewhere.
    const elsewhere = join(dir, 'real');
    await mkdir(elsewhere);
    await writeFile(join(elsewhere, 'keys.json'), JSON.stringify(OLD));
    const linkDir = join(dir, 'links');
    await mkdir(linkDir);
    const link = join(linkDir, 'keys.json');
    await symlink(join(elsewhere, 'keys.json'), link);
    start(link);
    await writeFile(join(elsewhere, 'keys.json'), JSON.stringify(NEW));
    await eventually(() => expect(received).toEqual([NEW]));
  });

  it('refuses a malformed file with one error line and no key material, then recovers', async () => {
    start();
    await writeFile(path, `{"openai":["${NEW.openai[0]}"`);
    await eventually(() => expect(logger.records.some((record) => record.level === 50)).toBe(true));
    expect(received).toEqual([]);
    const error = logger.records.find((record) => record.level === 50);
    expect(error?.msg).toBe('keys file refused; the previous keys stay in force');
    expect(String(error?.err)).toContain('not valid JSON');
    expectNoKeyMaterial(logger.raw());

    await writeFile(path, JSON.stringify(NEW));
    await eventually(() => expect(received).toEqual([NEW]));
  });

  it('reload() re-reads on demand (SIGHUP), even when the set did not change', async () => {
    start();
    await expect(watcher?.reload()).resolves.toBe(true);
    expect(received).toEqual([OLD]);

    await writeFile(path, 'not json at all');
    await expect(watcher?.reload()).resolves.toBe(false);
    expect(received).toEqual([OLD]);
  });

  it('logs a reload by counts and key ids only', async () => {
    start();
    await writeFile(path, JSON.stringify(NEW));
    await eventually(() => expect(logger.records.some((record) => record.msg === 'provider keys reloaded')).toBe(true));
    const info = logger.records.find((record) => record.msg === 'provider keys reloaded');
    expect(info?.openai).toMatchObject({ keys: 2, added: [expect.stringMatching(/^k_/), expect.stringMatching(/^k_/)] });
    expect(info?.groq).toMatchObject({ keys: 0, removed: [expect.stringMatching(/^k_/)] });
    expectNoKeyMaterial(logger.raw());
  });

  it('ignores a change that leaves the set as it is (no re-enabling on a touch)', async () => {
    start();
    await writeFile(path, JSON.stringify({ groq: OLD.groq, openai: OLD.openai }, null, 2));
    await pause(600);
    await writeFile(path, JSON.stringify(NEW));
    await eventually(() => expect(received).toEqual([NEW]));
  });

  it('stops after close()', async () => {
    start();
    watcher?.close();
    await writeFile(path, JSON.stringify(NEW));
    await pause(600);
    expect(received).toEqual([]);
  });

  it('with key pools: a removed key is never handed out, an in-flight lease keeps its key', async () => {
    const pools = createKeyPools(OLD);
    const inFlight = pools.openai.acquire();
    if (isUnavailable(inFlight)) throw new Error('expected a key');
    watcher = watchKeysFile(path, (keys) => replaceAllKeys(pools, keys), logger.log, { current: OLD, debounceMs: 50 });
    await writeFile(path, JSON.stringify(NEW));
    await eventually(() => expect(pools.openai.size).toBe(2));

    expect(inFlight.key).toBe(OLD.openai[0]);
    pools.openai.rejected(inFlight);
    const handedOut = Array.from({ length: 6 }, () => {
      const lease = pools.openai.acquire();
      if (isUnavailable(lease)) throw new Error('expected a key');
      return lease.key;
    });
    expect(new Set(handedOut)).toEqual(new Set(NEW.openai));
    expect(pools.groq.acquire()).toEqual({ unavailable: 'empty' });
  });
});
