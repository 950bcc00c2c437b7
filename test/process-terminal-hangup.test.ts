/**
 * A gateway started in a terminal that is then closed: its log writes fail (EIO), and it must
 * neither stop serving nor hang. It used to take the failed write for a fatal error (stopped
 * listening), then hang for ever at exit in pino's flush, retrying the write. Now it serves on
 * without logs, as under nohup, and SIGTERM still ends it.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

interface HangupResult {
  port: number | null;
  statuses: number[];
  aliveAfterHangup: boolean;
  ended: number | 'stuck';
}

describe('closing the terminal the gateway was started in', () => {
  it('keeps it serving, and SIGTERM still ends it', () => {
    const output = execFileSync(
      '/usr/bin/python3',
      [
        join(ROOT, 'test/helpers/terminal-hangup.py'),
        process.execPath,
        pathToFileURL(join(ROOT, 'node_modules/tsx/dist/loader.mjs')).href,
        join(ROOT, 'src/main.ts'),
        mkdtempSync(join(tmpdir(), 'terminal-hangup-')),
      ],
      { encoding: 'utf8', timeout: 60_000, env: { PATH: process.env['PATH'] ?? '', OPENAI_API_KEYS: 'sk-hangup-test-key-0000000000', LOG_LEVEL: 'info' } },
    );
    const result = JSON.parse(output.trim().split('\n').at(-1) ?? '{}') as HangupResult;
    expect(result.port).toBeGreaterThan(0);
    expect(result.statuses).toEqual([200, 200, 200]);
    expect(result.aliveAfterHangup).toBe(true);
    // Ended, whatever the code: Node's own exit aborts when it cannot reset a terminal that is
    // gone (node.cc ResetStdio), which no gateway code can prevent; what matters is that it ends.
    expect(result.ended).not.toBe('stuck');
  }, 90_000);
});
