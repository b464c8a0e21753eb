/**
 * `serve --workers N`: a primary process forks N workers with `node:cluster`,
 * and each worker runs the whole service. All workers listen on the same gRPC
 * and HTTP ports: the primary accepts each new connection and hands it to the
 * next worker in turn (round-robin, Node's default on Linux). A connection
 * stays with its worker for its lifetime, so workers share connections, not
 * calls; docs/benchmarks.md explains what that means behind Envoy.
 *
 * The primary serves nothing itself. It restarts a worker that crashes, with
 * a growing delay; forwards SIGTERM, SIGINT and SIGHUP to the workers; and
 * exits once every worker has stopped.
 */
import cluster, { type Worker } from 'node:cluster';
import type { Logger } from '../observability/logger.js';
import { UsageError } from './io.js';

/** Largest accepted worker count; far above any core count this service is run on. */
export const MAX_WORKERS = 256;
/** Delay before the first restart of a crashed worker, in milliseconds; doubled per further crash in a row. */
export const RESTART_DELAY_MIN_MS = 100;
/** Upper bound of the restart delay, in milliseconds. */
export const RESTART_DELAY_MAX_MS = 30_000;
/** A worker that ran at least this long before it crashed restarts after the minimum delay again, in milliseconds. */
export const STABLE_RUN_MS = 30_000;
/** Time a worker has after its drain and shutdown timeouts before the primary kills it, in milliseconds. */
export const STOP_GRACE_MS = 5_000;

/** Message a worker sends to the primary once its servers listen. */
const READY_MESSAGE = 'hawkbit-ext-authz:worker-ready';

export interface WorkerPoolOptions {
  /** Number of workers, at least 1. */
  count: number;
  logger: Logger;
  /** How long workers may take to stop after SIGTERM before they are killed, in milliseconds. */
  stopTimeoutMs: number;
  /** Overrides of the restart delays, for tests. */
  restartDelayMinMs?: number;
  restartDelayMaxMs?: number;
}

/**
 * Reads `--workers N` (or `--workers=N`) from the `serve` arguments. Returns
 * the count, or undefined when the flag is absent, and the arguments left.
 */
export function parseWorkersFlag(args: readonly string[]): { workers: number | undefined; rest: string[] } {
  const rest: string[] = [];
  let workers: number | undefined;
  for (let index = 0; index < args.length; index++) {
    const arg = args[index];
    let value: string | undefined;
    if (arg === '--workers') {
      value = args[++index];
      if (value === undefined) {
        throw new UsageError('--workers needs a number, for example --workers 2');
      }
    } else if (arg.startsWith('--workers=')) {
      value = arg.slice('--workers='.length);
    } else {
      rest.push(arg);
      continue;
    }
    workers = validateWorkerCount(value);
  }
  return { workers, rest };
}

function validateWorkerCount(value: string): number {
  const count = Number(value);
  if (!/^\d+$/.test(value) || count < 1 || count > MAX_WORKERS) {
    throw new UsageError(`--workers must be a whole number from 1 to ${MAX_WORKERS}; got "${value}"`);
  }
  return count;
}

/** Whether this process should fork workers rather than serve: more than one worker requested, and not a worker itself. */
export function shouldRunPrimary(count: number): boolean {
  return count > 1 && cluster.isPrimary;
}

/** In a worker: the logger with the worker's id on every line; elsewhere the logger unchanged. */
export function workerLogger(logger: Logger): Logger {
  return cluster.isWorker && cluster.worker ? logger.child({ worker: cluster.worker.id }) : logger;
}

/**
 * In a worker: sends the primary a message that this worker serves, and stops
 * the service when the primary goes away, because the primary owns the
 * listening socket and no new connection would reach this worker again.
 * Does nothing outside a worker.
 */
export function attachToPrimary(stop: () => Promise<void>, logger: Logger): void {
  if (!cluster.isWorker) {
    return;
  }
  process.send?.({ type: READY_MESSAGE });
  process.once('disconnect', () => {
    logger.warn('lost the connection to the primary process; shutting down');
    stop().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown after losing the primary failed');
        process.exit(1);
      },
    );
  });
}

/**
 * In a worker whose service failed to start: closes the channel to the
 * primary, which would otherwise keep the process alive, so the worker exits
 * with the error the CLI reports. Does nothing outside a worker.
 */
export function detachFromPrimary(): void {
  if (cluster.isWorker && process.connected) {
    process.disconnect();
  }
}

/**
 * Runs the primary: forks the workers and keeps them running. Resolves with 0
 * once all of them have stopped after a signal. Resolves with 1 when a worker
 * fails before any worker has started, so that a broken configuration or a
 * busy port fails `serve` as it does without workers.
 */
export function runPrimary(options: WorkerPoolOptions): Promise<number> {
  const { count, logger } = options;
  const minDelayMs = options.restartDelayMinMs ?? RESTART_DELAY_MIN_MS;
  const maxDelayMs = options.restartDelayMaxMs ?? RESTART_DELAY_MAX_MS;

  /** Per slot: consecutive crashes, for the restart delay. */
  const crashes = new Array<number>(count).fill(0);
  const slots = new Map<Worker, { slot: number; startedAt: number; ready: boolean }>();
  const restartTimers = new Set<NodeJS.Timeout>();
  let anyReady = false;
  let stopping = false;
  let failedAtStart = false;
  let killTimer: NodeJS.Timeout | undefined;

  return new Promise<number>((resolve) => {
    const finishIfIdle = (): void => {
      if (stopping && slots.size === 0) {
        clearTimeout(killTimer);
        process.off('SIGTERM', onStopSignal);
        process.off('SIGINT', onStopSignal);
        process.off('SIGHUP', onReloadSignal);
        logger.info({ workers: count }, failedAtStart ? 'workers stopped after a start-up failure' : 'all workers stopped');
        resolve(failedAtStart ? 1 : 0);
      }
    };

    const stopAll = (signal: NodeJS.Signals): void => {
      if (stopping) {
        return;
      }
      stopping = true;
      for (const timer of restartTimers) {
        clearTimeout(timer);
      }
      restartTimers.clear();
      for (const worker of slots.keys()) {
        worker.process.kill(signal);
      }
      killTimer = setTimeout(() => {
        for (const worker of slots.keys()) {
          logger.error({ pid: worker.process.pid, stopTimeoutMs: options.stopTimeoutMs }, 'worker did not stop in time; killing it');
          worker.process.kill('SIGKILL');
        }
      }, options.stopTimeoutMs);
      finishIfIdle();
    };

    const fork = (slot: number): void => {
      const worker = cluster.fork();
      slots.set(worker, { slot, startedAt: Date.now(), ready: false });
      worker.on('message', (message: unknown) => {
        const state = slots.get(worker);
        if (state && !state.ready && (message as { type?: string } | null)?.type === READY_MESSAGE) {
          state.ready = true;
          const firstStart = !anyReady;
          anyReady = true;
          logger.info({ pid: worker.process.pid, slot }, firstStart ? 'first worker serving' : 'worker serving');
        }
      });
      worker.on('exit', (code, signal) => {
        const state = slots.get(worker);
        slots.delete(worker);
        if (stopping || !state) {
          finishIfIdle();
          return;
        }
        if (!anyReady) {
          logger.error({ pid: worker.process.pid, code, signal }, 'worker failed before any worker started; stopping');
          failedAtStart = true;
          stopAll('SIGTERM');
          return;
        }
        if (Date.now() - state.startedAt >= STABLE_RUN_MS) {
          crashes[slot] = 0;
        }
        const delayMs = Math.min(maxDelayMs, minDelayMs * 2 ** crashes[slot]);
        crashes[slot]++;
        logger.error({ pid: worker.process.pid, code, signal, slot, restartInMs: delayMs, crashesInARow: crashes[slot] }, 'worker exited; restarting it');
        const timer = setTimeout(() => {
          restartTimers.delete(timer);
          if (!stopping) {
            fork(slot);
          }
        }, delayMs);
        restartTimers.add(timer);
      });
    };

    const onStopSignal = (signal: NodeJS.Signals): void => {
      logger.info({ signal, workers: slots.size }, 'signal received; stopping the workers');
      // Workers drain as a single-process service does on SIGTERM.
      stopAll('SIGTERM');
    };
    const onReloadSignal = (): void => {
      for (const worker of slots.keys()) {
        worker.process.kill('SIGHUP');
      }
    };
    process.on('SIGTERM', onStopSignal);
    process.on('SIGINT', onStopSignal);
    process.on('SIGHUP', onReloadSignal);

    logger.info({ workers: count }, 'starting workers');
    for (let slot = 0; slot < count; slot++) {
      fork(slot);
    }
  });
}
