import type { DestinationStream } from 'pino';
import type { ServiceConfig } from '../../config/schema.js';
import { createLogger, type Logger } from '../../observability/logger.js';
import { LayoutMismatchError } from '../../store/redis-layout.js';
import { TokenDigester } from '../../store/token-digest.js';
import { EXIT_ERROR, EXIT_FAILURE, UsageError, type CliIo } from '../io.js';
import { AdminStore } from './admin-store.js';

/** A command that ran but could not do what was asked (not found, already exists); exits 1. */
export class AdminError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AdminError';
  }
}

/** Connected store, logger and streams of one admin command. */
export interface AdminSession {
  store: AdminStore;
  logger: Logger;
  io: CliIo;
}

/**
 * Runs `work` with a connected AdminStore and turns failures into exit codes:
 * 2 for usage (including `store.type: memory`), 1 for everything else. Each
 * failure prints one line `hawkbit-ext-authz COMMAND: MESSAGE` on stderr.
 */
export async function runAdminCommand(
  command: string,
  config: ServiceConfig,
  io: CliIo,
  work: (session: AdminSession) => Promise<number>,
): Promise<number> {
  const rejection = rejectMemoryStore(command, config, io);
  if (rejection !== undefined || config.store.type !== 'redis') {
    return rejection ?? EXIT_ERROR;
  }
  // JSON log lines go to stderr, so stdout carries only the command's result (for example a new token).
  const logger = createLogger(config.log.level, io.err as unknown as DestinationStream).child({ component: 'admin', command });
  let store: AdminStore;
  try {
    store = await AdminStore.open(config.store.redis, new TokenDigester(config.tokenDigestKey), logger);
  } catch (error) {
    return fail(io, command, EXIT_FAILURE, (error as Error).message);
  }
  try {
    return await work({ store, logger, io });
  } catch (error) {
    return reportError(io, command, error);
  } finally {
    await store.close();
  }
}

/** Prints why admin commands do not work with the embedded store and returns 2; undefined for `store.type: redis`. */
export function rejectMemoryStore(command: string, config: ServiceConfig, io: CliIo): number | undefined {
  if (config.store.type === 'redis') {
    return undefined;
  }
  return fail(
    io,
    command,
    EXIT_ERROR,
    `needs store.type: redis in ${config.source}; with store.type: ${config.store.type} the tenants come from the tenants: section of that file, so edit them there`,
  );
}

/** Prints the error and returns its exit code: 2 for UsageError, 1 otherwise. */
export function reportError(io: CliIo, command: string, error: unknown): number {
  if (error instanceof UsageError) {
    return fail(io, command, EXIT_ERROR, error.message);
  }
  if (error instanceof AdminError || error instanceof LayoutMismatchError) {
    return fail(io, command, EXIT_FAILURE, error.message);
  }
  const message = error instanceof Error ? error.message : String(error);
  return fail(io, command, EXIT_FAILURE, `failed: ${message}; check that Redis is reachable and run the command again`);
}

export function fail(io: CliIo, command: string, code: number, message: string): number {
  io.err.write(`hawkbit-ext-authz ${command}: ${message}\n`);
  return code;
}
