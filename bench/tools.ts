import { spawnSync } from 'node:child_process';
import { createServer } from 'node:net';

/** Thrown when a program the benchmark runs is not installed; the message names the Debian package. */
export class MissingToolError extends Error {
  constructor(command: string, debianPackage: string) {
    super(`the benchmark needs \`${command}\`, which was not found on PATH; install the Debian package ${debianPackage} (apt-get install -y ${debianPackage})`);
    this.name = 'MissingToolError';
  }
}

/** Runs `command args` once and throws MissingToolError when it cannot be started or fails. */
export function requireCommand(command: string, args: string[], debianPackage: string): void {
  const result = spawnSync(command, args, { stdio: 'ignore' });
  if (result.error !== undefined || result.status !== 0) {
    throw new MissingToolError(command, debianPackage);
  }
}

/** Returns a TCP port on 127.0.0.1 that was free a moment ago. */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (address !== null && typeof address === 'object' ? resolve(address.port) : reject(new Error('no port assigned'))));
    });
  });
}
