import { existsSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import { LogStream } from './log-stream.js';
import pino, { type DestinationStream, type Logger } from 'pino';

export type { Logger } from 'pino';

/**
 * Paths that may hold a secret in anything the service logs. Redaction is the
 * second line of defence: code on the Check path never passes a token, key or
 * certificate to the logger in the first place.
 */
export const REDACTED_PATHS = [
  'authorization',
  'headers.authorization',
  'token',
  'key',
  'password',
  'securityToken',
  'certificate',
  '*.authorization',
  '*.token',
  '*.password',
  '*.securityToken',
];

/**
 * Opens `stdout`, `stderr` or a file (created with its folder, appended to)
 * for log lines. Lines still buffered when the process exits are written
 * synchronously on exit.
 */
export function logDestination(destination: string): LogStream {
  // Touching process.stdout or process.stderr makes Node open a pipe there non-blocking, so a full pipe cannot stall the event loop.
  if (destination === 'stdout') {
    void process.stdout.fd;
    return flushedOnExit(new LogStream(1));
  }
  if (destination === 'stderr') {
    void process.stderr.fd;
    return flushedOnExit(new LogStream(2));
  }
  // Opened here, synchronously, so a path that cannot be written fails at start with its name.
  let fd: number;
  try {
    createFolders(dirname(destination));
    fd = openSync(destination, 'a');
  } catch (error) {
    throw new Error(`cannot open log.destination ${destination}: ${(error as NodeJS.ErrnoException).code ?? String(error)}; check the path and its permissions`);
  }
  return flushedOnExit(new LogStream(fd));
}

/** Log streams whose queued lines are written when the process exits. */
const streamsToFlushOnExit = new Set<LogStream>();

function flushedOnExit(stream: LogStream): LogStream {
  if (streamsToFlushOnExit.size === 0) {
    // One listener for all streams, so opening many destinations (as tests do) adds no listeners.
    process.on('exit', () => {
      for (const pending of streamsToFlushOnExit) {
        pending.flushSync();
      }
    });
  }
  streamsToFlushOnExit.add(stream);
  return stream;
}

/**
 * Creates a folder and its missing parents one level at a time.
 * NOTE: `mkdirSync(..., { recursive: true })` never returns for a path below
 * /proc on Node 20, so the recursion is done here.
 */
function createFolders(folder: string): void {
  if (existsSync(folder)) {
    return;
  }
  createFolders(dirname(folder));
  mkdirSync(folder);
}

/** Builds the service's JSON-lines logger; `destination` defaults to stdout. */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'hawkbit-ext-authz' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      formatters: { level: (label) => ({ level: label }) },
    },
    destination ?? logDestination('stdout'),
  );
}
