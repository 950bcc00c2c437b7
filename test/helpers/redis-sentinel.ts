/**
 * A real Sentinel deployment for tests: one master, one replica and three sentinels, every one a
 * redis-server process on loopback. down-after-milliseconds is short (1 s by default) so a killed
 * master's replica is promoted within a few seconds.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { freePort } from './free-port.js';
import { killLeftoversAtEnd, startRedis, type RedisServer } from './redis-server.js';

export interface RedisSentinels {
  master: RedisServer;
  replica: RedisServer;
  /** `host:port` of the three sentinels, comma-separated, as REDIS_SENTINELS takes them. */
  sentinels: string;
  masterName: string;
  /** The port of the master the sentinels name right now. */
  currentMasterPort(): Promise<number | undefined>;
  stop(): Promise<void>;
}

export interface RedisSentinelOptions {
  masterName?: string;
  downAfterMs?: number;
  password?: string;
}

const running = new Set<ChildProcess>();
await killLeftoversAtEnd(running);

export async function startRedisSentinels(options: RedisSentinelOptions = {}): Promise<RedisSentinels> {
  const masterName = options.masterName ?? 'mymaster';
  // requirepass is set once each node answers (startRedis's readiness check is an unauthenticated PING).
  const masterAuth = options.password ? ['--masterauth', options.password] : [];
  const dir = await mkdtemp(join(tmpdir(), 'cachegate-sentinel-'));
  // --dir: a replica's first sync writes the master's snapshot to its working directory.
  const nodeArgs = [...masterAuth, '--repl-diskless-sync-delay', '0', '--dir', dir];
  const master = await startRedis({ args: nodeArgs });
  const replica = await startRedis({ args: [...nodeArgs, '--replicaof', '127.0.0.1', String(master.port)] });
  if (options.password) {
    for (const node of [master, replica]) await askNode(node.port, undefined, (client) => client.config('SET', 'requirepass', options.password!));
  }
  const sentinels: Array<{ port: number; child: ChildProcess }> = [];
  const stop = async (): Promise<void> => {
    for (const { child } of sentinels) child.kill('SIGKILL');
    await Promise.all([master.stop(), replica.stop()]);
    await rm(dir, { recursive: true, force: true });
  };
  try {
    // The replica is in sync before any sentinel starts, so the first INFO a sentinel sends the
    // master already lists it (the next would come only 10 s later).
    await waitFor(20_000, 'the replica to sync', async () => {
      const info = await askNode(replica.port, options.password, (client) => client.info('replication')).catch(() => '');
      return info.includes('master_link_status:up');
    });
    // Each sentinel is told its peers and the replica up front (the lines a sentinel writes into
    // its own file once it has found them), instead of waiting for the hello messages that
    // announce peers every 2 s: on a loaded machine discovery alone outran the wait.
    const members = await Promise.all(
      [0, 1, 2].map(async (i) => ({ port: await freePort(), id: randomBytes(20).toString('hex'), file: join(dir, `sentinel-${i}.conf`) })),
    );
    for (const member of members) {
      await writeFile(
        member.file,
        [
          `port ${member.port}`,
          'bind 127.0.0.1',
          `dir ${dir}`,
          `sentinel myid ${member.id}`,
          `sentinel monitor ${masterName} 127.0.0.1 ${master.port} 2`,
          `sentinel down-after-milliseconds ${masterName} ${options.downAfterMs ?? 1_000}`,
          `sentinel failover-timeout ${masterName} 10000`,
          `sentinel parallel-syncs ${masterName} 1`,
          ...(options.password ? [`sentinel auth-pass ${masterName} ${options.password}`] : []),
          `sentinel known-replica ${masterName} 127.0.0.1 ${replica.port}`,
          ...members.filter((peer) => peer !== member).map((peer) => `sentinel known-sentinel ${masterName} 127.0.0.1 ${peer.port} ${peer.id}`),
          '',
        ].join('\n'),
      );
    }
    for (const member of members) {
      // A sentinel rewrites its own configuration file: each has a writable one.
      const child = spawn('redis-server', [member.file, '--sentinel'], { stdio: 'ignore' });
      running.add(child);
      child.once('exit', () => running.delete(child));
      sentinels.push({ port: member.port, child });
    }
    await waitFor(30_000, 'the sentinels to see the replica and each other', async () => {
      for (const { port } of sentinels) {
        const replicas = (await askSentinel(port, 'REPLICAS', masterName)) as unknown[] | undefined;
        const peers = (await askSentinel(port, 'SENTINELS', masterName)) as unknown[] | undefined;
        if (!replicas || replicas.length < 1 || !peers || peers.length < 2) return false;
      }
      return true;
    });
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    master,
    replica,
    sentinels: sentinels.map(({ port }) => `127.0.0.1:${port}`).join(','),
    masterName,
    async currentMasterPort() {
      for (const { port } of sentinels) {
        const address = (await askSentinel(port, 'GET-MASTER-ADDR-BY-NAME', masterName)) as [string, string] | undefined;
        if (address) return Number(address[1]);
      }
      return undefined;
    },
    stop,
  };
}

async function waitFor(timeoutMs: number, what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(100);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

function askSentinel(port: number, ...args: string[]): Promise<unknown> {
  return askNode(port, undefined, (client) => client.call('SENTINEL', ...args)).catch(() => undefined);
}

async function askNode<T>(port: number, password: string | undefined, command: (client: Redis) => Promise<T>): Promise<T> {
  const client = new Redis({
    port,
    host: '127.0.0.1',
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: 500,
    commandTimeout: 1_000,
    ...(password ? { password } : {}),
  });
  client.on('error', () => {});
  try {
    await client.connect();
    return await command(client);
  } finally {
    client.disconnect();
  }
}
