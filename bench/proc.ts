/**
 * CPU time and memory of server processes, read from Linux's /proc. The
 * benchmark reads them from outside, so the servers need no code for it and
 * a process tree (a cluster primary and its workers) is measured the same way.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/** Kernel clock ticks per second, the unit of utime and stime in /proc/PID/stat. */
const CLOCK_TICKS_PER_SECOND = readClockTicks();

function readClockTicks(): number {
  try {
    const value = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    return Number.isInteger(value) && value > 0 ? value : 100;
  } catch {
    // NOTE: 100 is the value on every common Linux build; getconf is only missing on stripped images.
    return 100;
  }
}

/** CPU seconds (user + system) of a process, or of one of its threads when `tid` is given; 0 when it is gone. */
export function cpuSeconds(pid: number, tid?: number): number {
  const path = tid === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${tid}/stat`;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return 0;
  }
  // The command name in brackets may hold spaces, so fields are counted after the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // Fields 14 (utime) and 15 (stime) of proc(5), at indexes 11 and 12 after the name and state.
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
}

/** Peak resident set size (VmHWM) of a process in bytes; 0 when it is gone. */
export function peakRssBytes(pid: number): number {
  return statusKilobytes(pid, 'VmHWM') * 1024;
}

/** Current resident set size (VmRSS) of a process in bytes; 0 when it is gone. */
export function rssBytes(pid: number): number {
  return statusKilobytes(pid, 'VmRSS') * 1024;
}

function statusKilobytes(pid: number, field: string): number {
  try {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) : 0;
  } catch {
    return 0;
  }
}

/** Returns the process id and the ids of all its descendants that exist now. */
export function processTree(rootPid: number): number[] {
  const parents = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) {
      continue;
    }
    try {
      const text = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const parent = Number(text.slice(text.lastIndexOf(')') + 2).split(' ')[1]);
      const siblings = parents.get(parent) ?? [];
      siblings.push(Number(entry));
      parents.set(parent, siblings);
    } catch {
      // The process ended while the folder was read.
    }
  }
  const tree: number[] = [];
  const pending = [rootPid];
  while (pending.length > 0) {
    const pid = pending.pop() as number;
    tree.push(pid);
    pending.push(...(parents.get(pid) ?? []));
  }
  return tree;
}

/** CPU totals of a process tree at one moment. */
export interface CpuSample {
  /** User + system seconds of every process in the tree. */
  processSeconds: number;
  /** User + system seconds of the main threads (the event loops) only. */
  mainThreadSeconds: number;
  /** Monotonic time of the sample, in seconds. */
  at: number;
}

export function sampleCpu(pids: readonly number[]): CpuSample {
  let processSeconds = 0;
  let mainThreadSeconds = 0;
  for (const pid of pids) {
    processSeconds += cpuSeconds(pid);
    mainThreadSeconds += cpuSeconds(pid, pid);
  }
  return { processSeconds, mainThreadSeconds, at: performance.now() / 1000 };
}
