/**
 * The load generator: h2load (Debian package nghttp2-client) replaying one
 * recorded gRPC call. h2load is written in C, so one of its threads drives far
 * more calls per second than a Node.js gRPC client on the same core, which
 * leaves the other core to the server under test.
 *
 * h2load counts every HTTP 200 as a success, whatever status the
 * `grpc-status` trailer carries, so callers check the decisions separately.
 */
import { spawn } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { cpuSeconds } from './proc.js';
import { requireCommand } from './tools.js';

export const H2LOAD_PACKAGE = 'nghttp2-client';
const CHECK_PATH = '/envoy.service.auth.v3.Authorization/Check';
/** h2load is killed when it runs this much longer than its `-D` duration, in seconds. */
const OVERRUN_LIMIT_SECONDS = 30;

/** h2load ended abnormally; the run can be repeated. */
export class H2loadError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'H2loadError';
  }
}

export function requireH2load(): void {
  requireCommand('h2load', ['--version'], H2LOAD_PACKAGE);
}

export interface LoadOptions {
  /** `HOST:PORT` of the gRPC server. */
  address: string;
  /** File holding the length-prefixed request message, sent as the body of every call. */
  bodyPath: string;
  /** HTTP/2 connections (h2load `-c`). */
  connections: number;
  /** Concurrent calls per connection (h2load `-m`). */
  streams: number;
  durationSeconds: number;
  /** Total calls per second across all connections; unset sends as fast as responses return. */
  rate?: number;
  /** Per-call log, tab-separated (start µs, HTTP status, duration µs); read for the latency percentiles and deleted. */
  logPath: string;
}

export interface LoadResult {
  /** Calls that got HTTP 200, per second of the run. */
  throughput: number;
  succeeded: number;
  failed: number;
  errored: number;
  /** Durations of the calls that got HTTP 200, ascending, in milliseconds. */
  durationsMs: Float64Array;
  wallSeconds: number;
  /** CPU seconds h2load used, read shortly before it ended; a lower bound. */
  loadGeneratorCpuSeconds: number;
}

/** Runs h2load once with a fixed duration and returns its counts and call durations. */
export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const args = [
    '-t', '1',
    '-c', String(options.connections),
    '-m', String(options.streams),
    '-D', String(options.durationSeconds),
    '-d', options.bodyPath,
    '-H', 'content-type: application/grpc',
    '-H', 'te: trailers',
    '--log-file', options.logPath,
  ];
  if (options.rate !== undefined) {
    args.push('--rps', String(Math.max(1, Math.round(options.rate / options.connections))));
  }
  args.push(`http://${options.address}${CHECK_PATH}`);

  const started = performance.now();
  const child = spawn('h2load', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));

  let cpu = 0;
  const sampler = setInterval(() => {
    if (child.pid !== undefined) {
      cpu = Math.max(cpu, cpuSeconds(child.pid));
    }
  }, 100);
  const killer = setTimeout(() => child.kill('SIGKILL'), (options.durationSeconds + OVERRUN_LIMIT_SECONDS) * 1000);
  const exit = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal }));
  }).finally(() => {
    clearInterval(sampler);
    clearTimeout(killer);
  });
  const wallSeconds = (performance.now() - started) / 1000;
  if (exit.code !== 0) {
    throw new H2loadError(`h2load ${args.join(' ')} exited with ${exit.signal ?? exit.code}:\n${output}`);
  }

  const counts = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored/.exec(output);
  const finished = /finished in ([\d.]+)s/.exec(output);
  if (!counts || !finished) {
    throw new Error(`cannot read the h2load output:\n${output}`);
  }
  const succeeded = Number(counts[4]);
  return {
    throughput: succeeded / Number(finished[1]),
    succeeded,
    failed: Number(counts[5]),
    errored: Number(counts[6]),
    durationsMs: readDurationsMs(options.logPath),
    wallSeconds,
    loadGeneratorCpuSeconds: cpu,
  };
}

/** Durations of the calls that got HTTP 200, ascending, in milliseconds. */
function readDurationsMs(logPath: string): Float64Array {
  const text = readFileSync(logPath, 'utf8');
  rmSync(logPath, { force: true });
  const lines = text.split('\n');
  const durations = new Float64Array(lines.length);
  let count = 0;
  for (const line of lines) {
    const [, status, micros] = line.split('\t');
    if (status === '200') {
      durations[count++] = Number(micros) / 1000;
    }
  }
  return durations.subarray(0, count).sort();
}

/** Nearest-rank percentile of ascending values; NaN when there are none. */
export function percentile(sorted: ArrayLike<number>, fraction: number): number {
  if (sorted.length === 0) {
    return Number.NaN;
  }
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(fraction * sorted.length)));
  return sorted[rank - 1];
}
