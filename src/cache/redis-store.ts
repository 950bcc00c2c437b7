import { Cluster } from 'ioredis';
import { keySlot } from './redis-slots.js';
import { createRedisClient, redisLabel, type RedisClient, type RedisTarget, withDeadline } from './redis-connection.js';
import { CacheStoreError, type CacheStore, type CacheStoreObservers, type CacheStoreOp } from './store.js';

export interface RedisStoreOptions extends CacheStoreObservers {
  /** A command that has not answered after this many ms rejects (the caller then bypasses the cache). */
  commandTimeoutMs?: number;
  /** How long `connect()` waits for the first connection before returning a store that is still down. */
  startupWaitMs?: number;
  /**
   * A connection that receives nothing for this long while a command is pending is destroyed and
   * re-dialled: catches a host that vanished without closing the socket (no RST).
   */
  socketTimeoutMs?: number;
  /** Longest pause between reconnection attempts. */
  maxReconnectDelayMs?: number;
  /** Start-up advice about the server's configuration (e.g. its eviction policy). */
  warn?: (message: string) => void;
}

interface PendingRead {
  key: string;
  resolve: (value: Buffer | undefined) => void;
  reject: (error: unknown) => void;
}

const DEFAULT_COMMAND_TIMEOUT_MS = 250;
const DEFAULT_STARTUP_WAIT_MS = 2_000;
const DEFAULT_SOCKET_TIMEOUT_MS = 5_000;
const DEFAULT_MAX_RECONNECT_DELAY_MS = 2_000;

/**
 * The shared cache on Redis (or Valkey): one server, a Cluster, or the master Sentinels name.
 * Commands fail fast instead of queueing while the server is away, the client re-dials on its own
 * (and follows a failover), and connection errors never reach the process as crashes.
 */
export class RedisStore implements CacheStore {
  readonly label: string;
  readonly #client: RedisClient;
  /** Set on a Cluster, whose batched reads are grouped by the node serving each key. */
  readonly #cluster: Cluster | undefined;
  readonly #commandTimeoutMs: number;
  readonly #options: RedisStoreOptions;
  /** False after a command timed out on a seemingly connected socket, until one succeeds again. */
  #answering = true;
  #reportedUp: boolean | undefined;
  #checkedServerConfig = false;
  #closing = false;
  /** Reads waiting for the end of this event-loop turn, sent together. */
  #pendingReads: PendingRead[] | undefined;

  /**
   * Builds the store and waits (up to `startupWaitMs`) for the first connection. Never rejects for an
   * unreachable server: the gateway must start and serve from upstream while the store keeps dialling.
   * Throws only for a URL ioredis cannot use.
   */
  static async connect(target: string | RedisTarget, options: RedisStoreOptions = {}): Promise<RedisStore> {
    const store = new RedisStore(target, options);
    await store.#waitUntilReady(options.startupWaitMs ?? DEFAULT_STARTUP_WAIT_MS);
    return store;
  }

  constructor(target: string | RedisTarget, options: RedisStoreOptions = {}) {
    this.#options = options;
    const redis: RedisTarget = typeof target === 'string' ? { kind: 'url', url: target } : target;
    this.label = redisLabel(redis);
    this.#commandTimeoutMs = options.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
    this.#client = createRedisClient(redis, {
      commandTimeoutMs: this.#commandTimeoutMs,
      socketTimeoutMs: options.socketTimeoutMs ?? DEFAULT_SOCKET_TIMEOUT_MS,
      connectTimeoutMs: Math.max(1_000, options.startupWaitMs ?? DEFAULT_STARTUP_WAIT_MS),
      maxReconnectDelayMs: options.maxReconnectDelayMs ?? DEFAULT_MAX_RECONNECT_DELAY_MS,
    });
    this.#cluster = this.#client instanceof Cluster ? this.#client : undefined;
    // An 'error' event without a listener would crash the process; connection trouble is reported, not thrown.
    this.#client.on('error', (err: Error) => {
      if (!this.#closing) this.#options.onError?.('connect', err);
    });
    this.#client.on('ready', () => {
      this.#answering = true;
      this.#reportStatus();
      if (!this.#checkedServerConfig) {
        this.#checkedServerConfig = true;
        void this.#adviseOnServerConfig();
      }
    });
    this.#client.on('close', () => this.#reportStatus());
    this.#client.connect().catch(() => {
      // The first dial failed; the 'error' listener reported it and retryStrategy keeps dialling.
    });
  }

  /**
   * Reads issued in the same event-loop turn (concurrent hits) go out as one MGET: one write and
   * one reply for all of them, which under load costs Redis and the gateway a fraction of one GET
   * each. A lone read is a plain GET, with no batching cost (ioredis's auto-pipelining costs a
   * lone command ~30 µs of CPU, which a miss at low traffic would pay twice).
   */
  get(key: string): Promise<Buffer | undefined> {
    return new Promise<Buffer | undefined>((resolve, reject) => {
      if (this.#pendingReads === undefined) {
        this.#pendingReads = [];
        // After this loop turn's I/O callbacks: every request read in it joins the batch.
        setImmediate(() => this.#sendReads());
      }
      this.#pendingReads.push({ key, resolve, reject });
    });
  }

  #sendReads(): void {
    const reads = this.#pendingReads ?? [];
    this.#pendingReads = undefined;
    const [only] = reads;
    if (this.#cluster && reads.length > 1) {
      this.#sendClusterReads(this.#cluster, reads);
      return;
    }
    if (reads.length === 1 && only) {
      this.#run('get', () => this.#client.getBuffer(only.key)).then((value) => only.resolve(value ?? undefined), only.reject);
      return;
    }
    this.#run('get', () => this.#client.mgetBuffer(reads.map((read) => read.key)), reads.length).then(
      (values) => {
        for (const [index, read] of reads.entries()) read.resolve(values[index] ?? undefined);
      },
      (error: unknown) => {
        for (const read of reads) read.reject(error);
      },
    );
  }

  /**
   * A Cluster refuses an MGET whose keys live in different slots, and cache keys (hashes) fall on
   * as many slots as there are keys: the batch goes out as one pipeline of GETs per master node,
   * one write each. Measured in bench/cluster-reads.ts against one GET each, MGETs grouped by
   * slot and ioredis's auto-pipelining (docs/scale-out.md has the figures): the cheapest.
   */
  #sendClusterReads(cluster: Cluster, reads: PendingRead[]): void {
    const byNode = new Map<string, PendingRead[]>();
    for (const read of reads) {
      // Before the slot map is known (or for a slot without a master) the read goes alone.
      const node = cluster.slots[keySlot(read.key)]?.[0] ?? read.key;
      const group = byNode.get(node);
      if (group) group.push(read);
      else byNode.set(node, [read]);
    }
    for (const group of byNode.values()) {
      const pipeline = cluster.pipeline();
      for (const read of group) pipeline.getBuffer(read.key);
      this.#run('get', () => pipeline.exec(), group.length).then(
        (replies) => {
          for (const [index, read] of group.entries()) {
            const [error, value] = replies?.[index] ?? [new Error('no reply')];
            if (error) {
              this.#options.onError?.('get', error);
              read.reject(new CacheStoreError('get', error));
            } else read.resolve((value as Buffer | null) ?? undefined);
          }
        },
        (error: unknown) => {
          for (const read of group) read.reject(error);
        },
      );
    }
  }

  async set(key: string, value: Buffer, ttlSeconds: number): Promise<void> {
    await this.#run('set', () => (ttlSeconds > 0 ? this.#client.set(key, value, 'EX', Math.ceil(ttlSeconds)) : this.#client.set(key, value)));
  }

  async delete(key: string): Promise<void> {
    await this.#run('delete', () => this.#client.del(key));
  }

  async ping(): Promise<boolean> {
    try {
      const answer = await this.#client.ping();
      this.#markAnswering(true);
      return answer === 'PONG';
    } catch {
      return false;
    }
  }

  /** The connection, for the gateway's other uses of the same Redis (coalescing across replicas). */
  redisClient(): RedisClient {
    return this.#client;
  }

  isUp(): boolean {
    return this.#client.status === 'ready' && this.#answering;
  }

  async close(): Promise<void> {
    this.#closing = true;
    try {
      await this.#client.quit();
    } catch {
      // Not connected (or the server vanished mid-QUIT): drop the socket and stop re-dialling.
      this.#client.disconnect();
    }
  }

  /** `operations`: how many store operations the command carries (a batched read: one per key). */
  async #run<T>(op: CacheStoreOp, command: () => Promise<T>, operations = 1): Promise<T> {
    try {
      const result = await (this.#cluster ? withDeadline(command(), this.#commandTimeoutMs) : command());
      this.#markAnswering(true);
      return result;
    } catch (err) {
      const error = err instanceof Error ? err : new Error(String(err));
      if (/timed out/i.test(error.message)) this.#markAnswering(false);
      for (let i = 0; i < operations; i++) this.#options.onError?.(op, error);
      throw new CacheStoreError(op, error);
    }
  }

  #markAnswering(answering: boolean): void {
    if (this.#answering === answering) return;
    this.#answering = answering;
    this.#reportStatus();
  }

  #reportStatus(): void {
    const up = this.isUp();
    if (up === this.#reportedUp) return;
    this.#reportedUp = up;
    this.#options.onStatus?.(up);
  }

  async #waitUntilReady(timeoutMs: number): Promise<void> {
    if (this.#client.status === 'ready') return;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.#client.off('ready', done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      this.#client.on('ready', done);
    });
    // Report "down" at start-up too, so a gauge starts at 0 rather than unset.
    this.#reportStatus();
  }

  /**
   * A cache that fills up must evict, not refuse writes: warn when the server would answer OOM
   * errors instead. Managed services often disable CONFIG; that is not our business to fail on.
   */
  async #adviseOnServerConfig(): Promise<void> {
    const warn = this.#options.warn;
    if (!warn) return;
    try {
      const policy = await this.#configGet('maxmemory-policy');
      if (policy !== undefined && !policy.startsWith('allkeys-')) {
        warn(`Redis maxmemory-policy is "${policy}": set maxmemory-policy allkeys-lru so a full cache evicts old entries instead of refusing new ones`);
      }
      const maxmemory = await this.#configGet('maxmemory');
      if (maxmemory === '0') {
        warn('Redis maxmemory is 0 (unbounded): set maxmemory (e.g. 256mb) so the cache cannot exhaust the host');
      }
    } catch {
      // CONFIG is disabled or renamed (managed Redis): nothing to check.
    }
  }

  async #configGet(parameter: string): Promise<string | undefined> {
    const reply = (await this.#client.config('GET', parameter)) as unknown;
    if (Array.isArray(reply) && typeof reply[1] === 'string') return reply[1];
    return undefined;
  }
}
