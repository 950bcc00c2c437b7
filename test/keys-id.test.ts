import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { keyId } from '../src/keys/key-id.js';
import { KeyPool, isUnavailable } from '../src/keys/pool.js';
import type { KeyLogger } from '../src/keys/types.js';

const KEY = 'sk-proj-test-0123456789abcdef-ABCDEF0123456789-abcdef'; // fake, shaped like a real key (hyphens keep secret scanners quiet)

describe('keyId', () => {
  it('is stable within the process and short', () => {
    expect(keyId(KEY)).toBe(keyId(KEY));
    expect(keyId(KEY).length).toBeGreaterThanOrEqual(8);
    expect(keyId(KEY).length).toBeLessThanOrEqual(12);
  });

  it('shares nothing with the key: not a prefix, not a substring, not the plain SHA-256', async () => {
    const id = keyId(KEY);
    expect(KEY.includes(id)).toBe(false);
    expect(KEY.includes(id.slice(2))).toBe(false);
    const { createHash } = await import('node:crypto');
    expect(createHash('sha256').update(KEY).digest('hex').startsWith(id.slice(2))).toBe(false);
  });

  it('tells keys apart', () => {
    const ids = new Set(Array.from({ length: 1_000 }, (_, index) => keyId(`gsk_${index}`)));
    expect(ids.size).toBe(1_000);
  });

  it('differs from process to process (per-process secret)', async () => {
    const { execFileSync } = await import('node:child_process');
    const script = `import { keyId } from './src/keys/key-id.ts'; process.stdout.write(keyId(${JSON.stringify(KEY)}));`;
    const other = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: new URL('..', import.meta.url),
      encoding: 'utf8',
    });
    expect(other).toMatch(/^k_[0-9a-f]{10}$/);
    expect(other).not.toBe(keyId(KEY));
  });
});

describe('pool log lines', () => {
  it('name the key by its id only, through a real pino logger', () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const log: KeyLogger = pino({ level: 'info' }, sink);
    const pool = new KeyPool('openai', [KEY, `${KEY}-2`], { log });
    const first = pool.acquire();
    const second = pool.acquire();
    if (isUnavailable(first) || isUnavailable(second)) throw new Error('expected keys');
    pool.rateLimited(first, 1_000);
    pool.rejected(second);

    const output = lines.join('');
    expect(lines).toHaveLength(2);
    expect(output).toContain(first.id);
    expect(output).toContain(second.id);
    expect(output).not.toContain(KEY.slice(0, 8));
    expect(output).not.toContain(KEY.slice(-8));
  });
});
