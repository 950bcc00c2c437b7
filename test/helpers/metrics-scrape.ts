/**
 * Reads the gateway's /metrics the way Prometheus does: the text format parsed into samples
 * (name, labels, value), plus the metric families it declared with # TYPE.
 */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Scrape {
  text: string;
  samples: Sample[];
  /** name → type, from the `# TYPE` lines. */
  types: Map<string, string>;
  /** Samples of this name whose labels include all of `match`. */
  select(name: string, match?: Record<string, string>): Sample[];
  /** Sum of those samples' values (0 when there is none). */
  sum(name: string, match?: Record<string, string>): number;
  /** Distinct values one label takes across a metric's samples. */
  labelValues(name: string, label: string): Set<string>;
}

export async function scrape(url: string, token?: string): Promise<Scrape> {
  const response = await fetch(`${url}/metrics`, token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } });
  if (response.status !== 200) throw new Error(`/metrics answered ${response.status}: ${await response.text()}`);
  return parseMetrics(await response.text());
}

const SAMPLE_LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export function parseMetrics(text: string): Scrape {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line.startsWith('# TYPE ')) {
      const [, , name, type] = line.split(' ');
      if (name && type) types.set(name, type);
      continue;
    }
    if (line === '' || line.startsWith('#')) continue;
    const match = SAMPLE_LINE.exec(line);
    if (!match) throw new Error(`unparseable metrics line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, key, raw] of (match[2] ?? '').matchAll(LABEL)) {
      labels[key as string] = (raw as string).replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
    }
    samples.push({ name: match[1] as string, labels, value: Number(match[3]) });
  }
  const select = (name: string, match: Record<string, string> = {}) =>
    samples.filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v));
  return {
    text,
    samples,
    types,
    select,
    sum: (name, match) => select(name, match).reduce((total, s) => total + s.value, 0),
    labelValues: (name, label) =>
      new Set(
        select(name)
          .map((s) => s.labels[label])
          .filter((v): v is string => v !== undefined),
      ),
  };
}

/**
 * The gateway fetches the providers' model lists right after start-up without waiting for them;
 * wait until both answered (each upstream call is timed), so canned upstream answers queued
 * afterwards go to the requests they are meant for and counts start from a settled state.
 */
export async function waitForModelLists(url: string, providers: string[] = ['openai', 'groq'], token?: string): Promise<Scrape> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    const current = await scrape(url, token);
    if (providers.every((provider) => current.sum('gateway_upstream_duration_seconds_count', { provider }) >= 1)) return current;
    if (Date.now() > deadline) throw new Error('the model lists were not fetched within 5 s of start-up');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
