/**
 * A throw-away `redis-server` on loopback for the Redis scenarios, the import
 * of the generated targets through the `import` command, and Redis memory use.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { createClient } from 'redis';
import { generatedId, generatedToken, tenantLines } from './scenarios.js';
import { requireCommand } from './tools.js';

const CLI_ENTRY = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const START_TIMEOUT_MS = 15_000;
/** Time limit of one import, in milliseconds. */
const IMPORT_TIMEOUT_MS = 15 * 60_000;

export class BenchRedis {
  private constructor(
    private readonly child: ChildProcess,
    readonly url: string,
  ) {}

  /** Starts redis-server on 127.0.0.1:`port` without persistence. */
  static async start(port: number): Promise<BenchRedis> {
    requireCommand('redis-server', ['--version'], 'redis-server');
    const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
      stdio: 'ignore',
    });
    const redis = new BenchRedis(child, `redis://127.0.0.1:${port}`);
    const deadline = Date.now() + START_TIMEOUT_MS;
    for (;;) {
      try {
        await redis.usedMemoryBytes();
        return redis;
      } catch (error) {
        if (child.exitCode !== null || Date.now() > deadline) {
          child.kill('SIGKILL');
          throw new Error(`redis-server on port ${port} did not start: ${(error as Error).message}`);
        }
        await sleep(100);
      }
    }
  }

  get pid(): number {
    return this.child.pid as number;
  }

  /** `used_memory` of `INFO memory`, in bytes. */
  async usedMemoryBytes(): Promise<number> {
    const client = createClient({ url: this.url, socket: { reconnectStrategy: false } });
    client.on('error', () => {
      // Reported by the rejected command below.
    });
    await client.connect();
    try {
      const info = await client.info('memory');
      const match = /^used_memory:(\d+)/m.exec(info);
      if (!match) {
        throw new Error('INFO memory has no used_memory line');
      }
      return Number(match[1]);
    } finally {
      client.destroy();
    }
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null) {
      const exit = new Promise((resolve) => this.child.once('exit', resolve));
      this.child.kill('SIGTERM');
      await exit;
    }
  }
}

/** Writes an import file with the `DEFAULT` tenant and `count` generated targets. */
export async function writeImportFile(path: string, count: number): Promise<void> {
  const out = createWriteStream(path);
  // events.once rejects on 'error' and removes its listeners, so waiting for 'drain' many times leaks none.
  const write = async (text: string): Promise<void> => {
    if (!out.write(text)) {
      await once(out, 'drain');
    }
  };
  await write(['tenants:', ...tenantLines('', 0), ''].join('\n'));
  const batch: string[] = [];
  for (let index = 0; index < count; index++) {
    batch.push(`      ${generatedId(index)}: { securityToken: "${generatedToken(index)}" }\n`);
    if (batch.length === 10_000) {
      await write(batch.join(''));
      batch.length = 0;
    }
  }
  await write(batch.join(''));
  await new Promise<void>((resolve, reject) => out.end((error?: Error | null) => (error ? reject(error) : resolve())));
}

/** Runs `hawkbit-ext-authz --config CONFIG import FILE` and returns its wall time in seconds. */
export async function runImport(configPath: string, importPath: string): Promise<number> {
  const started = performance.now();
  const child = spawn(process.execPath, [CLI_ENTRY, '--config', configPath, 'import', importPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output = (output + chunk.toString('utf8')).slice(-10_000)));
  child.stderr?.on('data', (chunk: Buffer) => (output = (output + chunk.toString('utf8')).slice(-10_000)));
  const timer = setTimeout(() => child.kill('SIGKILL'), IMPORT_TIMEOUT_MS);
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  clearTimeout(timer);
  if (code !== 0) {
    throw new Error(`import of ${importPath} exited with ${code}:\n${output}`);
  }
  return (performance.now() - started) / 1000;
}
