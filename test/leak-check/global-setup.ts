/**
 * The leak check's end of run (vitest globalSetup): gives the test files a report directory of
 * this run's own (helpers running other test files at the same time have theirs), then, once
 * every file finished, sums up the reports: the figures always, and every finding with its file,
 * test, channel and a masked excerpt. Any finding fails the run (exit code 1).
 */
import { mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import type { FileReport, Leak } from './recorder.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Where each test file writes its leak-check report. */
    leakCheckDir: string;
  }
}

function summary(reports: FileReport[]): { text: string; leaks: Leak[] } {
  const sum = (pick: (report: FileReport) => number) => reports.reduce((total, report) => total + pick(report), 0);
  // Each secret once, under the first way it was registered.
  const secrets = new Map<string, string>();
  for (const { sha256, kind } of reports.flatMap((report) => report.secrets)) if (!secrets.has(sha256)) secrets.set(sha256, kind);
  const kinds = new Map<string, number>();
  for (const kind of secrets.values()) kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
  const byKind = [...kinds]
    .sort((a, b) => b[1] - a[1])
    .map(([kind, count]) => `${kind}: ${count}`)
    .join(', ');
  const leaks = reports.flatMap((report) => report.leaks);
  const figures = [
    `${reports.length} test files`,
    `${sum((r) => r.figures.gateways)} in-process gateways`,
    `${sum((r) => r.figures.processes)} gateway processes`,
    `log lines scanned = ${sum((r) => r.figures.logLines + r.figures.processLines)}`,
    `responses scanned = ${sum((r) => r.figures.responses)} (${(sum((r) => r.figures.responseBytes) / 1_048_576).toFixed(1)} MiB)`,
    `metric scrapes scanned = ${sum((r) => r.figures.metricScrapes)}`,
    `secrets registered = ${secrets.size}${byKind ? ` (${byKind})` : ''}`,
    `echoes of the tests' own request bodies (not leaks) = ${sum((r) => r.figures.echoes)}`,
    `leaks = ${leaks.length}`,
  ];
  return { text: `Leak check: ${figures.join(', ')}`, leaks };
}

export default function setup(project: TestProject): () => void {
  const dir = join(project.config.root, '.tmp', 'leak-check', `run-${process.pid}-${Date.now()}`);
  mkdirSync(dir, { recursive: true });
  project.provide('leakCheckDir', dir);
  return () => {
    mkdirSync(dir, { recursive: true });
    const reports = readdirSync(dir)
      .filter((name) => name.endsWith('.json'))
      .map((name) => JSON.parse(readFileSync(join(dir, name), 'utf8')) as FileReport);
    const { text, leaks } = summary(reports);
    // A file whose tests were all skipped runs no hooks, so writes no report: say how many did.
    const ran = project.vitest.state.getFiles().length;
    if (reports.length < ran)
      console.log(`Leak check: reports from ${reports.length} of the ${ran} test files run (a file with every test skipped writes none)`);
    for (const leak of leaks) {
      console.error(
        `LEAK ${leak.secret} (first registered: ${leak.origin}), rule ${leak.rule}\n  in ${leak.file} > ${leak.test}\n  ${leak.channel} of ${leak.source}\n  ${leak.excerpt}`,
      );
    }
    console.log(text);
    if (leaks.length > 0) {
      console.error(`The leak check failed: ${leaks.length} finding(s) above; the reports are kept in ${dir}`);
      process.exitCode = 1;
      return;
    }
    rmSync(dir, { recursive: true, force: true });
  };
}
