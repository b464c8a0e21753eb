import { ConfigError } from '../config/errors.js';
import { loadConfigFile } from '../config/load.js';
import type { ServiceConfig } from '../config/schema.js';
import { readFileState, watchConfigFile } from '../config/watch.js';
import { createLogger, logDestination, type Logger } from '../observability/logger.js';
import { createService, forgetTenantSecrets, type ServiceHandle } from '../service.js';
import { UsageError, type CliIo } from './io.js';
import { applyServeV8Flags } from './v8-tuning.js';
import { attachToPrimary, detachFromPrimary, parseWorkersFlag, runPrimary, shouldRunPrimary, STOP_GRACE_MS, workerLogger } from './workers.js';

/** Exit code that keeps the entry point from exiting, so the process runs until a signal. */
export const KEEP_RUNNING = -1;

/**
 * `serve`: runs the service until SIGTERM or SIGINT, then drains and exits.
 * With `--workers N` above 1, the process forks N workers that each run the
 * service on the same ports (see workers.ts) and only supervises them.
 * SIGHUP, and a change of the file when `reload.watch` is on, reload the
 * configuration; an invalid file keeps the running one.
 */
export async function serveCommand(args: string[], config: ServiceConfig, io: CliIo): Promise<number> {
  const { workers, rest } = parseWorkersFlag(args);
  if (rest.length > 0) {
    throw new UsageError(`serve takes no arguments besides --config and --workers; got "${rest.join(' ')}"`);
  }
  const logger = workerLogger(createLogger(config.log.level, logDestination(config.log.destination)));
  const workerCount = workers ?? config.workers;
  if (shouldRunPrimary(workerCount)) {
    logger.info({ config: config.source }, 'configuration loaded');
    // Each worker reads the file itself, and the caller still references this object while the primary runs.
    forgetTenantSecrets(config);
    const { drainDelayMs, timeoutMs } = config.shutdown;
    const code = await runPrimary({ count: workerCount, logger, stopTimeoutMs: drainDelayMs + timeoutMs + STOP_GRACE_MS });
    logger.flush();
    return code;
  }
  logger.info({ config: config.source }, 'configuration loaded');
  const v8Flags = applyServeV8Flags();
  if (v8Flags.length > 0) {
    logger.debug({ v8Flags }, 'V8 flags set for the Check path');
  }
  // Taken before the service starts, so a change while it starts still triggers a reload.
  const loadedState = config.reload.watch ? readFileState(config.source) : undefined;
  let service: ServiceHandle;
  try {
    service = await createService(config, { logger });
  } catch (error) {
    detachFromPrimary();
    throw error;
  }
  attachToPrimary(() => service.stop(), logger);

  const reload = createReloader(service, logger, io.env);
  process.on('SIGHUP', () => reload('SIGHUP'));
  const unwatch = config.reload.watch ? watchConfigFile(config.source, () => reload('file changed'), loadedState) : () => {};

  const onSignal = (signal: NodeJS.Signals): void => {
    logger.info({ signal }, 'signal received; shutting down');
    unwatch();
    service.stop().then(
      () => {
        logger.flush();
        process.exit(0);
      },
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        logger.flush();
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  return KEEP_RUNNING;
}

/** Returns a function that reloads the configuration file once at a time. */
function createReloader(service: ServiceHandle, logger: Logger, env: NodeJS.ProcessEnv): (trigger: string) => void {
  let running: Promise<void> | undefined;
  let again = false;

  const reloadOnce = async (trigger: string): Promise<void> => {
    const path = service.config().source;
    let next: ServiceConfig;
    try {
      next = loadConfigFile(path, { env });
    } catch (error) {
      const problems = error instanceof ConfigError ? error.problems : [(error as Error).message];
      logger.error({ trigger, config: path, problems }, 'configuration reload failed; keeping the running configuration');
      return;
    }
    const kept = await service.reload(next);
    if (kept.length > 0) {
      logger.warn({ trigger, keys: kept }, 'these keys changed but need a restart to take effect');
    }
  };

  return (trigger: string) => {
    if (running) {
      again = true;
      return;
    }
    running = (async () => {
      do {
        again = false;
        await reloadOnce(trigger);
      } while (again);
      running = undefined;
    })();
  };
}
