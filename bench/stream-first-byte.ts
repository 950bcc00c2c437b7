/**
 * `npx tsx bench/stream-first-byte.ts [requests] [--prof <dir>] [--source <revision>]`: where a
 * stream miss's time to first byte goes. The fake upstream (its own process, paced as `npm run
 * bench` paces streams: 20 ms to the head, 2000 tokens/s), the naive Fastify+undici proxy (its own
 * process) and the real gateway (buildServer(), embedded cache, its own process: this script
 * forked with a role, so that it pays the same process hops as in the bench and a CPU profile holds
 * only the gateway). Then, one request at a time, unique stream bodies, the three targets in
 * rotating order each round (so drift cancels): time to the first body byte at the client.
 * `--source <revision>` runs the gateway from that commit (a `git archive` copy) instead of the
 * working tree; `--summarize <profile> <windows.json>` prints a saved run's profile tables again.
 *
 * The gateway's part is split from the outside, src/ untouched: inside the gateway process,
 * diagnostics_channel (node:http's `http.server.request.start`, undici's request events) and a
 * wrapper on the response's writeHead/write give timestamps; all are process.hrtime (the system's
 * monotonic clock, shared by the processes, and the clock of V8's CPU profile), so the gateway's
 * timestamps, the client's and the profile's samples line up. With `--prof <dir>` the gateway runs
 * under `--cpu-prof`, and the samples from each request's arrival to its upstream write, and from
 * the first upstream chunk to the first write to the client, are summed by owner and function.
 */
import { fork, type ChildProcess } from 'node:child_process';
import diagnostics from 'node:diagnostics_channel';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Client } from 'undici';
import { baselineSource, REPO_ROOT, startFakeUpstream, startNaive } from './services.js';
import { stopAll } from './processes.js';
import { chatBody } from './workload.js';

const ROLE = process.env.STREAM_FIRST_BYTE_ROLE;
const PATH = '/v1/chat/completions';
const HEADERS = { 'content-type': 'application/json', authorization: 'Bearer sk-bench-client' };
const now = (): number => Number(process.hrtime.bigint() / 1000n); // µs, monotonic, shared by processes

/** What the gateway process saw of one request, µs on the shared clock. */
interface GatewayMarks {
  received: number; // node:http parsed the request head
  upstreamCreated: number; // undici request object created (the gateway decided to call)
  upstreamSent: number; // the upstream request's body fully written to the socket
  upstreamHeaders: number; // the upstream's response head parsed
  upstreamFirstChunk: number; // the first body chunk of the upstream's answer
  head: number; // the gateway's writeHead to the client
  firstWrite: number; // the gateway's first write of the body to the client
}

/* ---------------- the gateway process ---------------- */

async function runGateway(): Promise<void> {
  const source = process.env.GATEWAY_SOURCE ?? REPO_ROOT;
  const { loadConfig } = (await import(pathToFileURL(join(source, 'src/config.ts')).href)) as typeof import('../src/config.js');
  const { buildServer } = (await import(pathToFileURL(join(source, 'src/server.ts')).href)) as typeof import('../src/server.js');
  let marks: Partial<GatewayMarks> = {};
  const mark = (name: keyof GatewayMarks): void => {
    if (marks[name] === undefined) marks[name] = now();
  };
  diagnostics.subscribe('http.server.request.start', (message) => {
    const { request, response } = message as { request: IncomingMessage; response: ServerResponse };
    if (request.method !== 'POST' || request.url !== PATH) return;
    marks = { received: now() };
    // Wrap this response only: when the gateway hands the head and the first bytes to node:http.
    const writeHead = response.writeHead.bind(response) as (...args: unknown[]) => ServerResponse;
    const write = response.write.bind(response) as (...args: unknown[]) => boolean;
    response.writeHead = ((...args: unknown[]) => {
      mark('head');
      return writeHead(...args);
    }) as typeof response.writeHead;
    response.write = ((...args: unknown[]) => {
      mark('firstWrite');
      return write(...args);
    }) as typeof response.write;
  });
  diagnostics.subscribe('http.server.response.finish', (message) => {
    const { request } = message as { request: IncomingMessage };
    if (request.method === 'POST' && request.url === PATH) process.send?.({ marks });
  });
  const upstream = (name: keyof GatewayMarks) => (message: unknown) => {
    const { request } = message as { request: { path: string } };
    if (request.path.endsWith(PATH)) mark(name);
  };
  diagnostics.subscribe('undici:request:create', upstream('upstreamCreated'));
  diagnostics.subscribe('undici:request:bodySent', upstream('upstreamSent'));
  diagnostics.subscribe('undici:request:headers', upstream('upstreamHeaders'));
  diagnostics.subscribe('undici:request:bodyChunkReceived', upstream('upstreamFirstChunk'));

  const config = loadConfig({
    HOST: '127.0.0.1',
    PORT: '0',
    OPENAI_BASE_URL: `${process.env.UPSTREAM_URL}/v1`,
    OPENAI_API_KEYS: 'sk-bench-1',
    LOG_LEVEL: 'warn',
  });
  const gateway = await buildServer(config);
  const address = await gateway.listen({ host: '127.0.0.1', port: 0 });
  process.on('message', (message) => {
    if ((message as { stop?: boolean }).stop) void gateway.close().then(() => process.exit(0));
  });
  process.send?.({ port: Number(new URL(address).port) });
}

/* ---------------- the driver ---------------- */

interface Timed {
  sent: number; // the client about to write its request
  firstByte: number; // the client holds the first body byte
  total: number; // from the call to the first byte, µs (the figure the bench reports)
}

let clientSent = 0;
// Just before the client's write: on loopback the write call itself delivers the bytes and wakes
// the receiver, which on a busy 2-core machine often runs before the writer returns.
diagnostics.subscribe('undici:client:sendHeaders', () => {
  clientSent = now();
});

async function firstByte(client: Client, body: string): Promise<Timed> {
  const started = now();
  const response = await client.request({ method: 'POST', path: PATH, body, headers: HEADERS });
  let first = 0;
  for await (const _chunk of response.body) if (first === 0) first = now();
  if (response.statusCode !== 200) throw new Error(`status ${response.statusCode}`);
  return { sent: clientSent, firstByte: first, total: first - started };
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

const ms = (us: number): string => (us / 1000).toFixed(3);
const row = (name: string, values: number[]): string =>
  `| ${name.padEnd(64)} | ${ms(percentile(values, 50)).padStart(7)} | ${ms(percentile(values, 90)).padStart(7)} |`;

interface CpuProfile {
  nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number } }>;
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** Whose code a sample is in: the gateway's, a package's, Node's own, or V8/native (syscalls, GC). */
function moduleOf(url: string, functionName: string): string {
  if (url.includes('/bench/')) return 'this script (the measuring hooks)';
  if (url.includes('/src/')) return 'gateway (src/)';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1]!;
  if (url.startsWith('node:')) return 'Node internals (node:*)';
  return `native: ${functionName}`;
}

/** Self time by function of the samples inside the windows (µs on the shared clock). */
function profileWindows(file: string, windows: Array<[number, number]>, top: number): string {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const sorted = [...windows].sort((a, b) => a[0] - b[0]);
  const counts = new Map<string, number>();
  const modules = new Map<string, number>();
  let at = profile.startTime;
  let window = 0;
  let inside = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    at += profile.timeDeltas[i] ?? 0;
    while (window < sorted.length && sorted[window]![1] < at) window++;
    const current = sorted[window];
    if (!current || at < current[0]) continue;
    const { functionName, url, lineNumber } = byId.get(profile.samples[i]!)!.callFrame;
    const where = url.replace(/^.*\/node_modules\//, '').replace(/^.*\/src\//, 'src/');
    const name = `${functionName || '(anonymous)'}${url ? ` ${where}:${lineNumber + 1}` : ''}`;
    counts.set(name, (counts.get(name) ?? 0) + 1);
    const module = moduleOf(url, functionName);
    modules.set(module, (modules.get(module) ?? 0) + 1);
    inside++;
  }
  // The sampler does not keep its interval on a busy 2-core VM, and a sample's delta often spans
  // idle time before it: each sample stands for an equal share of the windows' wall time.
  const wallPerRequest = windows.reduce((sum, [start, end]) => sum + end - start, 0) / Math.max(1, windows.length);
  const table = (title: string, entries: Map<string, number>, rows: number): string[] => [
    `| share | µs/req | ${title} |`,
    '| ----: | -----: | --- |',
    ...[...entries]
      .sort((a, b) => b[1] - a[1])
      .slice(0, rows)
      .map(
        ([name, count]) => `| ${((100 * count) / inside).toFixed(1).padStart(5)}% | ${((count / inside) * wallPerRequest).toFixed(0).padStart(5)} | ${name} |`,
      ),
  ];
  return [
    `${inside} samples in ${windows.length} windows of ${wallPerRequest.toFixed(0)} µs mean wall time each`,
    ...table('whose (self time)', modules, 12),
    '',
    ...table('function (self time)', counts, top),
  ].join('\n');
}

async function runDriver(): Promise<void> {
  const args = process.argv.slice(2);
  const profIndex = args.indexOf('--prof');
  const profDir = profIndex >= 0 ? args[profIndex + 1] : undefined;
  const sourceIndex = args.indexOf('--source');
  // A revision (or a directory) instead of the working tree: a stable tree while src/ is being edited.
  const source = sourceIndex >= 0 ? baselineSource(args[sourceIndex + 1] ?? 'HEAD') : REPO_ROOT;
  const requests = Number(args.find((arg, index) => /^\d+$/.test(arg) && index !== profIndex + 1 && index !== sourceIndex + 1) ?? 150);
  let gatewayChild: ChildProcess | undefined;
  try {
    const fake = await startFakeUpstream({ delayMs: 20, tokensPerSecond: 2000, answerTokens: 120 });
    const naive = await startNaive('proxy', { upstreamUrl: fake.url });
    const profFlags = profDir ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`, '--cpu-prof-interval=50'] : [];
    const child = fork(fileURLToPath(import.meta.url), [], {
      execArgv: [...profFlags, '--import', 'tsx'],
      env: { ...process.env, STREAM_FIRST_BYTE_ROLE: 'gateway', GATEWAY_SOURCE: source, UPSTREAM_URL: fake.url, REDIS_URL: '' },
    });
    gatewayChild = child;
    const pending: Array<(marks: GatewayMarks) => void> = [];
    const arrived: GatewayMarks[] = [];
    const port = await new Promise<number>((resolve, reject) => {
      child.on('message', (message: { port?: number; marks?: GatewayMarks }) => {
        if (message.port) resolve(message.port);
        if (message.marks) {
          const waiter = pending.shift();
          if (waiter) waiter(message.marks);
          else arrived.push(message.marks);
        }
      });
      child.once('exit', (code) => reject(new Error(`gateway exited with ${code}`)));
    });
    const nextMarks = (): Promise<GatewayMarks> => (arrived.length > 0 ? Promise.resolve(arrived.shift()!) : new Promise((resolve) => pending.push(resolve)));

    const targets = {
      direct: new Client(fake.url, { keepAliveTimeout: 30_000 }),
      naive: new Client(naive.url, { keepAliveTimeout: 30_000 }),
      gateway: new Client(`http://127.0.0.1:${port}`, { keepAliveTimeout: 30_000 }),
    };
    const names = Object.keys(targets) as Array<keyof typeof targets>;
    const results: Record<keyof typeof targets, number[]> = { direct: [], naive: [], gateway: [] };
    const split = { hopIn: [] as number[], beforeCall: [] as number[], callWrite: [] as number[], upstream: [] as number[], headToChunk: [] as number[] };
    const relay = { chunkToWrite: [] as number[], writeToClient: [] as number[], gatewayTotal: [] as number[], clientUntilSent: [] as number[] };
    const beforeCall: Array<[number, number]> = [];
    const relaying: Array<[number, number]> = [];
    let unique = 0;
    const body = (): string => JSON.stringify(chatBody({ tag: `sfb-${process.pid}-${++unique}`, stream: true }));

    const rounds = requests + 20; // the first 20 rounds warm up (JIT, connections, model lists)
    for (let round = 0; round < rounds; round++) {
      for (let i = 0; i < names.length; i++) {
        const name = names[(round + i) % names.length]!;
        const timed = await firstByte(targets[name], body());
        const marks = name === 'gateway' ? await nextMarks() : undefined;
        if (round < 20) continue;
        results[name].push(timed.total);
        if (!marks) continue;
        split.hopIn.push(marks.received - timed.sent);
        split.beforeCall.push(marks.upstreamCreated - marks.received);
        split.callWrite.push(marks.upstreamSent - marks.upstreamCreated);
        split.upstream.push(marks.upstreamHeaders - marks.upstreamSent);
        split.headToChunk.push(marks.upstreamFirstChunk - marks.upstreamHeaders);
        relay.chunkToWrite.push(marks.firstWrite - marks.upstreamFirstChunk);
        relay.writeToClient.push(timed.firstByte - marks.firstWrite);
        relay.gatewayTotal.push(marks.firstWrite - marks.received);
        relay.clientUntilSent.push(timed.total - (timed.firstByte - timed.sent));
        beforeCall.push([marks.received, marks.upstreamSent]);
        relaying.push([marks.upstreamFirstChunk, marks.firstWrite]);
      }
    }
    const diff = (a: number[], b: number[]): number[] => a.map((value, index) => value - (b[index] ?? Number.NaN));
    const out = [
      `${requests} stream requests per target, concurrency 1, rotating order; load average ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}`,
      '',
      '| time to first byte at the client                                 | p50 ms  | p90 ms  |',
      '| ---------------------------------------------------------------- | ------: | ------: |',
      row('direct (fake upstream)', results.direct),
      row('naive proxy', results.naive),
      row('gateway (embedded cache, miss)', results.gateway),
      row('naive − direct (same round)', diff(results.naive, results.direct)),
      row('gateway − direct (same round)', diff(results.gateway, results.direct)),
      row('gateway − naive (same round)', diff(results.gateway, results.naive)),
      '',
      '| gateway request, split (each p50 on its own)                     | p50 ms  | p90 ms  |',
      '| ---------------------------------------------------------------- | ------: | ------: |',
      row('0 client: call → about to write (undici, every path pays it)', relay.clientUntilSent),
      row('1 client writes → gateway has the head (loopback hop, wake-up)', split.hopIn),
      row('2 gateway: head → upstream request created (CPU before call)', split.beforeCall),
      row('2b upstream request created → written to the socket', split.callWrite),
      row('3 written → upstream head (hop, upstream 20 ms, hop back)', split.upstream),
      row('3b upstream head → first upstream chunk', split.headToChunk),
      row('4 first upstream chunk → gateway writes to the client', relay.chunkToWrite),
      row('4b gateway write → client has the byte (hop, wake-up, parse)', relay.writeToClient),
      row('gateway process: head in → first write out (incl. upstream)', relay.gatewayTotal),
    ];
    process.stdout.write(`${out.join('\n')}\n`);
    for (const client of Object.values(targets)) await client.close();
    child.send({ stop: true });
    await new Promise((resolve) => child.once('exit', resolve));
    gatewayChild = undefined;
    if (profDir) {
      // The gateway's main thread (thread 0); tsx's loader thread writes a profile of its own.
      const newest = readdirSync(profDir)
        .filter((file) => file.endsWith(`.${child.pid}.0.001.cpuprofile`))
        .map((file) => join(profDir, file))
        .at(0);
      if (newest) {
        writeFileSync(join(profDir, 'windows.json'), JSON.stringify({ beforeCall, relaying }));
        process.stdout.write(
          `\ngateway CPU profile ${newest}\n\nsamples from the request's head to the upstream request written (steps 2, 2b):\n${profileWindows(newest, beforeCall, 25)}\n` +
            `\nsamples from the first upstream chunk to the first write to the client (step 4):\n${profileWindows(newest, relaying, 12)}\n`,
        );
      }
    }
  } finally {
    gatewayChild?.kill('SIGTERM');
    await stopAll();
  }
}

if (ROLE === 'gateway') await runGateway();
else if (process.argv[2] === '--summarize') {
  // `--summarize <profile> <windows.json>`: the tables again from a run's saved files.
  const windows = JSON.parse(readFileSync(process.argv[4] ?? '', 'utf8')) as { beforeCall: Array<[number, number]>; relaying: Array<[number, number]> };
  process.stdout.write(`${profileWindows(process.argv[3] ?? '', windows.beforeCall, 25)}\n\n${profileWindows(process.argv[3] ?? '', windows.relaying, 12)}\n`);
} else await runDriver();
