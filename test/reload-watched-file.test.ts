/**
 * The one component every re-read file goes through (src/reload/watched-file.ts), on a file of
 * its own: a malformed file is refused with one error line and what is in force stays until a
 * fixed one comes; a file deleted and recreated; an editor's save by rename, twice; a burst of
 * writes read once (debounce); a directory that cannot be watched falls back to polling; reads
 * never overtake each other, nor apply once closed; a failure to apply is its own line and an
 * unknown error's message is not logged; SIGHUP (the reload list) re-reads it, and close()
 * takes it off the list.
 */
import { mkdir, mkdtemp, rename, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { reloadAll } from '../src/reload/on-hangup.js';
import { readConfigFileText } from '../src/reload/read-config-file.js';
import { type ReloadableFile, type ReloadableFileLogger, startReloading, type WatchedFile, watchReloadableFile } from '../src/reload/watched-file.js';
import { eventually, pause } from './helpers/upstream-e2e.js';

class ColoursFileError extends Error {
  override readonly name = 'ColoursFileError';
}

type Line = { level: 'info' | 'warn' | 'error'; obj: Record<string, unknown>; msg: string };

function recordingLogger(): ReloadableFileLogger & { lines: Line[] } {
  const lines: Line[] = [];
  const record = (level: Line['level']) => (obj: object, msg: string) => lines.push({ level, obj: obj as Record<string, unknown>, msg });
  return { lines, info: record('info'), warn: record('warn'), error: record('error') };
}

const LINES = {
  signal: 'SIGHUP: reloading the colours',
  reloaded: 'colours reloaded',
  refused: 'colours file refused; the previous colours stay in force',
  applyFailed: 'applying the reloaded colours failed; the previous colours stay in force',
};

/** `{"colours": ["red", …]}`; anything else is refused with a ColoursFileError. */
async function readColours(path: string): Promise<string[]> {
  const text = await readConfigFileText('COLOURS_FILE', path, ColoursFileError);
  try {
    const { colours } = JSON.parse(text) as { colours: string[] };
    if (!Array.isArray(colours)) throw new Error('no colours');
    return colours;
  } catch {
    throw new ColoursFileError(`COLOURS_FILE ${path}: not valid`);
  }
}

const colours = (...names: string[]): string => JSON.stringify({ colours: names });

describe('a watched file', () => {
  let dir: string;
  let path: string;
  let log: ReturnType<typeof recordingLogger>;
  let inForce: string[][];
  let watched: WatchedFile | undefined;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'watched-file-'));
    path = join(dir, 'colours.json');
    await writeFile(path, colours('red'));
    log = recordingLogger();
    inForce = [];
  });

  afterEach(async () => {
    watched?.close();
    watched = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  function file(overrides: Partial<ReloadableFile<string[]>> = {}): ReloadableFile<string[]> {
    return {
      variable: 'COLOURS_FILE',
      path,
      name: 'colours',
      lines: LINES,
      read: readColours,
      errorClass: ColoursFileError,
      apply(next) {
        inForce.push(next);
        return { colours: next.length };
      },
      ...overrides,
    };
  }

  const refusals = (): Line[] => log.lines.filter((line) => line.msg === LINES.refused);

  it('refuses a malformed file with one error line, keeps what is in force, then takes the fixed file', async () => {
    watched = watchReloadableFile(file(), log, { debounceMs: 30, pollIntervalMs: 100 });
    await writeFile(path, '{"colours": ["gre');
    await eventually(() => refusals().length > 0, 5_000);
    expect(refusals()[0]).toEqual({ level: 'error', obj: { path, trigger: 'change', err: `COLOURS_FILE ${path}: not valid` }, msg: LINES.refused });
    expect(inForce).toEqual([]);

    await writeFile(path, colours('green', 'blue'));
    await eventually(() => expect(inForce).toEqual([['green', 'blue']]), 5_000);
    expect(log.lines.at(-1)).toEqual({ level: 'info', obj: { path, trigger: 'change', colours: 2 }, msg: LINES.reloaded });
  });

  it('a file deleted is refused (what is in force stays); recreated, it is read again', async () => {
    watched = watchReloadableFile(file(), log, { debounceMs: 30, pollIntervalMs: 100 });
    await unlink(path);
    await eventually(() => refusals().some((line) => line.obj.err === `COLOURS_FILE ${path}: cannot be read (ENOENT)`), 5_000);
    expect(inForce).toEqual([]);
    await writeFile(path, colours('back'));
    await eventually(() => expect(inForce).toEqual([['back']]), 5_000);
  });

  it("applies an editor's save by rename into place, and still sees the next one (new inode)", async () => {
    // Polling slowed to a minute: this is the directory watch's job.
    watched = watchReloadableFile(file(), log, { debounceMs: 30, pollIntervalMs: 60_000 });
    const temporary = join(dir, '.colours.json.swp');
    await writeFile(temporary, colours('first'));
    await rename(temporary, path);
    await eventually(() => expect(inForce).toEqual([['first']]), 5_000);
    await writeFile(temporary, colours('second'));
    await rename(temporary, path);
    await eventually(() => expect(inForce).toEqual([['first'], ['second']]), 5_000);
  });

  it('reads a burst of writes once, when it has gone quiet', async () => {
    let reads = 0;
    const counted = file({
      read: (at) => {
        reads++;
        return readColours(at);
      },
    });
    watched = watchReloadableFile(counted, log, { debounceMs: 400, pollIntervalMs: 60_000 });
    for (const name of ['one', 'two', 'three', 'four', 'five']) await writeFile(path, colours(name));
    await eventually(() => inForce.length === 1, 5_000);
    await pause(600);
    expect([reads, inForce]).toEqual([1, [['five']]]);
  });

  it('a directory that cannot be watched: one warning, and polling finds the file once it is there', async () => {
    const later = join(dir, 'not-yet');
    path = join(later, 'colours.json');
    watched = watchReloadableFile(file(), log, { debounceMs: 30, pollIntervalMs: 50 });
    expect(log.lines).toEqual([
      { level: 'warn', obj: { path, err: 'Error ENOENT' }, msg: 'COLOURS_FILE: cannot watch the directory; falling back to polling' },
    ]);
    await mkdir(later);
    await writeFile(path, colours('polled'));
    await eventually(() => expect(inForce).toEqual([['polled']]), 5_000);
  });

  it('one read at a time, in order: a slow older read never overwrites a newer one', async () => {
    let calls = 0;
    const slowFirst = file({
      read: async (at) => {
        const content = await readColours(at);
        if (calls++ === 0) await pause(300);
        return content;
      },
    });
    // Changes kept out of it: only the two explicit reloads read.
    watched = watchReloadableFile(slowFirst, log, { debounceMs: 60_000, pollIntervalMs: 60_000 });
    const older = watched.reload();
    await pause(50);
    await writeFile(path, colours('newer'));
    const newer = watched.reload();
    expect(await Promise.all([older, newer])).toEqual([true, true]);
    expect(inForce).toEqual([['red'], ['newer']]);
  });

  it('a read still under way when the watch is closed applies nothing', async () => {
    const slow = file({
      read: async (at) => {
        const content = await readColours(at);
        await pause(200);
        return content;
      },
    });
    watched = watchReloadableFile(slow, log, { debounceMs: 60_000, pollIntervalMs: 60_000 });
    const reading = watched.reload();
    await pause(50);
    watched.close();
    expect(await reading).toBe(false);
    expect([inForce, log.lines]).toEqual([[], []]);
  });

  it('a failure to apply is its own error line; an error not of the file is named by class only', async () => {
    const refusing = file({
      apply: () => {
        throw new Error('would quote the file: sk-fake-not-to-be-logged');
      },
    });
    watched = watchReloadableFile(refusing, log, { debounceMs: 60_000, pollIntervalMs: 60_000 });
    await expect(watched.reload()).resolves.toBe(false);
    expect(log.lines).toEqual([{ level: 'error', obj: { path, trigger: 'signal', err: 'Error' }, msg: LINES.applyFailed }]);
  });

  it('a change the file says to ignore is ignored; a reload applies it all the same', async () => {
    const ignoringRed = file({ ignoreChange: (next) => next.join() === 'red' });
    watched = watchReloadableFile(ignoringRed, log, { debounceMs: 30, pollIntervalMs: 100 });
    await writeFile(path, `${colours('red')}\n`);
    await pause(400);
    expect(inForce).toEqual([]);
    await expect(watched.reload()).resolves.toBe(true);
    expect(inForce).toEqual([['red']]);
  });

  it('SIGHUP (the reload list) re-reads it with its own line; closed, it is off the list and applies nothing more', async () => {
    watched = startReloading(file(), log, { debounceMs: 30, pollIntervalMs: 100 });
    await reloadAll(log);
    expect(log.lines).toEqual([
      { level: 'info', obj: { file: path }, msg: LINES.signal },
      { level: 'info', obj: { path, trigger: 'signal', colours: 1 }, msg: LINES.reloaded },
    ]);
    watched.close();
    log.lines.length = 0;
    await reloadAll(log);
    expect(log.lines).toEqual([{ level: 'warn', obj: { signal: 'SIGHUP' }, msg: expect.stringContaining('nothing to reload') }]);
    await writeFile(path, colours('after close'));
    await pause(400);
    expect(inForce).toEqual([['red']]);
  });
});
