import { expect } from 'chai';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { processTree } from '../bench/proc.js';
import { BUNDLED_CONFIG } from '../src/cli/config-path.js';
import { spawn } from 'node:child_process';
import { CLI, runCli, runCliAsync, startServe, type ServeProcess } from './helpers/cli.js';
import { freeLoopbackPort } from './helpers/redis-server.js';

/** The bundled example with free ports, so tests never collide with a running service. */
function exampleOnFreePorts(): string {
  const dir = mkdtempSync(join(tmpdir(), 'cli-test-'));
  const path = join(dir, 'config.yaml');
  const text = readFileSync(BUNDLED_CONFIG, 'utf8').replace('127.0.0.1:9191', '127.0.0.1:0').replace('127.0.0.1:9192', '127.0.0.1:0');
  writeFileSync(path, text);
  return path;
}

const EXAMPLE_TOKEN = /device-01: \{ securityToken: "([0-9a-f]+)" \}/.exec(readFileSync(BUNDLED_CONFIG, 'utf8'))?.[1] ?? '';
const EXAMPLE_GATEWAY_KEY = /gatewaytoken\.key: "([^"]+)"/.exec(readFileSync(BUNDLED_CONFIG, 'utf8'))?.[1] ?? '';

describe('command line', () => {
  it('prints help and version', () => {
    const help = runCli(['--help']);
    expect(help.status).to.equal(0);
    expect(help.stdout).to.match(/Usage: hawkbit-ext-authz/);
    expect(help.stdout).to.include('issuer-hash');
    const version = runCli(['--version']);
    expect(version.status).to.equal(0);
    expect(version.stdout.trim()).to.equal(JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version);
  });

  it('prints a command\'s own help without reading the configuration', () => {
    const result = runCli(['--config', '/nonexistent/config.yaml', 'target', '--help']);
    expect(result.status).to.equal(0);
    expect(result.stdout).to.match(/hawkbit-ext-authz target rotate TENANT CONTROLLER_ID/);
  });

  it('prints the version after any command', () => {
    for (const args of [['serve', '--version'], ['cert', 'list', '--version'], ['issuer-hash', '--version']]) {
      const result = runCli(args);
      expect(result.status, args.join(' ')).to.equal(0);
      expect(result.stdout.trim()).to.match(/^\d+\.\d+\.\d+$/);
    }
  });

  it('rejects an unknown command with exit 2', () => {
    const result = runCli(['frobnicate']);
    expect(result.status).to.equal(2);
    expect(result.stderr).to.match(/unknown command "frobnicate"/);
  });

  it('validates the bundled example', () => {
    const result = runCli(['config', 'validate', BUNDLED_CONFIG]);
    expect(result.status, result.stderr).to.equal(0);
    expect(result.stdout).to.match(/valid \(1 tenant, 1 target, store memory\)/);
  });

  it('reports every problem of an invalid file with exit 1', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cli-test-'));
    const path = join(dir, 'bad.yaml');
    writeFileSync(path, 'mode: strict\nddi: { targetToken: { enabled: maybe } }\n');
    const result = runCli(['config', 'validate', path]);
    expect(result.status).to.equal(1);
    expect(result.stderr).to.include('mode: expected one of enforce, audit');
    expect(result.stderr).to.include('ddi.targetToken.enabled: expected true or false');
  });

  it('refuses to serve on an invalid file, naming it', () => {
    const result = runCli(['--config', '/nonexistent/config.yaml', 'serve']);
    expect(result.status).to.equal(2);
    expect(result.stderr).to.include('/nonexistent/config.yaml');
  });

  it('reads the configuration path from HAWKBIT_EXT_AUTHZ_CONFIG', () => {
    const result = runCli(['config', 'validate'], { env: { HAWKBIT_EXT_AUTHZ_CONFIG: '/nonexistent/from-env.yaml' } });
    expect(result.status).to.equal(1);
    expect(result.stderr).to.include('/nonexistent/from-env.yaml');
  });

  describe('serve and check', () => {
    let serve: ServeProcess;
    let config: string;

    before(async () => {
      config = exampleOnFreePorts();
      serve = await startServe(['--config', config]);
    });

    after(async () => {
      if (serve.child.exitCode === null) {
        await serve.terminate();
      }
    });

    it('logs the configuration path at start', () => {
      const loaded = serve.records.find((record) => record.msg === 'configuration loaded');
      expect(String(loaded?.config)).to.include(config);
    });

    it('allows the example device by target token with exit 0', async () => {
      const result = await runCliAsync(['check', '--address', serve.grpcAddress, '--path', '/DEFAULT/controller/v1/device-01', '--header', `Authorization: TargetToken ${EXAMPLE_TOKEN}`]);
      expect(result.status, result.stderr).to.equal(0);
      expect(result.stdout).to.include('decision: allow');
      expect(result.stdout).to.include('set header: x-ddi-controller-id: device-01');
      expect(result.stdout).to.include('set header: x-ddi-auth-method: target-token');
    });

    it('allows any device by gateway token', async () => {
      const result = await runCliAsync(['check', '--address', serve.grpcAddress, '--path', '/DEFAULT/controller/v1/gateway-child-7', '--header', `Authorization: GatewayToken ${EXAMPLE_GATEWAY_KEY}`]);
      expect(result.status, result.stderr).to.equal(0);
      expect(result.stdout).to.include('set header: x-ddi-auth-method: gateway-token');
    });

    it('exits 1 on a deny and prints the status', async () => {
      const result = await runCliAsync(['check', '--address', serve.grpcAddress, '--path', '/DEFAULT/controller/v1/device-01', '--header', 'Authorization: TargetToken wrong']);
      expect(result.status).to.equal(1);
      expect(result.stdout).to.include('decision: deny');
      expect(result.stdout).to.include('http status: 401');
      expect(result.stdout).to.include('grpc code: 16');
    });

    it('prints the response as JSON with --json', async () => {
      const result = await runCliAsync(['check', '--json', '--address', serve.grpcAddress, '--path', '/DEFAULT/controller/v1/device-01']);
      expect(result.status).to.equal(1);
      const response = JSON.parse(result.stdout);
      expect(response.status.code).to.equal(16);
      expect(response.denied_response.status.code).to.equal(401);
    });

    it('exits 2 when no service answers', async () => {
      const result = await runCliAsync(['check', '--address', '127.0.0.1:1', '--timeout', '500', '--path', '/DEFAULT/controller/v1/device-01']);
      expect(result.status).to.equal(2);
      expect(result.stderr).to.match(/Check to 127\.0\.0\.1:1 failed/);
    });

    it('exits 2 on a malformed header option', async () => {
      const result = await runCliAsync(['check', '--address', serve.grpcAddress, '--path', '/x', '--header', 'no-colon']);
      expect(result.status).to.equal(2);
      expect(result.stderr).to.include('--header "no-colon" is not "Name: value"');
    });

    it('never logs the token it checked', () => {
      expect(serve.output()).not.to.include(EXAMPLE_TOKEN);
      expect(serve.output()).not.to.include(EXAMPLE_GATEWAY_KEY);
    });

    it('answers /healthz and /readyz', async () => {
      const healthz = await fetch(`http://${serve.httpAddress}/healthz`);
      const readyz = await fetch(`http://${serve.httpAddress}/readyz`);
      expect(healthz.status).to.equal(200);
      expect(readyz.status).to.equal(200);
    });

    it('stops on SIGTERM with exit 0', async () => {
      const code = await serve.terminate();
      expect(code).to.equal(0);
      expect(serve.records.map((record) => record.msg)).to.include('service stopped');
    });
  });
});

/** Writes the bundled configuration with free loopback ports in place of its fixed ones, after the lines in `prefix`. */
async function bundledConfigOnFreePorts(folderPrefix: string, prefix = ''): Promise<{ config: string; grpcPort: number; httpPort: number }> {
  const grpcPort = await freeLoopbackPort();
  const httpPort = await freeLoopbackPort();
  const config = join(mkdtempSync(join(tmpdir(), folderPrefix)), 'config.yaml');
  const text = readFileSync(BUNDLED_CONFIG, 'utf8').replace('127.0.0.1:9191', `127.0.0.1:${grpcPort}`).replace('127.0.0.1:9192', `127.0.0.1:${httpPort}`);
  writeFileSync(config, `${prefix}${text}`);
  return { config, grpcPort, httpPort };
}

describe('npm start', function () {
  this.timeout(60_000);

  it('stops the service on SIGTERM to npm', async () => {
    // A container runtime or process manager that runs `npm start` signals npm, which passes the signal to its child only.
    const { config, httpPort } = await bundledConfigOnFreePorts('npm-start-test-');

    const root = fileURLToPath(new URL('../..', import.meta.url));
    const child = spawn('npm', ['start', '--silent'], { cwd: root, env: { ...process.env, HAWKBIT_EXT_AUTHZ_CONFIG: config } });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const npmExited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
    let processes: number[] = [];
    try {
      const deadline = Date.now() + 20_000;
      while (!output.includes('"msg":"service started"')) {
        expect(Date.now(), output).to.be.lessThan(deadline);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      expect((await fetch(`http://127.0.0.1:${httpPort}/healthz`)).status).to.equal(200);
      // Every process below npm: the server, and without exec in the start script also the shell that started it.
      processes = processTree(child.pid as number).slice(1);
      child.kill('SIGTERM');
      await npmExited;
      const stopDeadline = Date.now() + 10_000;
      while (processes.some(isRunning) && Date.now() < stopDeadline) {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      expect(processes.filter(isRunning), 'processes still running after SIGTERM to npm').to.deep.equal([]);
      expect(output).to.include('"msg":"service stopped"');
    } finally {
      for (const pid of [child.pid as number, ...processes].filter(isRunning)) {
        process.kill(pid, 'SIGKILL');
      }
    }
  });
});

/** Returns whether a process with this id still exists. */
function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('serve with worker processes', function () {
  this.timeout(60_000);

  it('answers Checks from every worker and stops on SIGTERM', async () => {
    // Workers share the listening sockets, so the ports must be fixed; port 0 would give each its own.
    const { config, grpcPort, httpPort } = await bundledConfigOnFreePorts('workers-test-', 'workers: 2\n');

    const child = spawn(process.execPath, [CLI, '--config', config, 'serve'], { env: { ...process.env, HAWKBIT_EXT_AUTHZ_CONFIG: '' } });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    try {
      const deadline = Date.now() + 20_000;
      while ((output.match(/"msg":"service started"/g) ?? []).length < 2) {
        expect(Date.now(), output).to.be.lessThan(deadline);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      for (let i = 0; i < 4; i++) {
        const result = await runCliAsync(['check', '--address', `127.0.0.1:${grpcPort}`, '--path', '/DEFAULT/controller/v1/device-01', '--header', `Authorization: TargetToken ${EXAMPLE_TOKEN}`]);
        expect(result.status, result.stderr).to.equal(0);
      }
      expect((await fetch(`http://127.0.0.1:${httpPort}/readyz`)).status).to.equal(200);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).to.equal(0);
    expect((output.match(/"msg":"service stopped"/g) ?? []).length).to.equal(2);
  });
});
