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

/** Opens `stdout`, `stderr` or a file (created with its folder, appended to) for log lines. */
export function logDestination(destination: string): DestinationStream {
  if (destination === 'stdout') {
    return pino.destination({ fd: 1, sync: false });
  }
  if (destination === 'stderr') {
    return pino.destination({ fd: 2, sync: false });
  }
  return pino.destination({ dest: destination, mkdir: true, sync: false });
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
    destination ?? pino.destination({ fd: 1, sync: false }),
  );
}
