/**
 * Reads docker-compose.yml the way Docker does: through `docker-compose config` (Debian's
 * docker-compose 1.29), with variables from a temporary env file so no real .env is needed or
 * read. docker-compose 1.29 prints YAML only; it is itself a Python program whose Debian
 * package depends on python3-yaml, so /usr/bin/python3 turns that YAML into JSON for us.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const COMPOSE_FILE = join(REPO_ROOT, 'docker-compose.yml');

/** The variables docker-compose.yml requires, with harmless test values. */
export const TEST_COMPOSE_ENV: Readonly<Record<string, string>> = {
  DOMAIN: 'chat.example.test',
  GATEWAY_API_KEYS: 'test-webui-key,test-client-key',
  OPENWEBUI_GATEWAY_KEY: 'test-webui-key',
  WEBUI_SECRET_KEY: 'test-webui-secret',
};

export interface ComposeHealthcheck {
  test?: string[] | string;
  interval?: string;
  timeout?: string;
  retries?: number;
  start_period?: string;
  disable?: boolean;
}

export interface ComposeService {
  image?: string;
  build?: { context: string; dockerfile?: string } | string;
  command?: string[] | string;
  entrypoint?: string[] | string;
  environment?: Record<string, string | null>;
  ports?: Array<string | { published?: number | string; target?: number }>;
  expose?: Array<string | number>;
  volumes?: Array<string | { source?: string; target: string; type?: string; read_only?: boolean }>;
  healthcheck?: ComposeHealthcheck;
  restart?: string;
  mem_limit?: string | number;
  profiles?: string[];
  networks?: Record<string, unknown> | string[];
  depends_on?: Record<string, { condition?: string }> | string[];
  init?: boolean;
  stop_grace_period?: string;
}

export interface ComposeConfig {
  services: Record<string, ComposeService>;
  volumes?: Record<string, unknown>;
  networks?: Record<string, { internal?: boolean } | null>;
}

interface ComposeRun {
  profiles?: string[];
  env?: Record<string, string>;
}

async function withEnvFile<T>(env: Record<string, string>, use: (envFile: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'cachegate-compose-'));
  try {
    const envFile = join(dir, 'test.env');
    await writeFile(
      envFile,
      `${Object.entries(env)
        .map(([k, v]) => `${k}=${v}`)
        .join('\n')}\n`,
    );
    return await use(envFile);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function composeArgs(envFile: string, profiles: string[]): string[] {
  return ['--env-file', envFile, '-f', COMPOSE_FILE, ...profiles.flatMap((p) => ['--profile', p])];
}

/**
 * Only PATH and HOME from the outer environment: a DOMAIN or key exported in the developer's
 * shell would otherwise win over the env file and make the test depend on it.
 */
function cleanEnv(): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root' };
}

/** `docker-compose config -q`: exit code and stderr (the reason when it rejects the file). */
export async function validateCompose(opts: ComposeRun = {}): Promise<{ ok: boolean; stderr: string }> {
  const env = opts.env ?? { ...TEST_COMPOSE_ENV };
  return withEnvFile(env, async (envFile) => {
    try {
      const { stderr } = await run('docker-compose', [...composeArgs(envFile, opts.profiles ?? []), 'config', '-q'], {
        cwd: REPO_ROOT,
        env: cleanEnv(),
      });
      return { ok: true, stderr };
    } catch (error) {
      const stderr = (error as { stderr?: string }).stderr ?? String(error);
      return { ok: false, stderr };
    }
  });
}

const parsedConfigs = new Map<string, Promise<ComposeConfig>>();

/**
 * The fully interpolated configuration, as docker-compose resolves it. Memoised per test file:
 * docker-compose takes most of a second to start, and the files do not change during a run.
 */
export function readComposeConfig(opts: ComposeRun = {}): Promise<ComposeConfig> {
  const key = JSON.stringify(opts);
  let parsed = parsedConfigs.get(key);
  if (!parsed) {
    parsed = parseComposeConfig(opts);
    parsedConfigs.set(key, parsed);
  }
  return parsed;
}

async function parseComposeConfig(opts: ComposeRun): Promise<ComposeConfig> {
  const env = opts.env ?? { ...TEST_COMPOSE_ENV };
  const yamlText = await withEnvFile(env, async (envFile) => {
    const { stdout } = await run('docker-compose', [...composeArgs(envFile, opts.profiles ?? []), 'config'], {
      cwd: REPO_ROOT,
      env: cleanEnv(),
      maxBuffer: 8 * 1024 * 1024,
    });
    return stdout;
  });
  return yamlToJson(yamlText) as Promise<ComposeConfig>;
}

/** YAML → JSON with the system Python's yaml (a dependency of Debian's docker-compose). */
export async function yamlToJson(yamlText: string): Promise<unknown> {
  const child = execFile('/usr/bin/python3', ['-c', 'import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)'], {
    maxBuffer: 8 * 1024 * 1024,
  });
  const output = new Promise<string>((resolve, reject) => {
    let out = '';
    let err = '';
    child.stdout?.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (err += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`python3 yaml failed: ${err}`))));
  });
  child.stdin?.end(yamlText);
  return JSON.parse(await output) as unknown;
}

/** "896m", "1g", "268435456" → bytes, as Docker reads mem_limit. */
export function memoryBytes(limit: string | number): number {
  if (typeof limit === 'number') return limit;
  const match = /^(\d+(?:\.\d+)?)\s*([bkmg]?)b?$/i.exec(limit.trim());
  if (!match) throw new Error(`unreadable memory limit: ${limit}`);
  const units: Record<string, number> = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };
  return Math.round(Number(match[1]) * (units[(match[2] ?? '').toLowerCase()] ?? 1));
}

/** Services that `docker compose up` starts with the given profiles active. */
export function activeServices(config: ComposeConfig, profiles: string[]): Array<[string, ComposeService]> {
  return Object.entries(config.services).filter(([, service]) => !service.profiles || service.profiles.some((p) => profiles.includes(p)));
}
