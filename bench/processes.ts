/**
 * Every process the benchmark starts goes through here, so all of them are stopped at the end,
 * on an error and on Ctrl-C alike: SIGTERM first (the gateway then writes its --cpu-prof
 * profile), SIGKILL for anything still alive after a grace period.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';

export interface Managed {
  name: string;
  child: ChildProcess;
  pid: number;
  /** The last lines of its stderr and stdout, for error messages. */
  output(): string;
  stop(): Promise<void>;
}

const running = new Set<Managed>();
const OUTPUT_TAIL_CHARS = 4_000;
const STOP_GRACE_MS = 3_000;

// Whatever script started children (run.ts, hit-path.ts), none of them outlives it, even when it
// exits early with process.exit().
process.once('exit', () => killAllNow());

export function startProcess(name: string, command: string, args: string[], options: SpawnOptions & { keepOutput?: boolean } = {}): Managed {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
  if (child.pid === undefined) throw new Error(`${name}: could not start ${command}`);
  let tail = '';
  const keep = (chunk: Buffer): void => {
    tail = (tail + chunk.toString('utf8')).slice(-OUTPUT_TAIL_CHARS);
  };
  // Always drained: a full pipe would block the child (log lines at LOG_LEVEL=info are many).
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const managed: Managed = {
    name,
    child,
    pid: child.pid,
    output: () => tail,
    stop: async () => {
      running.delete(managed);
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
      await exited;
      clearTimeout(timer);
    },
  };
  running.add(managed);
  return managed;
}

/** Resolves with the port a child prints as `listening <port>`. */
export function waitForListening(managed: Managed, timeoutMs = 30_000): Promise<number> {
  return new Promise((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(() => fail(new Error(`${managed.name} did not start within ${timeoutMs} ms:\n${managed.output()}`)), timeoutMs);
    const onData = (chunk: Buffer): void => {
      seen += chunk.toString('utf8');
      const match = /listening (\d+)/.exec(seen);
      if (match) {
        cleanup();
        resolve(Number(match[1]));
      }
    };
    const onExit = (): void => fail(new Error(`${managed.name} exited during start-up:\n${managed.output()}`));
    const cleanup = (): void => {
      clearTimeout(timer);
      managed.child.stdout?.off('data', onData);
      managed.child.off('exit', onExit);
    };
    const fail = (error: Error): void => {
      cleanup();
      reject(error);
    };
    managed.child.stdout?.on('data', onData);
    managed.child.once('exit', onExit);
  });
}

/** Polls `url` until it answers 200. */
export async function waitForHttp(url: string, managed: Managed, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (managed.child.exitCode !== null) throw new Error(`${managed.name} exited during start-up:\n${managed.output()}`);
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(1_000) });
      if (response.ok) return;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) throw new Error(`${managed.name} not ready at ${url} within ${timeoutMs} ms:\n${managed.output()}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** A port free right now on loopback (for servers that cannot report the one they picked). */
export { freePort } from '../test/helpers/free-port.js';

export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((managed) => managed.stop()));
}

/** Last resort when the driver itself exits: no child may outlive it. */
export function killAllNow(): void {
  for (const managed of running) managed.child.kill('SIGKILL');
  running.clear();
}
