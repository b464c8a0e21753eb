import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** Debian package that provides `redis-server`. */
export const REDIS_SERVER_PACKAGE = 'redis-server';

/** Time limit for redis-server to report "Ready to accept connections", in milliseconds. */
const START_TIMEOUT_MS = 15_000;

/** Returns the path of `redis-server`, or throws an Error that names the package to install. */
export function findRedisServer(): string {
  const result = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  if (result.error !== undefined || result.status !== 0) {
    throw new Error(
      `redis-server not found on PATH; install the Debian package ${REDIS_SERVER_PACKAGE} (apt-get install -y ${REDIS_SERVER_PACKAGE}) to run the Redis store tests`,
    );
  }
  return 'redis-server';
}

/** Returns a TCP port on 127.0.0.1 that was free a moment ago. */
export async function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => {
        if (address !== null && typeof address === 'object') {
          resolve(address.port);
        } else {
          reject(new Error('no port assigned'));
        }
      });
    });
  });
}

export interface RedisServerOptions {
  /**
   * Extra `redis-server` arguments, for example `['--requirepass', 'secret']`
   * or TLS settings. With `tls: true` they must configure `--tls-port`.
   */
  args?: string[];
  /** Listen with TLS on the port (the plain port is turned off); `args` must give the certificate files. */
  tls?: boolean;
}

/**
 * A `redis-server` child process on 127.0.0.1 with persistence on
 * (`appendonly yes`) in its own temporary directory. It can be stopped and
 * started again on the same port and directory, so data survives a restart.
 * The process is killed when the test process exits.
 */
export class RedisServer {
  readonly port: number;
  /** Data directory: the append-only files and `redis.log`. */
  readonly dir: string;
  readonly #options: RedisServerOptions;
  #child: ChildProcess | undefined;
  #exited: Promise<void> | undefined;

  private constructor(port: number, dir: string, options: RedisServerOptions) {
    this.port = port;
    this.dir = dir;
    this.#options = options;
  }

  /** Starts a server on a free loopback port in a new temporary directory. */
  static async start(options: RedisServerOptions = {}): Promise<RedisServer> {
    findRedisServer();
    const dir = mkdtempSync(join(tmpdir(), 'hawkbit-ext-authz-redis-'));
    const server = new RedisServer(await freeLoopbackPort(), dir, options);
    await server.restart();
    return server;
  }

  /** `redis://127.0.0.1:PORT` (`rediss://` with TLS). */
  get url(): string {
    return `${this.#options.tls ? 'rediss' : 'redis'}://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.#child !== undefined;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** Starts the server again on the same port and directory; does nothing while it runs. */
  async restart(): Promise<void> {
    if (this.#child !== undefined) {
      return;
    }
    const logFile = join(this.dir, 'redis.log');
    const logOffset = existsSync(logFile) ? statSync(logFile).size : 0;
    const portArgs = this.#options.tls ? ['--port', '0', '--tls-port', String(this.port)] : ['--port', String(this.port)];
    const child = spawn(
      findRedisServer(),
      [
        '--bind', '127.0.0.1',
        ...portArgs,
        '--dir', this.dir,
        '--appendonly', 'yes',
        '--save', '',
        '--daemonize', 'no',
        '--logfile', logFile,
        ...(this.#options.args ?? []),
      ],
      { stdio: 'ignore' },
    );
    this.#child = child;
    this.#exited = new Promise((resolve) => child.once('exit', () => resolve()));
    const killOnExit = (): void => {
      child.kill('SIGKILL');
    };
    process.once('exit', killOnExit);
    void this.#exited.then(() => {
      process.removeListener('exit', killOnExit);
      if (this.#child === child) {
        this.#child = undefined;
      }
    });

    const deadline = Date.now() + START_TIMEOUT_MS;
    while (!this.#logSince(logOffset).includes('Ready to accept connections')) {
      if (this.#child !== child) {
        throw new Error(`redis-server exited during start; log:\n${this.#logSince(logOffset)}`);
      }
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`redis-server did not start within ${START_TIMEOUT_MS} ms; log:\n${this.#logSince(logOffset)}`);
      }
      await sleep(20);
    }
  }

  /** Stops the server with SIGTERM (it writes its append-only file first) and waits for it to exit. */
  async stop(): Promise<void> {
    const child = this.#child;
    if (child === undefined) {
      return;
    }
    child.kill('SIGTERM');
    await this.#exited;
  }

  /** Stops the server and deletes its directory. */
  async destroy(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Returns every persistence file in the data directory, concatenated, for checks on what reached the disk. */
  persistedBytes(): Buffer {
    const files: Buffer[] = [];
    const walk = (path: string): void => {
      for (const entry of readdirSync(path, { withFileTypes: true })) {
        const full = join(path, entry.name);
        if (entry.isDirectory()) {
          walk(full);
        } else if (entry.name !== 'redis.log') {
          try {
            files.push(readFileSync(full));
          } catch (error) {
            // Redis deletes its temporary rewrite files when a rewrite ends; one may go between listing and reading.
            if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
              throw error;
            }
          }
        }
      }
    };
    walk(this.dir);
    return Buffer.concat(files);
  }

  #logSince(offset: number): string {
    try {
      return readFileSync(join(this.dir, 'redis.log')).subarray(offset).toString('utf8');
    } catch {
      return '';
    }
  }
}

/**
 * Configuration text for `store.type: redis` against `url`, with its own key
 * prefix so tests sharing one server do not see each other's data. `extra`
 * is appended as it is: indented by four spaces it adds `store.redis` keys
 * (`    clientOptions: ...`), unindented it adds top-level keys
 * (`tokenDigestKey: ...`).
 */
export function redisConfigText(url: string, keyPrefix: string, extra = ''): string {
  return [
    'store:',
    '  type: redis',
    '  redis:',
    `    url: ${JSON.stringify(url)}`,
    `    keyPrefix: ${JSON.stringify(keyPrefix)}`,
    extra,
  ].join('\n');
}
