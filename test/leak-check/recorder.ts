/**
 * What every gateway of one test file emitted, kept until the end of the file and then searched
 * for every secret the file configured (see secret-matcher.ts for the rules); the findings and
 * the figures go to one JSON file per test file, which global-setup.ts sums up after the run.
 *
 * The state lives on globalThis: vitest may evaluate the test helpers once per file in a worker
 * that runs several files, and the socket taps (wire-taps.ts) are installed once per process.
 * Nothing is recorded outside a test file run with the leak check's setup file (bench scripts
 * import the same helpers).
 *
 * Output is searched at the end, not as it is written, because some secrets become known later
 * than the output they may appear in: a KEYS_FILE rewritten by the test, an Authorization value
 * sent after the gateway started.
 */
import { createHash, randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { SecretMatcher, hint } from './secret-matcher.js';

export type Channel = 'log' | 'response' | 'metrics' | 'process-stdout' | 'process-stderr' | 'process-response';

export interface Entry {
  channel: Channel;
  source: string;
  test: string;
  chunks: string[];
  /** False once searched (and dropped): a socket then starts a new entry. */
  open: boolean;
}

export interface Leak {
  file: string;
  test: string;
  channel: Channel;
  source: string;
  rule: string;
  secret: string;
  origin: string;
  excerpt: string;
}

export interface Figures {
  logLines: number;
  processLines: number;
  responses: number;
  responseBytes: number;
  metricScrapes: number;
  gateways: number;
  processes: number;
  /** Findings in responses that only repeat what the test put in a request body (not leaks). */
  echoes: number;
}

export interface FileReport {
  file: string;
  pid: number;
  figures: Figures;
  /** Every secret registered: its sha256 (so the run's total counts each once) and where it came from. */
  secrets: Array<{ sha256: string; kind: string }>;
  leaks: Leak[];
}

/** One gateway (in-process or process): what it was configured with, for re-reading KEYS_FILE. */
export interface Source {
  label: string;
  keysFile: string | undefined;
  keysFileText: string | undefined;
  /** In-process only: reads /metrics once, when the gateway closes (or at the end of the file). */
  scrape: (() => Promise<void>) | undefined;
}

/** Output kept in memory before it is searched early (and dropped), to bound a heavy file. */
const RETAINED_LIMIT = 64 * 1024 * 1024;
const SENT_LIMIT = 64 * 1024 * 1024;
const SECRET_NAME = /_API_KEYS?$|_TOKEN$|_PASSWORD$|_SECRET$/;

export interface LeakState {
  file: string | undefined;
  test: string;
  matcher: SecretMatcher;
  entries: Entry[];
  retained: number;
  sources: Set<Source>;
  figures: Figures;
  leaks: Leak[];
  /** Request bodies the test process sent to gateways (headers cut out), up to SENT_LIMIT. */
  sent: string[];
  sentBytes: number;
}

const STATE = Symbol.for('cachegate.leak-check.state');

function freshFigures(): Figures {
  return { logLines: 0, processLines: 0, responses: 0, responseBytes: 0, metricScrapes: 0, gateways: 0, processes: 0, echoes: 0 };
}

export function leakState(): LeakState {
  const holder = globalThis as { [STATE]?: LeakState };
  holder[STATE] ??= {
    file: undefined,
    test: '',
    matcher: new SecretMatcher(),
    entries: [],
    retained: 0,
    sources: new Set(),
    figures: freshFigures(),
    leaks: [],
    sent: [],
    sentBytes: 0,
  };
  return holder[STATE];
}

export function isRecording(): boolean {
  return leakState().file !== undefined;
}

export function startFile(file: string): void {
  const state = leakState();
  state.file = relative(process.cwd(), file);
  state.test = '(file set-up)';
  state.matcher = new SecretMatcher();
  state.entries = [];
  state.retained = 0;
  state.sources = new Set();
  state.figures = freshFigures();
  state.leaks = [];
  state.sent = [];
  state.sentBytes = 0;
}

export function setCurrentTest(name: string): void {
  leakState().test = name;
}

export function registerSecret(value: string, origin: string): void {
  if (isRecording()) leakState().matcher.add(value.trim(), origin);
}

/** Every secret in a gateway's environment: keys and tokens by name, the password of a URL. */
export function registerEnvSecrets(env: Record<string, string | undefined>, origin: string): void {
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined) continue;
    if (SECRET_NAME.test(name)) for (const part of value.split(',')) registerSecret(part, `${name} of ${origin}`);
    if (name.endsWith('_URL')) {
      try {
        const password = decodeURIComponent(new URL(value).password);
        if (password) registerSecret(password, `password in ${name} of ${origin}`);
      } catch {
        // not a URL: nothing to take from it
      }
    }
  }
}

/** `NAME=value` lines of a .env text, as the gateway reads them. */
export function dotenvValues(text: string): Record<string, string> {
  const values: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const match = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$/.exec(line);
    if (match?.[1]) values[match[1]] = (match[2] ?? '').replace(/^(['"])(.*)\1$/, '$2');
  }
  return values;
}

/** The keys a KEYS_FILE holds now (every string in it; every long token when it is not JSON). */
export function refreshKeysFile(source: Source): void {
  if (source.keysFile === undefined) return;
  let text: string;
  try {
    text = readFileSync(source.keysFile, 'utf8');
  } catch {
    return;
  }
  if (text === source.keysFileText) return;
  source.keysFileText = text;
  const origin = `KEYS_FILE of ${source.label}`;
  try {
    const visit = (value: unknown): void => {
      if (typeof value === 'string') registerSecret(value, origin);
      else if (value && typeof value === 'object') for (const inner of Object.values(value)) visit(inner);
    };
    visit(JSON.parse(text));
  } catch {
    for (const token of text.match(/[A-Za-z0-9_\-.]{12,}/g) ?? []) registerSecret(token, origin);
  }
}

export function addSource(label: string, env: Record<string, string | undefined>, scrape?: () => Promise<void>): Source {
  const source: Source = { label, keysFile: env['KEYS_FILE'], keysFileText: undefined, scrape };
  registerEnvSecrets(env, label);
  refreshKeysFile(source);
  leakState().sources.add(source);
  return source;
}

/** A new entry of output (a log line, a scrape, one connection's bytes during one test). */
export function openEntry(channel: Channel, source: string): Entry {
  const state = leakState();
  const entry: Entry = { channel, source, test: state.test, chunks: [], open: true };
  state.entries.push(entry);
  return entry;
}

export function append(entry: Entry, text: string): void {
  const state = leakState();
  entry.chunks.push(text);
  state.retained += text.length;
  if (state.retained > RETAINED_LIMIT) searchAll();
}

/**
 * Part of a request body the test process sent to a gateway. The fake providers echo prompts,
 * so a test that puts a key in its prompt gets it back in the answer: that is the test's own
 * text coming back, not the gateway leaking, and is counted apart (figures.echoes).
 */
export function recordSent(text: string): void {
  const state = leakState();
  if (state.file === undefined || state.sentBytes + text.length > SENT_LIMIT) return;
  state.sent.push(text);
  state.sentBytes += text.length;
}

function isEcho(entry: Entry, found: string): boolean {
  const state = leakState();
  return (entry.channel === 'response' || entry.channel === 'process-response') && state.sent.some((body) => body.includes(found));
}

/** Searches everything kept so far for every secret known now, then drops it. */
export function searchAll(): void {
  const state = leakState();
  if (state.file === undefined) return;
  for (const source of state.sources) refreshKeysFile(source);
  for (const entry of state.entries) {
    entry.open = false;
    const text = entry.chunks.join('');
    for (const match of state.matcher.find(text)) {
      if (isEcho(entry, text.slice(match.start, match.end))) {
        state.figures.echoes++;
        continue;
      }
      state.leaks.push({
        file: state.file,
        test: entry.test,
        channel: entry.channel,
        source: entry.source,
        rule: match.rule,
        secret: hint(match.secret.value),
        origin: match.secret.origin,
        excerpt: state.matcher.excerpt(text, match),
      });
    }
  }
  state.entries = [];
  state.retained = 0;
}

/** "GATEWAY_API_KEYS of in-process gateway #3 (…)" → "GATEWAY_API_KEYS". */
function kindOf(origin: string): string {
  if (origin.startsWith('password in ')) return 'URL passwords';
  if (origin.startsWith('an Authorization value')) return 'Authorization values sent';
  if (origin.startsWith('the shared keys')) return 'shared test keys';
  return origin.split(' of ')[0] ?? origin;
}

/** End of a test file: last scrapes of gateways still open, the search, the report file. */
export async function finishFile(reportDir: string | undefined): Promise<void> {
  const state = leakState();
  if (state.file === undefined) return;
  for (const source of state.sources) await source.scrape?.();
  searchAll();
  const report: FileReport = {
    file: state.file,
    pid: process.pid,
    figures: state.figures,
    secrets: state.matcher.secrets.map((secret) => ({ sha256: createHash('sha256').update(secret.value).digest('hex'), kind: kindOf(secret.origin) })),
    leaks: state.leaks,
  };
  if (reportDir !== undefined) {
    mkdirSync(reportDir, { recursive: true });
    writeFileSync(join(reportDir, `${process.pid}-${randomUUID()}.json`), JSON.stringify(report));
  }
  state.file = undefined;
  state.entries = [];
  state.sources = new Set();
  state.sent = [];
}
