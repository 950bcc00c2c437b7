/**
 * The live model lists of the providers, fetched with a provider key and kept briefly in
 * memory. They serve GET /v1/models and decide routing by exact id (Groq serves ids such as
 * openai/gpt-oss-120b, which no prefix rule could place).
 */
import type { Logger } from 'pino';
import type { UpstreamClient } from '../upstream/client.js';
import { PROVIDER_NAMES, type ProviderName } from './provider-name.js';

export interface ModelInfo {
  id: string;
  object: 'model';
  created: number;
  owned_by: string;
  [extra: string]: unknown;
}

interface Snapshot {
  models: ModelInfo[];
  ids: ReadonlySet<string>;
  fetchedAt: number;
}

const FETCH_TIMEOUT_MS = 5_000;
/** After a failed fetch, wait this long before asking that provider again. */
const FAILURE_BACKOFF_MS = 5_000;

export class ModelLists {
  private readonly snapshots = new Map<ProviderName, Snapshot>();
  private readonly inFlight = new Map<ProviderName, Promise<Snapshot | undefined>>();
  private readonly failedAt = new Map<ProviderName, number>();
  /** Bumped whenever a list is replaced: routing decided before may have changed. */
  generation = 0;

  constructor(
    private readonly clients: Readonly<Record<ProviderName, UpstreamClient>>,
    private readonly hasKeys: (provider: ProviderName) => boolean,
    private readonly ttlMs: number,
    private readonly log: Logger,
  ) {}

  /** The union of every provider that has a key and answers; a failing provider is left out. */
  async all(): Promise<ModelInfo[]> {
    const lists = await Promise.all(PROVIDER_NAMES.map((provider) => this.current(provider)));
    return lists.flatMap((snapshot) => snapshot?.models ?? []);
  }

  /** Which provider lists this exact id; refreshes stale lists first (deduplicated). */
  async providerOf(model: string): Promise<ProviderName | undefined> {
    for (const provider of PROVIDER_NAMES) {
      const snapshot = await this.current(provider);
      if (snapshot?.ids.has(model)) return provider;
    }
    return undefined;
  }

  /**
   * providerOf without waiting: null when the answer needs a list that has never been fetched
   * (the fetch is started; the caller awaits providerOf). Stale lists answer, as in providerOf.
   */
  providerOfNow(model: string): ProviderName | undefined | null {
    for (const provider of PROVIDER_NAMES) {
      const snapshot = this.current(provider);
      if (snapshot instanceof Promise) return null;
      if (snapshot?.ids.has(model)) return provider;
    }
    return undefined;
  }

  /** Is this id in any list already fetched (no I/O: used for bounding metric labels). */
  isKnown(model: string): boolean {
    for (const snapshot of this.snapshots.values()) if (snapshot.ids.has(model)) return true;
    return false;
  }

  /** The list to route by: a snapshot at once when there is one, else the (shared) first fetch. */
  private current(provider: ProviderName): Snapshot | undefined | Promise<Snapshot | undefined> {
    if (!this.hasKeys(provider)) return undefined;
    const snapshot = this.snapshots.get(provider);
    const now = Date.now();
    if (snapshot && now - snapshot.fetchedAt < this.ttlMs) return snapshot;
    const failedAt = this.failedAt.get(provider);
    if (failedAt !== undefined && now - failedAt < FAILURE_BACKOFF_MS) return snapshot;
    let pending = this.inFlight.get(provider);
    if (!pending) {
      pending = this.fetch(provider).finally(() => this.inFlight.delete(provider));
      this.inFlight.set(provider, pending);
    }
    // A stale list still routes while the refresh runs: only the very first fetch is awaited.
    if (snapshot) return snapshot;
    return pending;
  }

  private async fetch(provider: ProviderName): Promise<Snapshot | undefined> {
    try {
      const response = await this.clients[provider].send({ method: 'GET', path: '/models', signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) });
      if (response.statusCode !== 200) {
        await response.body.dump();
        throw new Error(`status ${response.statusCode}`);
      }
      const parsed = (await response.body.json()) as { data?: unknown };
      const models = Array.isArray(parsed.data) ? parsed.data.filter(isModel).map((m) => normalise(m, provider)) : [];
      const snapshot: Snapshot = { models, ids: new Set(models.map((m) => m.id)), fetchedAt: Date.now() };
      this.snapshots.set(provider, snapshot);
      this.generation++;
      this.failedAt.delete(provider);
      return snapshot;
    } catch (error) {
      this.failedAt.set(provider, Date.now());
      this.log.warn({ provider, err: { message: (error as Error).message } }, 'could not fetch the model list; leaving the provider out');
      return this.snapshots.get(provider);
    }
  }
}

function isModel(value: unknown): value is { id: string } {
  return typeof value === 'object' && value !== null && typeof (value as { id?: unknown }).id === 'string';
}

function normalise(model: { id: string } & Record<string, unknown>, provider: ProviderName): ModelInfo {
  return {
    ...model,
    id: model.id,
    object: 'model',
    created: typeof model.created === 'number' ? model.created : 0,
    owned_by: typeof model.owned_by === 'string' ? model.owned_by : provider,
  };
}
