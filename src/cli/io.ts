/** Streams and environment a subcommand uses, so tests can run commands in-process. */
export interface CliIo {
  out: NodeJS.WritableStream;
  err: NodeJS.WritableStream;
  stdin: NodeJS.ReadableStream;
  env: NodeJS.ProcessEnv;
}

/** Exit codes shared by every subcommand. */
export const EXIT_OK = 0;
/** A check was denied, or an admin command was refused. */
export const EXIT_FAILURE = 1;
/** Invalid usage, invalid input or an error before anything was decided. */
export const EXIT_ERROR = 2;

/** A problem with the command line; the message names the value and the fix. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}
