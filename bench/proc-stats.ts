/**
 * CPU time and memory of the processes under test, read from /proc (Linux), so each server is
 * measured on its own and the load generator's cost never counts against it.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';

let ticksPerSecond: number | undefined;

function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

/** User + system CPU seconds the process (all its threads) has used so far. */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which is in parentheses and may contain spaces.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    return (utime + stime) / clockTicks();
  } catch {
    return 0;
  }
}

function statusField(pid: number, field: string): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
    return match ? Number(match[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

export const rssBytes = (pid: number): number => statusField(pid, 'VmRSS');

/** The children of a process (nginx's workers). */
export function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

export interface UsageWindow {
  cpuSeconds: number;
  /** Highest resident set seen during the window (sum over the processes). */
  peakRssBytes: number;
}

/**
 * Measures a set of processes over a window: CPU as a delta, peak RSS both from the kernel's
 * high-water mark (reset at the start, where permitted) and from sampling, whichever is higher.
 */
export class UsageMeter {
  private readonly startCpu: number;
  private peakSampled = 0;
  private readonly timer: NodeJS.Timeout;
  private readonly hwmReset: boolean;

  constructor(
    private readonly pids: readonly number[],
    sampleMs = 50,
  ) {
    this.hwmReset = pids.every((pid) => {
      try {
        // "5" resets VmHWM to the current RSS (proc(5), clear_refs).
        writeFileSync(`/proc/${pid}/clear_refs`, '5');
        return true;
      } catch {
        return false;
      }
    });
    this.startCpu = this.cpu();
    this.sample();
    this.timer = setInterval(() => this.sample(), sampleMs);
  }

  stop(): UsageWindow {
    clearInterval(this.timer);
    this.sample();
    const hwm = this.hwmReset ? this.pids.reduce((sum, pid) => sum + statusField(pid, 'VmHWM'), 0) : 0;
    return { cpuSeconds: this.cpu() - this.startCpu, peakRssBytes: Math.max(hwm, this.peakSampled) };
  }

  private cpu(): number {
    return this.pids.reduce((sum, pid) => sum + cpuSeconds(pid), 0);
  }

  private sample(): void {
    const rss = this.pids.reduce((sum, pid) => sum + rssBytes(pid), 0);
    if (rss > this.peakSampled) this.peakSampled = rss;
  }
}
