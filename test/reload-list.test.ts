/**
 * The reload list SIGHUP dispatches to (src/reload/on-hangup.ts): every registered file is reloaded, in
 * order, even after one of them throws; reloadAll never rejects (an unhandled rejection would
 * stop the process, and a reload request must never do that); an empty list says so; what is
 * unregistered is no longer reloaded; the SIGHUP wiring reaches the list and can be removed.
 */
import { describe, expect, it } from 'vitest';
import { registerReloadable, reloadAll, reloadOnHangup, type ReloadLogger } from '../src/reload/on-hangup.js';
import { eventually } from './helpers/upstream-e2e.js';

function recordingLogger(): ReloadLogger & { lines: Array<{ level: string; obj: object; msg: string }> } {
  const lines: Array<{ level: string; obj: object; msg: string }> = [];
  return {
    lines,
    info: (obj, msg) => lines.push({ level: 'info', obj, msg }),
    warn: (obj, msg) => lines.push({ level: 'warn', obj, msg }),
    error: (obj, msg) => lines.push({ level: 'error', obj, msg }),
  };
}

describe('reloadAll', () => {
  it('with nothing registered: one warning that there is nothing to reload, naming no file in particular', async () => {
    const log = recordingLogger();
    await reloadAll(log);
    expect(log.lines).toEqual([
      { level: 'warn', obj: { signal: 'SIGHUP' }, msg: 'SIGHUP: nothing to reload (no reloadable file is configured); still serving' },
    ]);
  });

  it('reloads each registered file in order; one that throws is logged and the rest still run', async () => {
    const order: string[] = [];
    const unregister = [
      registerReloadable({ name: 'first', reload: async () => order.push('first') }),
      registerReloadable({
        name: 'broken',
        reload: async () => {
          order.push('broken');
          throw new Error('could quote the file: sk-secret-in-message');
        },
      }),
      registerReloadable({ name: 'last', reload: async () => order.push('last') }),
    ];
    const log = recordingLogger();
    await expect(reloadAll(log)).resolves.toBeUndefined();
    expect(order).toEqual(['first', 'broken', 'last']);
    expect(log.lines).toEqual([{ level: 'error', obj: { reloading: 'broken', err: 'Error' }, msg: expect.stringContaining('previous state stays') }]);
    expect(JSON.stringify(log.lines)).not.toContain('sk-secret');

    for (const remove of unregister) remove();
    order.length = 0;
    await reloadAll(log);
    expect(order).toEqual([]);
  });
});

describe('reloadOnHangup', () => {
  it('SIGHUP reaches the list while wired; the wiring can be removed', async () => {
    const calls: string[] = [];
    const unregister = registerReloadable({ name: 'probe', reload: async () => calls.push('reloaded') });
    const listeners = process.listenerCount('SIGHUP');
    const unwire = reloadOnHangup(() => recordingLogger());
    try {
      expect(process.listenerCount('SIGHUP')).toBe(listeners + 1);
      process.kill(process.pid, 'SIGHUP');
      await eventually(() => calls.length === 1, 5_000, 5);
    } finally {
      unwire();
      unregister();
    }
    expect(process.listenerCount('SIGHUP')).toBe(listeners);
  });
});
