/**
 * The real gateway process, as an operator runs it, for tests of start-up refusal, `.env`,
 * signals and exit codes. Three ways to start it:
 * - 'tsx' (the default, the quickest): `node --import tsx src/main.ts`;
 * - 'npm-start': `npm start`, as the README's quick start does from the repository root;
 * - 'node-dist': `node dist/main.js` after `npm run build`, as the Docker image does from /app.
 *
 * Each run gets its own scratch working directory, so a developer's `.env` in the repository
 * cannot leak into a test and a test's `.env` lands exactly where the gateway looks for it (the
 * working directory). For 'npm-start' that directory is a checkout made of symlinks to the
 * repository's package.json, tsconfig.json, src/ and node_modules/: npm runs a script in the
 * directory of the package.json it found, so this is the only faithful way to give `npm start`
 * a `.env` of its own without writing into the repository. For 'node-dist' it holds what the
 * image's /app holds (dist/, node_modules/, package.json), with dist/ built once per test file
 * by `npm run build` into a scratch directory, so test files running at once never rewrite a
 * dist/ another one is running. Under npm the gateway is a grandchild (npm → sh → tsx → node):
 * its pid, the one to signal, is read from its "gateway running" start-up line.
 *
 * PORT=0 and the listening log line tell the port. Every run is a process group of its own
 * (as a shell job is); groups still alive when the test file ends are killed.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll } from 'vitest';
import { trackGatewayProcess } from '../leak-check/track.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const MAIN = join(ROOT, 'src', 'main.ts');
const TSX_LOADER = pathToFileURL(join(ROOT, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;
const run = promisify(execFile);

export type LaunchWay = 'tsx' | 'npm-start' | 'node-dist';

export interface LaunchOptions {
  /** How the gateway is started (see the header). */
  way?: LaunchWay;
  /** The text of a `.env` file put in the working directory. */
  dotenv?: string;
  timeoutMs?: number;
}

const alive = new Set<ChildProcess>();
/** Scratch directories to remove after the test file (rm does not follow their symlinks). */
const scratch: string[] = [];
// After the test file, not on the process's 'exit': vitest ends its workers without one, which
// would leave a failed test's gateway running.
afterAll(async () => {
  for (const child of alive) killGroup(child, 'SIGKILL');
  await Promise.all(scratch.map((dir) => rm(dir, { recursive: true, force: true })));
});

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    if (child.pid !== undefined) process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface GatewayProcess {
  url: string;
  /** The gateway's own process (for 'npm-start', not the npm process that was spawned). */
  pid: number;
  /** What was spawned: node, or npm. */
  child: ChildProcess;
  /** Every stdout line so far (pino JSON; under npm, npm's own banner lines too). */
  stdout: string[];
  /** The stdout lines that are the gateway's JSON log lines, parsed. */
  logs(): Array<Record<string, unknown> & { msg?: string }>;
  stderr(): string;
  /** The exit of what was spawned (npm's mirrors the gateway's exit code). */
  exited: Promise<Exit>;
  /** `kill -<signal> <pid>` on the gateway's own process. */
  signal(signal: NodeJS.Signals): void;
  /** SIGKILL to the whole process group (end of a test). */
  kill(): void;
}

let distBuild: Promise<string> | undefined;

/**
 * `npm run build` once per test file, into a scratch install laid out like the image's /app.
 * Call it from a beforeAll with a generous timeout; launches with way 'node-dist' await it too.
 */
export function buildDist(): Promise<string> {
  distBuild ??= (async () => {
    const app = await mkdtemp(join(tmpdir(), 'gateway-dist-'));
    const home = await mkdtemp(join(tmpdir(), 'gateway-dist-home-'));
    scratch.push(app, home);
    await run('npm', ['run', 'build', '--silent', '--', '--outDir', join(app, 'dist')], { cwd: ROOT, env: npmEnv(home) });
    // The Dockerfile copies package.json (its "type": "module" makes dist/*.js ES modules).
    await copyFile(join(ROOT, 'package.json'), join(app, 'package.json'));
    await symlink(join(ROOT, 'node_modules'), join(app, 'node_modules'), 'dir');
    return app;
  })();
  return distBuild;
}

/** npm without a user's configuration, update checks or log files in the real home. */
function npmEnv(home: string): Record<string, string> {
  return { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: home, npm_config_update_notifier: 'false', npm_config_fund: 'false' };
}

async function workingDirectory(way: LaunchWay, dotenv: string | undefined): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `gateway-process-${way}-`));
  const link = (target: string, name: string) => symlink(target, join(dir, name));
  if (way === 'npm-start') {
    for (const name of ['package.json', 'tsconfig.json', 'src', 'node_modules']) await link(join(ROOT, name), name);
  } else if (way === 'node-dist') {
    const app = await buildDist();
    for (const name of ['dist', 'package.json', 'node_modules']) await link(join(app, name), name);
  }
  if (way === 'npm-start') await mkdir(join(dir, '.home'));
  if (dotenv !== undefined) await writeFile(join(dir, '.env'), dotenv);
  return dir;
}

function command(way: LaunchWay, cwd: string): [string, string[], Record<string, string>] {
  const path = process.env['PATH'] ?? '/usr/bin:/bin';
  if (way === 'npm-start') return ['npm', ['start'], npmEnv(join(cwd, '.home'))];
  if (way === 'node-dist') return [process.execPath, ['dist/main.js'], { PATH: path }];
  return [process.execPath, ['--import', TSX_LOADER, MAIN], { PATH: path }];
}

interface Launched {
  child: ChildProcess;
  stdout: string[];
  stderr: () => string;
  exited: Promise<Exit>;
}

async function launch(env: Record<string, string>, options: LaunchOptions): Promise<Launched> {
  const way = options.way ?? 'tsx';
  const cwd = await workingDirectory(way, options.dotenv);
  const [file, args, baseEnv] = command(way, cwd);
  const child = spawn(file, args, {
    cwd,
    env: { ...baseEnv, HOST: '127.0.0.1', PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  alive.add(child);
  // The leak check (test/leak-check/) searches its output and the responses read from it for keys.
  trackGatewayProcess(child, env, options.dotenv, cwd);
  const stdout: string[] = [];
  let partial = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    const lines = (partial + chunk.toString('utf8')).split('\n');
    partial = lines.pop() ?? '';
    stdout.push(...lines.filter(Boolean));
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const exited = new Promise<Exit>((resolve) => {
    child.once('exit', (code, signal) => {
      alive.delete(child);
      // Under npm the gateway may outlive npm for a moment: its directory goes at the end instead.
      if (way === 'npm-start') scratch.push(cwd);
      else void rm(cwd, { recursive: true, force: true });
      resolve({ code, signal });
    });
  });
  return { child, stdout, stderr: () => stderr, exited };
}

function jsonLines(stdout: readonly string[]): Array<Record<string, unknown> & { msg?: string }> {
  const lines: Array<Record<string, unknown> & { msg?: string }> = [];
  for (const line of stdout) {
    if (!line.startsWith('{')) continue;
    try {
      lines.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // not a log line
    }
  }
  return lines;
}

/** Starts the process and resolves once it listens and has said its pid. */
export async function startGatewayProcess(env: Record<string, string>, options: LaunchOptions = {}): Promise<GatewayProcess> {
  const running = await launch(env, options);
  const deadline = Date.now() + (options.timeoutMs ?? 30_000);
  let exit: Exit | undefined;
  void running.exited.then((e) => (exit = e));
  let url: string | undefined;
  while (Date.now() < deadline && exit === undefined) {
    for (const line of running.stdout) url ??= /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(line)?.[1];
    const pid = jsonLines(running.stdout).find((line) => line.msg?.startsWith('gateway running'))?.pid;
    if (url !== undefined && typeof pid === 'number') {
      return {
        ...running,
        url,
        pid,
        logs: () => jsonLines(running.stdout),
        signal: (signal) => process.kill(pid, signal),
        kill: () => killGroup(running.child, 'SIGKILL'),
      };
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  killGroup(running.child, 'SIGKILL');
  throw new Error(`the gateway process did not start listening (exit ${JSON.stringify(exit)}): ${running.stderr()}`);
}

/** Runs a process that is expected to exit on its own (a refused start-up). */
export async function runGatewayProcess(env: Record<string, string>, options: LaunchOptions = {}): Promise<Exit & { stderr: string }> {
  const running = await launch(env, options);
  const timer = setTimeout(() => killGroup(running.child, 'SIGKILL'), options.timeoutMs ?? 30_000);
  const exit = await running.exited;
  clearTimeout(timer);
  return { ...exit, stderr: running.stderr() };
}
