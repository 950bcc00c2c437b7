/**
 * `tsx bench/profile-summary.ts <file.cpuprofile> [top]`: where a V8 CPU profile (node --cpu-prof)
 * spent its time, as text for a terminal or a README: self time by function, self time by
 * module (a file of src/, a package of node_modules, Node internals), and total (inclusive) time of
 * the gateway's own functions.
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
}

function moduleOf(url: string): string {
  if (url === '') return '(native/V8)';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1]!;
  const own = /\/((?:src|bench)\/.+)$/.exec(url.replace('/bench/.build/dist/', '/src/'));
  if (own) return own[1]!;
  if (url.startsWith('node:')) return url;
  return url.replace(/^file:\/\//, '');
}

function label(node: ProfileNode): string {
  const { functionName, url, lineNumber } = node.callFrame;
  const name = functionName || '(anonymous)';
  if (url === '') return name;
  return `${name} ${moduleOf(url)}:${lineNumber + 1}`;
}

export function summarizeProfile(profile: CpuProfile, top = 25): string {
  const totalSamples = profile.nodes.reduce((sum, node) => sum + (node.hitCount ?? 0), 0);
  const totalMs = (profile.endTime - profile.startTime) / 1000;
  const msPerSample = totalSamples > 0 ? totalMs / totalSamples : 0;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const selfByFunction = new Map<string, number>();
  const selfByModule = new Map<string, number>();
  let idle = 0;
  for (const node of profile.nodes) {
    const hits = node.hitCount ?? 0;
    if (node.callFrame.functionName === '(idle)') {
      idle += hits;
      continue;
    }
    selfByFunction.set(label(node), (selfByFunction.get(label(node)) ?? 0) + hits);
    const module = moduleOf(node.callFrame.url);
    selfByModule.set(module, (selfByModule.get(module) ?? 0) + hits);
  }
  // Inclusive time of the gateway's own functions: each sample counted once per function on its stack.
  const inclusive = new Map<string, number>();
  const walk = (id: number, onStack: Set<string>): number => {
    const node = byId.get(id)!;
    let subtotal = node.hitCount ?? 0;
    const name = label(node);
    const own = /^(src)\//.test(moduleOf(node.callFrame.url)) && !onStack.has(name);
    if (own) onStack.add(name);
    for (const child of node.children ?? []) subtotal += walk(child, onStack);
    if (own) {
      onStack.delete(name);
      inclusive.set(name, (inclusive.get(name) ?? 0) + subtotal);
    }
    return subtotal;
  };
  const root = profile.nodes[0];
  if (root) walk(root.id, new Set());
  const busy = totalSamples - idle;
  const percent = (hits: number): string => `${((100 * hits) / Math.max(1, busy)).toFixed(1).padStart(5)}%`;
  const table = (title: string, entries: Map<string, number>): string =>
    `${title}\n${[...entries]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, hits]) => `  ${percent(hits)}  ${(hits * msPerSample).toFixed(0).padStart(6)} ms  ${name}`)
      .join('\n')}`;
  return [
    `profile: ${totalMs.toFixed(0)} ms, busy ${(busy * msPerSample).toFixed(0)} ms (percentages are of busy time)`,
    table('self time by module', selfByModule),
    table('self time by function', selfByFunction),
    table('total time of src/ functions', inclusive),
  ].join('\n\n');
}

const [file, top] = process.argv.slice(2);
if (!file) {
  process.stderr.write('usage: tsx bench/profile-summary.ts <file.cpuprofile> [top]\n');
  process.exit(2);
}
process.stdout.write(`${summarizeProfile(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile, Number(top ?? 25))}\n`);
