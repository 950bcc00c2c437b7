/**
 * The real gateway process (`node --import tsx src/main.ts`), as an operator runs it, for tests
 * of start-up refusal, signals and exit codes. It runs in a scratch directory so a developer's
 * `.env` in the repository cannot leak into the test; PORT=0 and the listening log line tell
 * the port. Children still alive when the test process ends are killed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const MAIN = join(ROOT, 'src', 'main.ts');
const TSX_LOADER = pathToFileURL(join(ROOT, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;

const alive = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of alive) child.kill('SIGKILL');
});

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface GatewayProcess {
  url: string;
  child: ChildProcess;
  /** Every stdout line so far (pino JSON). */
  stdout: string[];
  stderr(): string;
  exited: Promise<Exit>;
}

function launch(env: Record<string, string>): { child: ChildProcess; stdout: string[]; stderr: () => string; exited: Promise<Exit> } {
  const child = spawn(process.execPath, ['--import', TSX_LOADER, MAIN], {
    cwd: mkdtempSync(join(tmpdir(), 'gateway-process-')),
    env: { PATH: process.env['PATH'] ?? '', HOST: '127.0.0.1', PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  alive.add(child);
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
      resolve({ code, signal });
    });
  });
  return { child, stdout, stderr: () => stderr, exited };
}

/** Starts the process and resolves once it listens. */
export async function startGatewayProcess(env: Record<string, string>, timeoutMs = 20_000): Promise<GatewayProcess> {
  const running = launch(env);
  const deadline = Date.now() + timeoutMs;
  let exit: Exit | undefined;
  void running.exited.then((e) => (exit = e));
  while (Date.now() < deadline && exit === undefined) {
    for (const line of running.stdout) {
      const match = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(line);
      if (match?.[1]) return { ...running, url: match[1] };
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  running.child.kill('SIGKILL');
  throw new Error(`the gateway process did not start listening (exit ${JSON.stringify(exit)}): ${running.stderr()}`);
}

/** Runs a process that is expected to exit on its own (a refused start-up). */
export async function runGatewayProcess(env: Record<string, string>, timeoutMs = 20_000): Promise<Exit & { stderr: string }> {
  const running = launch(env);
  const timer = setTimeout(() => running.child.kill('SIGKILL'), timeoutMs);
  const exit = await running.exited;
  clearTimeout(timer);
  return { ...exit, stderr: running.stderr() };
}
