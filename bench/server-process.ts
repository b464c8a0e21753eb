/**
 * Starts a server under test in its own child process, waits until it is
 * ready, measures it from outside through /proc, and stops it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as grpc from '@grpc/grpc-js';
import { closeSync, openSync, readFileSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { healthService } from '../src/envoy/proto.js';
import { peakRssBytes, processTree, sampleCpu, type CpuSample } from './proc.js';

const SERVICE_ENTRY = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const NOOP_ENTRY = fileURLToPath(new URL('./noop-server.js', import.meta.url));
/** Time limit for a server to log that it started, in milliseconds. */
const START_TIMEOUT_MS = 60_000;
/** Time limit for a server to exit after SIGTERM before it is killed, in milliseconds. */
const STOP_TIMEOUT_MS = 20_000;
const READY_POLL_MS = 10;
/** Deadline of one readiness probe, in milliseconds. */
const HEALTH_PROBE_DEADLINE_MS = 500;

export interface ServerSpec {
  /** `service` runs `hawkbit-ext-authz serve`; `no-op` runs bench/noop-server.ts. */
  kind: 'service' | 'no-op';
  configPath: string;
  /** `HOST:PORT` of the gRPC listener, for the readiness probe. */
  address: string;
  /** CheckResponse JSON the no-op server returns. */
  responsePath?: string;
  /** Passed to `serve --workers`; unset runs the single-process service. */
  workers?: number;
  /** stdout of the server (its JSON log lines) goes to this file. */
  logPath: string;
  /** Extra `node` options, e.g. `--cpu-prof`. */
  nodeOptions?: string[];
}

/** Server processes spawned and not yet exited, so that an interrupted benchmark can stop them. */
const spawned = new Set<ChildProcess>();

export class ServerProcess {
  private constructor(
    readonly spec: ServerSpec,
    private readonly child: ChildProcess,
    /** Seconds from spawning the process to its first SERVING health response (with workers: and every worker's start line). */
    readonly startupSeconds: number,
  ) {}

  static async start(spec: ServerSpec): Promise<ServerProcess> {
    const args = [...(spec.nodeOptions ?? [])];
    if (spec.kind === 'service') {
      args.push(SERVICE_ENTRY, '--config', spec.configPath, 'serve');
      if (spec.workers !== undefined) {
        args.push('--workers', String(spec.workers));
      }
    } else {
      if (spec.responsePath === undefined) {
        throw new Error('a no-op server needs responsePath');
      }
      args.push(NOOP_ENTRY, spec.configPath, spec.responsePath);
    }

    const logFd = openSync(spec.logPath, 'w');
    const spawnedAt = Date.now();
    const child = spawn(process.execPath, args, { stdio: ['ignore', logFd, 'pipe'] });
    closeSync(logFd);
    spawned.add(child);
    child.once('exit', () => spawned.delete(child));
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString('utf8')).slice(-20_000)));
    let exited: string | undefined;
    child.once('exit', (code, signal) => (exited = `exited with ${signal ?? code}`));

    const expectedStarts = spec.workers ?? 0;
    const deadline = Date.now() + START_TIMEOUT_MS;
    for (;;) {
      if (startLines(spec.logPath) >= expectedStarts && (await isServing(spec.address))) {
        return new ServerProcess(spec, child, (Date.now() - spawnedAt) / 1000);
      }
      if (exited !== undefined || Date.now() > deadline) {
        child.kill('SIGKILL');
        const reason = exited ?? `did not start within ${START_TIMEOUT_MS} ms`;
        throw new Error(`${spec.kind} server ${reason}\nstderr:\n${stderr}\nlog tail:\n${tail(spec.logPath)}`);
      }
      await sleep(READY_POLL_MS);
    }
  }

  /** Stops every server process still running, for a benchmark that was interrupted. */
  static async stopAll(): Promise<void> {
    await Promise.all([...spawned].map((child) => stopChild(child)));
  }

  get pid(): number {
    return this.child.pid as number;
  }

  /** Returns the ids of the server process and, with workers, of every worker. */
  pids(): number[] {
    return processTree(this.pid);
  }

  sampleCpu(): CpuSample {
    return sampleCpu(this.pids());
  }

  /** Sum of the peak RSS of every process in the tree, in bytes. */
  peakRssBytes(): number {
    return this.pids().reduce((sum, pid) => sum + peakRssBytes(pid), 0);
  }

  /** Current size of the log file, in bytes. */
  logSize(): number {
    return statSync(this.spec.logPath).size;
  }

  /** Sends SIGTERM, waits for the exit and kills the process if it takes too long. */
  async stop(): Promise<void> {
    await stopChild(this.child);
  }
}

/** Sends SIGTERM to a child, waits for its exit and kills it if it takes longer than STOP_TIMEOUT_MS. */
async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return;
  }
  const exit = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
  await exit;
  clearTimeout(timer);
}

/** Number of "service started" lines in the log: one per process that serves. */
function startLines(logPath: string): number {
  return readFileSync(logPath, 'utf8').split('"service started"').length - 1;
}

/** Checks whether grpc.health.v1 reports SERVING. Each probe opens a fresh channel, so no reconnect backoff delays it. */
function isServing(address: string): Promise<boolean> {
  const Client = healthService();
  const client = new Client(address, grpc.credentials.createInsecure());
  return new Promise<boolean>((resolve) => {
    client.Check({ service: '' }, { deadline: Date.now() + HEALTH_PROBE_DEADLINE_MS }, (error: grpc.ServiceError | null, response: { status: number }) =>
      resolve(error === null && response.status === 1),
    );
  }).finally(() => client.close());
}

function tail(path: string): string {
  try {
    return readFileSync(path, 'utf8').split('\n').slice(-20).join('\n');
  } catch {
    return '';
  }
}
