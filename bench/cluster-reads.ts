/**
 * `tsx bench/cluster-reads.ts [batches] [batchSize]`: what a loop turn's batch of cache reads costs
 * on a Redis Cluster (3 masters, 3 replicas, all on this machine), sent four ways, beside one MGET
 * on a single Redis:
 * - `get-each`: one GET per key, each its own write;
 * - `mget-by-slot`: keys grouped by hash slot, one MGET per slot (a lone key: GET);
 * - `pipeline-by-node`: keys grouped by the master serving their slot, one pipeline of GETs per node;
 * - `auto-pipelined`: one GET per key on a client with ioredis's enableAutoPipelining, which groups
 *   the commands of one loop turn per node by itself.
 * Reports CPU (user + system) of this process per read, and wall time per batch. Cache keys are
 * SHA-256 hashes, so a batch's keys fall on as many slots as it has keys.
 */
import { randomBytes } from 'node:crypto';
import { Cluster, Redis } from 'ioredis';
import { startRedisCluster } from '../test/helpers/redis-cluster.js';
import { startRedis } from '../test/helpers/redis-server.js';
import { keySlot } from '../src/cache/redis-slots.js';

const batches = Number(process.argv[2] ?? 2_000);
const batchSize = Number(process.argv[3] ?? 32);
const ROUNDS = 3;

type Way = (keys: string[]) => Promise<unknown>;

async function measure(name: string, way: Way, keys: string[][]): Promise<void> {
  for (let i = 0; i < 50; i++) await way(keys[i % keys.length]!); // warm-up
  const results: string[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const cpu = process.cpuUsage();
    const started = performance.now();
    for (let i = 0; i < batches; i++) await way(keys[i % keys.length]!);
    const wall = performance.now() - started;
    const used = process.cpuUsage(cpu);
    results.push(`${((used.user + used.system) / (batches * batchSize)).toFixed(1)} µs/read, ${((wall * 1000) / batches).toFixed(0)} µs/batch`);
  }
  console.log(`${name.padEnd(18)} ${results.join(' | ')}`);
}

const cluster = await startRedisCluster();
const single = await startRedis();
const seeds = cluster.nodes.map((node) => ({ host: '127.0.0.1', port: node.port }));
const plain = new Cluster(seeds, { enableOfflineQueue: true });
const auto = new Cluster(seeds, { enableAutoPipelining: true });
const one = new Redis(single.url);
const keys = Array.from({ length: 64 }, () => Array.from({ length: batchSize }, () => `cachegate:v1:${randomBytes(32).toString('base64url')}`));
const value = randomBytes(2_000);
for (const batch of keys) for (const key of batch) await Promise.all([plain.set(key, value), one.set(key, value)]);

const nodeOf = (key: string): string => plain.slots[keySlot(key)]?.[0] ?? '';
const groupBy = (batch: string[], by: (key: string) => string | number): Map<string | number, string[]> => {
  const groups = new Map<string | number, string[]>();
  for (const key of batch) {
    const group = by(key);
    const list = groups.get(group);
    if (list) list.push(key);
    else groups.set(group, [key]);
  }
  return groups;
};

console.log(`${batches} batches of ${batchSize} reads of 2 kB values, ${ROUNDS} rounds each`);
await measure('single mget', (batch) => one.mgetBuffer(batch), keys);
await measure('get-each', (batch) => Promise.all(batch.map((key) => plain.getBuffer(key))), keys);
await measure(
  'mget-by-slot',
  (batch) => Promise.all([...groupBy(batch, keySlot).values()].map((group) => (group.length === 1 ? plain.getBuffer(group[0]!) : plain.mgetBuffer(group)))),
  keys,
);
await measure(
  'pipeline-by-node',
  (batch) =>
    Promise.all(
      [...groupBy(batch, nodeOf).values()].map((group) => {
        const pipeline = plain.pipeline();
        for (const key of group) pipeline.getBuffer(key);
        return pipeline.exec();
      }),
    ),
  keys,
);
await measure('auto-pipelined', (batch) => Promise.all(batch.map((key) => auto.getBuffer(key))), keys);
plain.disconnect();
auto.disconnect();
one.disconnect();
await Promise.all([cluster.stop(), single.stop()]);
