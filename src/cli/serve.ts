import type { ServiceConfig } from '../config/schema.js';
import { createService } from '../service.js';
import { createLogger } from '../observability/logger.js';
import { UsageError, type CliIo } from './io.js';

/** Exit code that tells the entry point the process stays up until a signal. */
export const KEEP_RUNNING = -1;

/** `serve`: runs the service until SIGTERM or SIGINT, then drains and exits. */
export async function serveCommand(args: string[], config: ServiceConfig, _io: CliIo): Promise<number> {
  if (args.length > 0) {
    throw new UsageError(`serve takes no arguments besides --config; got "${args.join(' ')}"`);
  }
  const logger = createLogger(config.log.level);
  logger.info({ config: config.source }, 'configuration loaded');
  const service = await createService(config, { logger });

  const onSignal = (signal: NodeJS.Signals): void => {
    logger.info({ signal }, 'signal received; shutting down');
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
