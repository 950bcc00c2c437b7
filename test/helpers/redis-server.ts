/**
 * Real redis-server processes for tests: one per call, on a free loopback port, configured like
 * the production deployment (256 MB, allkeys-lru, no persistence). Killed when the test file ends.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createConnection } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from './free-port.js';

export interface RedisServerOptions {
  /** Extra redis-server arguments, e.g. ['--maxmemory', '16mb']; later flags win over the defaults. */
  args?: string[];
  /** How long to wait for the server to answer PING. */
  startTimeoutMs?: number;
}

export interface RedisServer {
  url: string;
  port: number;
  /** Graceful stop (SIGTERM), waits for the process to exit. */
  stop(): Promise<void>;
  /** Immediate death (SIGKILL), like a crashed or OOM-killed Redis. */
  kill(): void;
  /** Freeze the process (SIGSTOP): the socket stays open but nothing answers, like a hung host. */
  pause(): void;
  resume(): void;
  /** Start a fresh server on the same port (after stop or kill). */
  restart(): Promise<void>;
}

const DEFAULT_ARGS = ['--maxmemory', '256mb', '--maxmemory-policy', 'allkeys-lru', '--save', '', '--appendonly', 'no'];
const running = new Set<ChildProcess>();

await killLeftoversAtEnd(running);

/**
 * Servers a test left running (it failed or timed out before stopping them) are killed when its
 * test file ends, and at the latest when the process exits. Vitest ends its workers without an
 * 'exit' event, so under vitest a hook after the file does it (registered while the file is being
 * collected: await this at the top of the module); the benchmarks, which use these servers too,
 * run outside vitest and rely on 'exit'.
 */
export async function killLeftoversAtEnd(children: Set<ChildProcess>): Promise<void> {
  const killAll = (): void => {
    for (const child of children) child.kill('SIGKILL');
  };
  process.once('exit', killAll);
  if (process.env['VITEST']) (await import('vitest')).afterAll(killAll);
}

export async function startRedis(options: RedisServerOptions = {}): Promise<RedisServer> {
  const port = await freePort();
  let child = await launch(port, options);
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    async stop() {
      await terminate(child, 'SIGTERM');
    },
    kill() {
      child.kill('SIGKILL');
    },
    pause() {
      child.kill('SIGSTOP');
    },
    resume() {
      child.kill('SIGCONT');
    },
    async restart() {
      await terminate(child, 'SIGKILL');
      child = await launch(port, options);
    },
  };
}

/**
 * A Redis for tests that only need a server: the one named by REDIS_URL when set (tests must then use
 * their own key prefixes and never flush), else a fresh local one.
 */
export async function redisForTests(options: RedisServerOptions = {}): Promise<{ url: string; external: boolean; stop(): Promise<void> }> {
  const external = process.env['REDIS_URL'];
  if (external) return { url: external, external: true, stop: async () => {} };
  const server = await startRedis(options);
  return { url: server.url, external: false, stop: () => server.stop() };
}

async function launch(port: number, options: RedisServerOptions): Promise<ChildProcess> {
  const args = ['--port', String(port), '--bind', '127.0.0.1', ...DEFAULT_ARGS, ...(options.args ?? [])];
  const child = spawn('redis-server', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  running.add(child);
  child.once('exit', () => running.delete(child));
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const deadline = Date.now() + (options.startTimeoutMs ?? 10_000);
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`redis-server exited with ${child.exitCode}: ${stderr.trim()}`);
    if (await answersPing(port)) return child;
    await sleep(25);
  }
  child.kill('SIGKILL');
  throw new Error(`redis-server did not answer PING on port ${port} in time: ${stderr.trim()}`);
}

async function terminate(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGCONT'); // a paused process cannot act on SIGTERM
  child.kill(signal);
  await exited;
}

function answersPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ port, host: '127.0.0.1' });
    const finish = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => finish(false));
    socket.once('error', () => finish(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (data: Buffer) => finish(data.toString().startsWith('+PONG')));
  });
}
