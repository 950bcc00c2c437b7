/**
 * The real Open WebUI (PyPI `open-webui`, installed by scripts/install-open-webui.sh into
 * .tmp/open-webui-venv) started as its users run it, pointed at a gateway: offline (no model
 * downloads), every chat model and the RAG embeddings through the gateway's OpenAI-compatible
 * API, its data in a scratch directory, on a loopback port. Its own HTTP API is then driven as
 * its web page drives it (api()).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from './free-port.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const OPEN_WEBUI_VENV = process.env.OPEN_WEBUI_VENV ?? join(ROOT, '.tmp', 'open-webui-venv');
const EXECUTABLE = join(OPEN_WEBUI_VENV, 'bin', 'open-webui');

export interface OpenWebUi {
  url: string;
  /** What it printed (stdout and stderr), for a failure's message. */
  output(): string;
  /** The installed version (from the venv's marker). */
  version: string;
  close(): Promise<void>;
}

export interface OpenWebUiOptions {
  /** The gateway's OpenAI-layout base URL (…/v1) and the key Open WebUI presents to it. */
  gatewayBaseUrl: string;
  gatewayKey: string;
  env?: Record<string, string>;
  startTimeoutMs?: number;
}

/** Throws, saying how to install it, when the venv is missing: the end-to-end test never skips. */
export async function installedOpenWebUiVersion(): Promise<string> {
  if (!existsSync(EXECUTABLE)) {
    throw new Error(`Open WebUI is not installed at ${OPEN_WEBUI_VENV}: run scripts/install-open-webui.sh (.ci/run does)`);
  }
  return (await readFile(join(OPEN_WEBUI_VENV, '.open-webui-version'), 'utf8')).trim();
}

export async function startOpenWebUi(options: OpenWebUiOptions): Promise<OpenWebUi> {
  const version = await installedOpenWebUiVersion();
  const dataDir = await mkdtemp(join(tmpdir(), 'open-webui-'));
  const port = await freePort();
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: dataDir,
    DATA_DIR: dataDir,
    WEBUI_SECRET_KEY: 'fake-open-webui-session-secret',
    // Offline: nothing downloaded (no embedding, reranking or speech model), no update check, no telemetry.
    OFFLINE_MODE: 'true',
    HF_HUB_OFFLINE: '1',
    TRANSFORMERS_OFFLINE: '1',
    ENABLE_VERSION_UPDATE_CHECK: 'false',
    ANONYMIZED_TELEMETRY: 'false',
    DO_NOT_TRACK: 'true',
    SCARF_NO_ANALYTICS: 'true',
    AUDIO_STT_ENGINE: 'openai',
    RAG_RERANKING_MODEL: '',
    // Every model through the gateway: one OpenAI-compatible connection, no Ollama.
    ENABLE_OLLAMA_API: 'false',
    ENABLE_OPENAI_API: 'true',
    OPENAI_API_BASE_URL: options.gatewayBaseUrl,
    OPENAI_API_KEY: options.gatewayKey,
    // RAG embeddings through the gateway too.
    RAG_EMBEDDING_ENGINE: 'openai',
    RAG_EMBEDDING_MODEL: 'text-embedding-3-small',
    RAG_OPENAI_API_BASE_URL: options.gatewayBaseUrl,
    RAG_OPENAI_API_KEY: options.gatewayKey,
    // The chat id and user id headers, as the gateway's README asks.
    ENABLE_FORWARD_USER_INFO_HEADERS: 'true',
    ENABLE_PERSISTENT_CONFIG: 'false',
    GLOBAL_LOG_LEVEL: 'WARNING',
    ...options.env,
  };
  let output = '';
  const child: ChildProcess = spawn(EXECUTABLE, ['serve', '--host', '127.0.0.1', '--port', String(port)], {
    cwd: dataDir,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString('utf8')).slice(-64 * 1024);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = `http://127.0.0.1:${port}`;
  const close = async (): Promise<void> => {
    if (child.exitCode === null && child.pid !== undefined) {
      try {
        process.kill(-child.pid, 'SIGTERM');
      } catch {
        // already gone
      }
      const killed = setTimeout(() => {
        try {
          if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }, 10_000);
      await exited;
      clearTimeout(killed);
    }
    await rm(dataDir, { recursive: true, force: true });
  };
  const deadline = Date.now() + (options.startTimeoutMs ?? 240_000);
  for (;;) {
    if (child.exitCode !== null) {
      await close();
      throw new Error(`Open WebUI exited with ${child.exitCode} while starting:\n${output}`);
    }
    try {
      const health = await fetch(`${url}/health`, { signal: AbortSignal.timeout(2_000) });
      if (health.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await close();
      throw new Error(`Open WebUI did not answer /health in time:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  return { url, output: () => output, version, close };
}

export interface ApiAnswer {
  status: number;
  text: string;
  json: unknown;
}

/** One call of Open WebUI's own API, as its web page makes it (Bearer session token). */
export async function api(owui: OpenWebUi, method: string, path: string, token: string | undefined, body?: unknown): Promise<ApiAnswer> {
  const headers: Record<string, string> = {};
  if (token) headers.authorization = `Bearer ${token}`;
  let payload: BodyInit | undefined;
  if (body instanceof FormData) payload = body;
  else if (body !== undefined) {
    headers['content-type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  const response = await fetch(owui.url + path, { method, headers, body: payload, signal: AbortSignal.timeout(60_000) });
  const text = await response.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: response.status, text, json };
}
