/**
 * The Dockerfile. No Docker daemon is needed: its instructions are read and checked, and what the
 * runtime stage runs is reproduced: `npm run build` into a fresh directory holding only dist/ and
 * package.json, the image's CMD started there, its HEALTHCHECK command run against it, and a
 * SIGTERM (what `docker stop` sends) sent in the middle of a stream.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { builtinModules } from 'node:module';
import { copyFile, mkdtemp, readdir, readFile, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from './deploy-harness.js';
import { startFakeUpstream, type FakeUpstream } from './helpers/fake-upstream.js';
import { freePort } from './helpers/free-port.js';

const run = promisify(execFile);

interface Instruction {
  op: string;
  args: string;
}
interface Stage {
  from: string;
  name: string | undefined;
  instructions: Instruction[];
}

/** Dockerfile → stages of instructions (continuation lines joined, comments dropped). */
function parseDockerfile(text: string): Stage[] {
  const logical = text
    .replace(/\\\r?\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  const stages: Stage[] = [];
  for (const line of logical) {
    const [, op = '', args = ''] = /^(\S+)\s*(.*)$/.exec(line) ?? [];
    if (op.toUpperCase() === 'FROM') {
      const [, from = '', name] = /^(\S+)(?:\s+AS\s+(\S+))?/i.exec(args) ?? [];
      stages.push({ from, name, instructions: [] });
    } else {
      stages.at(-1)?.instructions.push({ op: op.toUpperCase(), args });
    }
  }
  return stages;
}

function only(stage: Stage, op: string): Instruction[] {
  return stage.instructions.filter((i) => i.op === op);
}

/** `HEALTHCHECK [--options] CMD [...]` and `CMD [...]`: the exec-form argument list. */
function execForm(args: string): string[] {
  const json = args.slice(args.indexOf('['));
  return JSON.parse(json) as string[];
}

let stages: Stage[];
let runtime: Stage;

beforeAll(async () => {
  stages = parseDockerfile(await readFile(join(REPO_ROOT, 'Dockerfile'), 'utf8'));
  const last = stages.at(-1);
  if (!last) throw new Error('Dockerfile has no stage');
  runtime = last;
});

describe('Dockerfile', () => {
  it('builds in stages on Node 20, the major the tests run on', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    for (const stage of stages) expect(stage.from).toMatch(/^node:20([.-]|$)/);
    expect(process.versions.node.split('.')[0]).toBe('20');
  });

  it('ships production dependencies only, and the compiled dist/', () => {
    const copies = only(runtime, 'COPY').map((c) => c.args);
    const modulesFrom = copies.find((c) => /node_modules/.test(c));
    const sourceStage = /--from=(\S+)/.exec(modulesFrom ?? '')?.[1];
    const deps = stages.find((s) => s.name === sourceStage);
    expect(deps, 'node_modules must come from a stage').toBeDefined();
    expect(
      only(deps as Stage, 'RUN')
        .map((r) => r.args)
        .join(' '),
    ).toMatch(/npm ci [^&]*--omit=dev/);
    expect(copies.some((c) => /--from=\S+ \/app\/dist/.test(c))).toBe(true);
    // No source, tests or dev tooling in the runtime image.
    expect(copies.some((c) => /\bsrc\b|\btest\b/.test(c))).toBe(false);
  });

  it('runs as a non-root user, listens on all interfaces, checks /healthz, stops on SIGTERM', () => {
    const user = only(runtime, 'USER').at(-1)?.args;
    expect(user).toBeDefined();
    expect(['root', '0', '0:0']).not.toContain(user);
    expect(
      only(runtime, 'ENV')
        .map((e) => e.args)
        .join(' '),
    ).toMatch(/HOST=0\.0\.0\.0/);
    const healthcheck = only(runtime, 'HEALTHCHECK').at(-1)?.args ?? '';
    expect(healthcheck).toMatch(/\/healthz/);
    const stopSignal = only(runtime, 'STOPSIGNAL').at(-1)?.args ?? 'SIGTERM';
    expect(stopSignal).toBe('SIGTERM');
    // Exec form: node is the process that gets the signal, not a shell in front of it.
    expect(execForm(only(runtime, 'CMD').at(-1)?.args ?? '')).toEqual(['node', 'dist/main.js']);
  });

  it('keeps secrets and bulk out of the build context', async () => {
    const ignored = (await readFile(join(REPO_ROOT, '.dockerignore'), 'utf8')).split('\n').map((l) => l.trim());
    for (const entry of ['.env', 'node_modules', '.git', 'secrets', 'logs']) expect(ignored).toContain(entry);
    for (const needed of ['src', 'package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json']) {
      expect(ignored).not.toContain(needed);
    }
  });
});

describe('the runtime stage, reproduced without Docker', () => {
  let appDir: string;
  let upstream: FakeUpstream;

  beforeAll(async () => {
    appDir = await mkdtemp(join(tmpdir(), 'cachegate-image-'));
    // `npm run build` (tsc -p tsconfig.build.json), into the fresh directory.
    await run(join(REPO_ROOT, 'node_modules/.bin/tsc'), ['-p', join(REPO_ROOT, 'tsconfig.build.json'), '--outDir', join(appDir, 'dist')], {
      cwd: REPO_ROOT,
    });
    await copyFile(join(REPO_ROOT, 'package.json'), join(appDir, 'package.json'));
    await symlink(join(REPO_ROOT, 'node_modules'), join(appDir, 'node_modules'), 'dir');
    upstream = await startFakeUpstream();
  }, 60_000);

  afterAll(async () => {
    await upstream?.close();
    if (appDir) await rm(appDir, { recursive: true, force: true });
  });

  it('imports at run time only production dependencies', async () => {
    const pkg = JSON.parse(await readFile(join(REPO_ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
    const files = (await readdir(join(appDir, 'dist'), { recursive: true })).filter((f) => f.endsWith('.js'));
    expect(files).toContain('main.js');
    const packages = new Set<string>();
    for (const file of files) {
      const code = await readFile(join(appDir, 'dist', file), 'utf8');
      // TypeScript's own scanner: static imports, re-exports and import() calls, not strings.
      for (const { fileName: spec } of ts.preProcessFile(code, true, true).importedFiles) {
        if (spec.startsWith('.') || spec.startsWith('node:') || builtinModules.includes(spec)) continue;
        packages.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : (spec.split('/')[0] ?? spec));
      }
    }
    expect(packages.size).toBeGreaterThan(0);
    for (const name of packages) expect(Object.keys(pkg.dependencies), `${name} is not a production dependency`).toContain(name);
  });

  it('starts with the image CMD, passes its HEALTHCHECK, and on SIGTERM finishes a stream then exits 0', async () => {
    const port = await freePort();
    const env = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      NODE_ENV: 'production',
      HOST: '127.0.0.1', // the image says 0.0.0.0; tests stay on loopback
      PORT: String(port),
      GATEWAY_API_KEYS: 'image-test-client-key',
      OPENAI_API_KEYS: 'sk-image-test',
      OPENAI_BASE_URL: upstream.openaiBaseUrl,
      GROQ_BASE_URL: upstream.groqBaseUrl,
      LOG_LEVEL: 'warn',
      SHUTDOWN_GRACE_MS: '15000',
    };
    const [command = 'node', ...args] = execForm(only(runtime, 'CMD').at(-1)?.args ?? '');
    const healthcheck = execForm(only(runtime, 'HEALTHCHECK').at(-1)?.args ?? '');
    const runHealthcheck = async () => {
      const [cmd = 'node', ...rest] = healthcheck;
      try {
        await run(cmd, rest, { env, timeout: 5_000 });
        return 0;
      } catch (error) {
        return (error as { code?: number }).code ?? 1;
      }
    };

    const child: ChildProcess = spawn(command, args, { cwd: appDir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout?.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr?.on('data', (c: Buffer) => (output += c.toString()));
    const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      let healthy = false;
      for (let i = 0; i < 100 && !healthy && child.exitCode === null; i++) {
        healthy = await fetch(`http://127.0.0.1:${port}/healthz`).then(
          (r) => r.ok,
          () => false,
        );
        if (!healthy) await new Promise((r) => setTimeout(r, 100));
      }
      expect(healthy, output).toBe(true);
      expect(await runHealthcheck()).toBe(0);

      // A stream that takes a while; SIGTERM arrives after its first bytes.
      upstream.options.chunkDelayMs = 150;
      const response = await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: 'Bearer image-test-client-key', 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'stop gracefully' }] }),
      });
      expect(response.status).toBe(200);
      const reader = (response.body as ReadableStream<Uint8Array>).getReader();
      const decoder = new TextDecoder();
      let text = decoder.decode((await reader.read()).value);
      child.kill('SIGTERM');
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        text += decoder.decode(value);
      }
      expect(text).toContain('data: [DONE]');
      expect(await exit).toBe(0);
      expect(await runHealthcheck()).not.toBe(0);
    } finally {
      upstream.options.chunkDelayMs = 0;
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });
});
