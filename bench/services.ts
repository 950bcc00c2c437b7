/**
 * Starting the servers under test, each in its own process: the fake upstream, the bare Fastify
 * route, redis-server and the gateway (from src/ through tsx, or from dist/ after `npm run build`).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createConnection } from 'node:net';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, startProcess, waitForHttp, waitForListening, type Managed } from './processes.js';

export const REPO_ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));
const TSX = ['--import', 'tsx'];

/** Only what a process needs: the driver's own environment (REDIS_URL, keys, …) must not leak in. */
function baseEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of ['PATH', 'HOME', 'LANG', 'TMPDIR']) {
    const value = process.env[name];
    if (value !== undefined) env[name] = value;
  }
  return env;
}

export interface FakeUpstreamConfig {
  delayMs?: number;
  tokensPerSecond?: number;
  answerTokens?: number;
}

export interface FakeUpstreamStats {
  chat: number;
  chatStreams: number;
  embeddings: number;
  models: number;
  aborted: number;
}

export interface FakeUpstreamProcess {
  managed: Managed;
  url: string;
  port: number;
  configure(config: FakeUpstreamConfig): Promise<void>;
  stats(): Promise<FakeUpstreamStats>;
}

export async function startFakeUpstream(config: Required<FakeUpstreamConfig>): Promise<FakeUpstreamProcess> {
  const managed = startProcess('fake upstream', process.execPath, [...TSX, 'bench/servers/fake-upstream.ts'], {
    cwd: REPO_ROOT,
    env: {
      ...baseEnv(),
      FAKE_DELAY_MS: String(config.delayMs),
      FAKE_TOKENS_PER_SECOND: String(config.tokensPerSecond),
      FAKE_ANSWER_TOKENS: String(config.answerTokens),
    },
  });
  const port = await waitForListening(managed);
  const url = `http://127.0.0.1:${port}`;
  return {
    managed,
    url,
    port,
    async configure(next) {
      const response = await fetch(`${url}/__config`, { method: 'POST', body: JSON.stringify(next) });
      if (!response.ok) throw new Error(`fake upstream refused its configuration: ${response.status}`);
    },
    async stats() {
      return (await (await fetch(`${url}/__stats`)).json()) as FakeUpstreamStats;
    },
  };
}

/** The bare Fastify route answering `answer` (the bytes of a cached answer). */
export async function startConstantServer(dir: string, answer: string): Promise<{ managed: Managed; url: string }> {
  const file = join(dir, 'constant-answer.json');
  writeFileSync(file, answer);
  const managed = startProcess('constant JSON server', process.execPath, [...TSX, 'bench/servers/constant-json.ts'], {
    cwd: REPO_ROOT,
    env: { ...baseEnv(), CONSTANT_BODY_FILE: file, PORT: '0' },
  });
  const port = await waitForListening(managed);
  return { managed, url: `http://127.0.0.1:${port}` };
}

/** One of the two naive prototypes (bench/servers/naive.ts): `proxy` in front of the upstream, or `redis-hit`. */
export async function startNaive(
  mode: 'proxy' | 'redis-hit',
  env: { upstreamUrl?: string; redisUrl?: string; answer?: string },
): Promise<{ managed: Managed; url: string }> {
  const managed = startProcess(`naive ${mode}`, process.execPath, [...TSX, 'bench/servers/naive.ts'], {
    cwd: REPO_ROOT,
    env: {
      ...baseEnv(),
      NAIVE_MODE: mode,
      ...(env.upstreamUrl ? { UPSTREAM_URL: env.upstreamUrl } : {}),
      ...(env.redisUrl ? { REDIS_URL: env.redisUrl } : {}),
      ...(env.answer ? { NAIVE_ANSWER: env.answer } : {}),
    },
  });
  const port = await waitForListening(managed);
  return { managed, url: `http://127.0.0.1:${port}` };
}

export interface RedisProcess {
  managed: Managed;
  url: string;
  port: number;
  /** One command over a fresh connection (INFO, DBSIZE, …); the raw reply text. */
  command(...args: string[]): Promise<string>;
}

export async function startRedisServer(dir: string): Promise<RedisProcess> {
  const port = await freePort();
  mkdirSync(dir, { recursive: true });
  // Like the production deployment: 256 MB, allkeys-lru, no persistence.
  const managed = startProcess('redis-server', 'redis-server', [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--save',
    '',
    '--appendonly',
    'no',
    '--maxmemory',
    '256mb',
    '--maxmemory-policy',
    'allkeys-lru',
    '--dir',
    dir,
  ]);
  const command = (...args: string[]): Promise<string> => redisCommand(port, args);
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      if ((await command('PING')).includes('PONG')) break;
    } catch {
      // Not listening yet.
    }
    if (managed.child.exitCode !== null || Date.now() > deadline) throw new Error(`redis-server did not start:\n${managed.output()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return { managed, url: `redis://127.0.0.1:${port}`, port, command };
}

function redisCommand(port: number, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    let reply = '';
    const request = `*${args.length}\r\n${args.map((arg) => `$${Buffer.byteLength(arg)}\r\n${arg}\r\n`).join('')}`;
    socket.setTimeout(2_000, () => socket.destroy(new Error('redis command timed out')));
    socket.on('connect', () => socket.write(request));
    socket.on('data', (chunk) => {
      reply += chunk.toString('utf8');
      // Simple and bulk replies end with CRLF; a bulk reply is complete once its length arrived.
      const bulk = /^\$(\d+)\r\n/.exec(reply);
      if (!bulk || reply.length >= bulk[0].length + Number(bulk[1]) + 2) socket.end();
    });
    socket.on('end', () => resolve(reply));
    socket.on('error', reject);
  });
}

export interface GatewayOptions {
  name: string;
  upstreamUrl: string;
  redisUrl?: string;
  logLevel: string;
  /** Write a V8 CPU profile of the whole process into this directory when it stops. */
  cpuProfDir?: string;
  /** The compiled entry (see buildGateway); src/main.ts through tsx when undefined. */
  compiledMain?: string;
  /** Node flags, as the deployment sets them in NODE_OPTIONS (docker-compose.yml). */
  nodeFlags?: readonly string[];
  /** More environment for this gateway (e.g. the soak's small CACHE_MAX_BYTES). */
  env?: Record<string, string>;
}

export interface GatewayProcess {
  managed: Managed;
  url: string;
  metrics(): Promise<string>;
}

export const BENCH_OPENAI_KEYS = 'sk-bench-openai-1,sk-bench-openai-2';
/**
 * Compiles a gateway source tree the way `npm run build` does, into bench/.build/<name>/ (not
 * dist/, which may be someone else's): production runs compiled JS, and tsx's loader costs ~35 MB
 * of RSS on its own, which would blur the memory target. `sourceDir` holds src/ and the tsconfig
 * files (the repository, or a baseline copy for a before/after comparison). Type errors do not
 * stop the emit; a missing main.js does.
 */
export function buildGateway(name = 'dist', sourceDir = REPO_ROOT): string {
  const outDir = join(REPO_ROOT, 'bench/.build', name);
  rmSync(outDir, { recursive: true, force: true });
  const tsc = join(REPO_ROOT, 'node_modules/typescript/bin/tsc');
  try {
    execFileSync(process.execPath, [tsc, '-p', join(sourceDir, 'tsconfig.build.json'), '--outDir', outDir], {
      cwd: sourceDir,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (error) {
    const output = String((error as { stdout?: Buffer }).stdout ?? '');
    if (!existsSync(join(outDir, 'main.js'))) throw new Error(`could not compile the gateway in ${sourceDir}:\n${output}`, { cause: error });
    process.stderr.write(`[bench] tsc reported errors in ${sourceDir}, running what it emitted:\n${output.slice(0, 2_000)}\n`);
  }
  return join(outDir, 'main.js');
}

/**
 * A directory with src/, package.json (its "type") and the tsconfig files: `revisionOrDir` itself, or extracted from git
 * (read-only) into the temp directory — outside the project, so `tsc -p .` never type-checks a
 * second copy of src/. Its node_modules is the repository's, for the types.
 */
export function baselineSource(revisionOrDir: string): string {
  if (existsSync(join(revisionOrDir, 'src/main.ts'))) return resolve(revisionOrDir);
  const dir = join(tmpdir(), 'cachegate-bench-baseline-src');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const archive = execFileSync('git', ['archive', '--format=tar', revisionOrDir, 'src', 'package.json', 'tsconfig.json', 'tsconfig.build.json'], {
    cwd: REPO_ROOT,
    maxBuffer: 256 * 2 ** 20,
  });
  execFileSync('tar', ['-x', '-C', dir], { input: archive });
  symlinkSync(join(REPO_ROOT, 'node_modules'), join(dir, 'node_modules'));
  return dir;
}

export async function startGateway(options: GatewayOptions): Promise<GatewayProcess> {
  const port = await freePort();
  const entry = options.compiledMain ? [options.compiledMain] : [...TSX, 'src/main.ts'];
  let profile: string[] = [];
  if (options.cpuProfDir) {
    const dir = join(options.cpuProfDir, options.name);
    mkdirSync(dir, { recursive: true });
    profile = ['--cpu-prof', `--cpu-prof-dir=${dir}`];
  }
  const managed = startProcess(options.name, process.execPath, [...(options.nodeFlags ?? []), ...profile, ...entry], {
    cwd: REPO_ROOT,
    env: {
      ...baseEnv(),
      NODE_ENV: 'production',
      HOST: '127.0.0.1',
      PORT: String(port),
      OPENAI_BASE_URL: `${options.upstreamUrl}/v1`,
      GROQ_BASE_URL: `${options.upstreamUrl}/openai/v1`,
      OPENAI_API_KEYS: BENCH_OPENAI_KEYS,
      GROQ_API_KEYS: 'gsk-bench-groq-1',
      LOG_LEVEL: options.logLevel,
      SHUTDOWN_GRACE_MS: '3000',
      ...(options.redisUrl ? { REDIS_URL: options.redisUrl } : {}),
      ...options.env,
    },
  });
  const url = `http://127.0.0.1:${port}`;
  await waitForHttp(`${url}/readyz`, managed);
  return {
    managed,
    url,
    metrics: async () => (await fetch(`${url}/metrics`)).text(),
  };
}

/** Sum of a metric's samples whose labels contain every `label="value"` pair given. */
export function metricSum(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  const wanted = Object.entries(labels).map(([key, value]) => `${key}="${value}"`);
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== '{' && rest[0] !== ' ') continue;
    if (!wanted.every((pair) => rest.includes(pair))) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}
