/**
 * A real Redis Cluster for tests: N masters with one replica each, every node a redis-server
 * started by startRedis on loopback, joined by `redis-cli --cluster create`. The node timeout is
 * short (1 s by default) so a killed master's replica is promoted within a few seconds, which
 * keeps failover tests well under a minute.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { freePort } from './free-port.js';
import { startRedis, type RedisServer } from './redis-server.js';

const run = promisify(execFile);

export interface ClusterNode {
  port: number;
  server: RedisServer;
  /** Set once kill() was called. */
  killed: boolean;
  /** SIGKILL, like a crashed host: its replica is promoted after the node timeout. */
  kill(): void;
}

export interface RedisCluster {
  nodes: ClusterNode[];
  /** `host:port` seeds, comma-separated, as REDIS_CLUSTER_NODES takes them. */
  seeds: string;
  /** The node serving `key`'s slot as master right now (asked of a live node). */
  masterOf(key: string): Promise<ClusterNode>;
  /** Every key the live masters hold, with the master holding it (tests keep few keys). */
  keysByMaster(): Promise<Map<string, ClusterNode>>;
  /** Resolves once every live node reports cluster_state:ok and every slot's master is a live node. */
  waitUntilHealthy(timeoutMs: number): Promise<void>;
  stop(): Promise<void>;
}

export interface RedisClusterOptions {
  masters?: number;
  /** cluster-node-timeout: how long a silent master is given before its replica takes over. */
  nodeTimeoutMs?: number;
  password?: string;
}

export async function startRedisCluster(options: RedisClusterOptions = {}): Promise<RedisCluster> {
  const masters = options.masters ?? 3;
  const dir = await mkdtemp(join(tmpdir(), 'cachegate-cluster-'));
  const auth = options.password ? ['--requirepass', options.password, '--masterauth', options.password] : [];
  const nodes: ClusterNode[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(nodes.map((node) => node.server.stop()));
    if (!process.env['KEEP_CLUSTER_LOGS']) await rm(dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < masters * 2; i++) {
      // The bus port is given explicitly: the default (port + 10000) may be taken or past 65535.
      const busPort = await freePort();
      const server = await startRedis({
        args: [
          '--cluster-enabled',
          'yes',
          '--cluster-port',
          String(busPort),
          '--cluster-config-file',
          join(dir, `nodes-${i}.conf`),
          '--cluster-node-timeout',
          String(options.nodeTimeoutMs ?? 1_000),
          '--dir',
          dir,
          '--logfile',
          join(dir, `node-${i}.log`),
          '--maxmemory',
          '64mb',
          // A replica that never finished its first sync is no candidate for promotion: sync at once.
          '--repl-diskless-sync-delay',
          '0',
          ...auth,
        ],
      });
      const node: ClusterNode = {
        port: server.port,
        server,
        killed: false,
        kill() {
          node.killed = true;
          server.kill();
        },
      };
      nodes.push(node);
    }
    const addresses = nodes.map((node) => `127.0.0.1:${node.port}`);
    const cliAuth = options.password ? ['-a', options.password, '--no-auth-warning'] : [];
    await run('redis-cli', [...cliAuth, '--cluster', 'create', ...addresses, '--cluster-replicas', '1', '--cluster-yes'], { timeout: 30_000 });
  } catch (error) {
    await stop();
    throw error;
  }

  const ask = async <T>(node: ClusterNode, command: (client: Redis) => Promise<T>): Promise<T> => {
    const client = new Redis({
      port: node.port,
      host: '127.0.0.1',
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
      connectTimeout: 500,
      commandTimeout: 1_000,
      ...(options.password ? { password: options.password } : {}),
    });
    client.on('error', () => {});
    try {
      await client.connect();
      return await command(client);
    } finally {
      client.disconnect();
    }
  };
  const alive = (): ClusterNode[] => nodes.filter((node) => !node.killed);

  const slots = (node: ClusterNode): Promise<Array<[number, number, [string, number, ...unknown[]]]>> =>
    ask(node, (client) => client.call('CLUSTER', 'SLOTS')) as Promise<Array<[number, number, [string, number, ...unknown[]]]>>;
  const mastersAlive = async (): Promise<boolean> => {
    for (const node of alive()) {
      const ranges = await slots(node).catch(() => undefined);
      if (!ranges) return false;
      const covered = ranges.reduce((sum, [from, to]) => sum + (to - from + 1), 0);
      if (covered !== 16_384 || ranges.some(([, , master]) => !alive().some((live) => live.port === Number(master[1])))) return false;
    }
    return true;
  };

  const waitForReplicasInSync = async (timeoutMs: number): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const infos = await Promise.all(nodes.map((node) => ask(node, (client) => client.info('replication')).catch(() => '')));
      const replicas = infos.filter((info) => info.includes('role:slave'));
      if (replicas.length === masters && replicas.every((info) => info.includes('master_link_status:up'))) return;
      await sleep(100);
    }
    throw new Error(`the cluster's replicas did not sync within ${timeoutMs} ms`);
  };

  const cluster: RedisCluster = {
    nodes,
    seeds: nodes.map((node) => `127.0.0.1:${node.port}`).join(','),
    async masterOf(key) {
      for (const node of alive()) {
        try {
          const slot = Number(await ask(node, (client) => client.call('CLUSTER', 'KEYSLOT', key)));
          const shard = (await slots(node)).find(([from, to]) => slot >= from && slot <= to);
          const owner = shard && nodes.find((candidate) => candidate.port === Number(shard[2][1]));
          if (owner) return owner;
        } catch {
          // try the next node
        }
      }
      throw new Error(`no live node knows the master of ${key}`);
    },
    async keysByMaster() {
      const holders = new Map<string, ClusterNode>();
      for (const node of alive()) {
        const role = await ask(node, (client) => client.info('replication')).catch(() => '');
        if (!role.includes('role:master')) continue;
        for (const key of await ask(node, (client) => client.keys('*'))) holders.set(key, node);
      }
      return holders;
    },
    async waitUntilHealthy(timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        const states = await Promise.all(alive().map((node) => ask(node, (client) => client.call('CLUSTER', 'INFO')).then(String, () => 'unreachable')));
        if (states.every((info) => info.includes('cluster_state:ok')) && (await mastersAlive())) return;
        await sleep(100);
      }
      throw new Error(`the cluster did not become healthy within ${timeoutMs} ms`);
    },
    stop,
  };
  await cluster.waitUntilHealthy(20_000);
  await waitForReplicasInSync(20_000);
  return cluster;
}
