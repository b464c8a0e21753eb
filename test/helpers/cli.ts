import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The compiled CLI entry point, as `npm run cli` runs it. */
export const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI to completion in a child process. */
export function runCli(args: string[], options: { env?: NodeJS.ProcessEnv; input?: string } = {}): CliResult {
  const result = spawnSync(process.execPath, [CLI, ...args], {
    encoding: 'utf8',
    env: { ...process.env, HAWKBIT_EXT_AUTHZ_CONFIG: '', ...options.env },
    input: options.input,
    timeout: 20_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** Runs the CLI asynchronously, so a service started by the test process itself can answer. */
export function runCliAsync(args: string[], options: { env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, HAWKBIT_EXT_AUTHZ_CONFIG: '', ...options.env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

export interface ServeProcess {
  child: ChildProcessWithoutNullStreams;
  grpcAddress: string;
  httpAddress: string;
  /** Log lines written so far, parsed. */
  records: Record<string, unknown>[];
  /** Resolves with the first log record that matches, waiting for lines the service has not written yet. */
  waitForRecord(matches: (record: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  output(): string;
  /** Sends SIGTERM and resolves with the exit code. */
  terminate(): Promise<number | null>;
}

/** Starts `serve` in a child process, with `nodeArgs` before the script, and waits for its "service started" line. */
export function startServe(args: string[], env: NodeJS.ProcessEnv = {}, nodeArgs: string[] = []): Promise<ServeProcess> {
  const child = spawn(process.execPath, [...nodeArgs, CLI, ...args, 'serve'], { env: { ...process.env, HAWKBIT_EXT_AUTHZ_CONFIG: '', ...env } });
  let text = '';
  // The service writes log lines in batches, so a read can end inside a line; the rest comes with the next read.
  let partialLine = '';
  const records: Record<string, unknown>[] = [];
  const waitForRecord = async (matches: (record: Record<string, unknown>) => boolean, timeoutMs = 5_000): Promise<Record<string, unknown>> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = records.find(matches);
      if (found) {
        return found;
      }
      if (Date.now() > deadline) {
        throw new Error(`no matching log record within ${timeoutMs} ms; output:\n${text}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  };
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));

  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not start within 15 s; output:\n${text}`)), 15_000);
    child.stderr.on('data', (chunk: Buffer) => (text += chunk.toString()));
    child.stdout.on('data', (chunk: Buffer) => {
      const lines = (partialLine + chunk.toString()).split('\n');
      partialLine = lines.pop() ?? '';
      for (const line of lines) {
        text += `${line}\n`;
        if (!line.startsWith('{')) {
          continue;
        }
        const record = JSON.parse(line) as Record<string, unknown>;
        records.push(record);
        if (record.msg === 'service started') {
          clearTimeout(timer);
          resolve({
            child,
            grpcAddress: String(record.grpcAddress),
            httpAddress: String(record.httpAddress),
            records,
            waitForRecord,
            output: () => text,
            terminate: () => {
              child.kill('SIGTERM');
              return exited;
            },
          });
        }
      }
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      reject(new Error(`serve exited with ${code} before starting; output:\n${text}`));
    });
  });
}
