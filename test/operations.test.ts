import { expect } from 'chai';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { encodePemLikeEnvoy } from '../src/envoy/envoy-encoding.js';
import { authorizationService } from '../src/envoy/proto.js';
import type { CheckResponseMessage } from '../src/envoy/messages.js';
import { parseConfig } from '../src/config/load.js';
import { createService } from '../src/service.js';
import { createLogger, logDestination } from '../src/observability/logger.js';
import { Metrics } from '../src/observability/metrics.js';
import { deny, type Decision } from '../src/auth/decision.js';
import { envoyRequest, outcome, startService, type RunningService } from './helpers/service.js';
import { startServe, runCliAsync, type ServeProcess } from './helpers/cli.js';
import { TestPki } from './helpers/pki.js';

const TOKEN = '4a7c1e9b2d3f40a6b8c0d2e4f6a8b0c2';
const NEW_TOKEN = '9999aaaabbbbccccddddeeeeffff0000';

/** Reads one sample from Prometheus text: the value of `name{labels}` where every given label matches. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name) || line.startsWith('#')) {
      continue;
    }
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (.+)$/.exec(line);
    if (!match || match[1] !== name) {
      continue;
    }
    const present = Object.fromEntries([...(match[3] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((pair) => [pair[1], pair[2]]));
    if (Object.entries(labels).every(([key, value]) => present[key] === value)) {
      return Number(match[4]);
    }
  }
  return undefined;
}

describe('metrics', () => {
  let service: RunningService;
  let pki: TestPki;

  before(async () => {
    pki = TestPki.create();
    service = await startService(`
tenants:
  DEFAULT:
    config: { authentication.targettoken.enabled: true, authentication.header.enabled: true, authentication.header.authority: "00000000" }
    targets:
      device-01: { securityToken: "${TOKEN}" }
`);
  });

  after(async () => {
    await service.stop();
    pki.cleanup();
  });

  it('counts decisions by method, result and reason after known traffic', async () => {
    const path = '/DEFAULT/controller/v1/device-01';
    await service.check(envoyRequest(path, { authorization: `TargetToken ${TOKEN}` }));
    await service.check(envoyRequest(path, { authorization: `TargetToken ${TOKEN}` }));
    await service.check(envoyRequest(path, { authorization: 'TargetToken wrong' }));
    await service.check(envoyRequest('/rest/v1/targets'));
    const ca = pki.rootCa();
    const device = pki.device(ca, '/CN=device-01');
    await service.check(envoyRequest(path, {}, { certificate: encodePemLikeEnvoy(device.pem) }));
    await service.check(envoyRequest(path, {}, { certificate: encodePemLikeEnvoy(device.pem) }));

    const response = await fetch(`http://${service.handle.httpAddress}/metrics`);
    expect(response.status).to.equal(200);
    expect(response.headers.get('content-type')).to.match(/^text\/plain/);
    const text = await response.text();

    expect(sample(text, 'hawkbit_ext_authz_decisions_total', { method: 'target-token', result: 'allow', reason: 'none' })).to.equal(2);
    expect(sample(text, 'hawkbit_ext_authz_decisions_total', { method: 'target-token', result: 'deny', reason: 'token_mismatch' })).to.equal(1);
    expect(sample(text, 'hawkbit_ext_authz_decisions_total', { method: 'none', result: 'deny', reason: 'path_not_ddi' })).to.equal(1);
    expect(sample(text, 'hawkbit_ext_authz_decisions_total', { method: 'certificate', result: 'deny', reason: 'issuer_not_trusted' })).to.equal(2);
    expect(sample(text, 'hawkbit_ext_authz_check_duration_seconds_count', { result: 'allow' })).to.equal(2);
    expect(sample(text, 'hawkbit_ext_authz_check_duration_seconds_count', { result: 'deny' })).to.equal(4);
    expect(sample(text, 'hawkbit_ext_authz_cache_requests_total', { cache: 'certificate', result: 'miss' })).to.equal(1);
    expect(sample(text, 'hawkbit_ext_authz_cache_requests_total', { cache: 'certificate', result: 'hit' })).to.equal(1);
    expect(sample(text, 'hawkbit_ext_authz_build_info')).to.equal(1);
    expect(sample(text, 'hawkbit_ext_authz_process_resident_memory_bytes')).to.be.greaterThan(0);
  });

  it('has no label a client controls', async () => {
    await service.check(envoyRequest('/ATTACKER/controller/v1/evil-controller-id', { authorization: 'TargetToken x' }));
    const text = await (await fetch(`http://${service.handle.httpAddress}/metrics`)).text();
    expect(text).not.to.include('evil-controller-id');
    expect(text).not.to.include('ATTACKER');
    expect(text).not.to.include('device-01');
  });

  it('counts alternating label sets exactly', async () => {
    const metrics = new Metrics({ version: 'test', tenantLabel: true });
    const allow = (tenant: string): Decision => ({ kind: 'allow', tenant, controllerId: 'device-01', method: 'target-token' });
    const mismatch = deny('token_mismatch', { tenant: 'ACME', controllerId: 'device-01', method: 'target-token' });
    const sequence: [Decision, boolean][] = [
      [allow('ACME'), false],
      [allow('ACME'), false],
      [allow('OTHER'), false],
      [mismatch, false],
      [allow('ACME'), false],
      [allow('ACME'), true],
      [mismatch, true],
      [mismatch, false],
    ];
    for (const [decision, audit] of sequence) {
      metrics.recordDecision(decision, 0.001, audit);
    }

    const text = (await metrics.render()).body;
    const count = (labels: Record<string, string>) => sample(text, 'hawkbit_ext_authz_decisions_total', labels);
    expect(count({ tenant: 'ACME', result: 'allow', mode: 'enforce' })).to.equal(3);
    expect(count({ tenant: 'OTHER', result: 'allow', mode: 'enforce' })).to.equal(1);
    expect(count({ tenant: 'ACME', result: 'allow', mode: 'audit' })).to.equal(1);
    expect(count({ tenant: 'ACME', reason: 'token_mismatch', mode: 'enforce' })).to.equal(2);
    expect(count({ tenant: 'ACME', reason: 'token_mismatch', mode: 'audit' })).to.equal(1);
    expect(sample(text, 'hawkbit_ext_authz_check_duration_seconds_count', { result: 'allow' })).to.equal(5);
  });

  it('adds a tenant label only behind its option', async () => {
    const labelled = await startService(`
metrics: { tenantLabel: true }
tenants:
  DEFAULT:
    config: { authentication.targettoken.enabled: true }
    targets:
      device-01: { securityToken: "${TOKEN}" }
`);
    try {
      await labelled.check(envoyRequest('/DEFAULT/controller/v1/device-01', { authorization: `TargetToken ${TOKEN}` }));
      await labelled.check(envoyRequest('/SPOOFED/controller/v1/device-01', { authorization: `TargetToken ${TOKEN}` }));
      const text = await (await fetch(`http://${labelled.handle.httpAddress}/metrics`)).text();
      expect(sample(text, 'hawkbit_ext_authz_decisions_total', { tenant: 'DEFAULT', result: 'allow' })).to.equal(1);
      expect(sample(text, 'hawkbit_ext_authz_decisions_total', { tenant: 'none', reason: 'unknown_tenant' })).to.equal(1);
      expect(text).not.to.include('SPOOFED');
    } finally {
      await labelled.stop();
    }
  });

  it('counts audit-mode decisions with mode audit', async () => {
    const audit = await startService(`
mode: audit
tenants: { DEFAULT: { config: { authentication.targettoken.enabled: true } } }
`);
    try {
      const response = await audit.check(envoyRequest('/DEFAULT/controller/v1/d', { authorization: 'TargetToken nope' }));
      expect(outcome(response).grpc).to.equal(0);
      const text = await (await fetch(`http://${audit.handle.httpAddress}/metrics`)).text();
      expect(sample(text, 'hawkbit_ext_authz_decisions_total', { result: 'deny', reason: 'unknown_target', mode: 'audit' })).to.equal(1);
    } finally {
      await audit.stop();
    }
  });
});

describe('decision log settings', () => {
  it('writes to a file at the configured levels without secrets', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'log-test-'));
    const logFile = join(dir, 'logs', 'decisions.log');
    const config = parseConfig(
      `
grpc: { address: "127.0.0.1:0" }
http: { address: "127.0.0.1:0" }
log: { level: info, destination: "${logFile}", allowLevel: debug, denyLevel: error }
tenants:
  DEFAULT:
    config: { authentication.targettoken.enabled: true }
    targets:
      device-01: { securityToken: "${TOKEN}" }
`,
      join(dir, 'config.yaml'),
    );
    const service = await createService(config, { logger: createLogger(config.log.level, logDestination(config.log.destination)) });
    const client = new (authorizationService())(service.grpcAddress, grpc.credentials.createInsecure());
    const call = (authorization: string) =>
      new Promise<CheckResponseMessage>((resolve, reject) =>
        client.Check(envoyRequest('/DEFAULT/controller/v1/device-01', { authorization }), (error: Error | null, response: CheckResponseMessage) => (error ? reject(error) : resolve(response))),
      );
    await call(`TargetToken ${TOKEN}`);
    await call('TargetToken 0000wrong0000');
    client.close();
    await service.stop({ drainDelayMs: 0, timeoutMs: 1000 });
    service.logger.flush();
    await new Promise((resolve) => setTimeout(resolve, 200));

    expect(existsSync(logFile)).to.equal(true);
    const records = readFileSync(logFile, 'utf8').trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
    const decisions = records.filter((record) => record.msg === 'allow' || record.msg === 'deny');
    // Allows at debug are below the info threshold; denies go out at error.
    expect(decisions.map((record) => [record.msg, record.level])).to.deep.equal([['deny', 'error']]);
    expect(readFileSync(logFile, 'utf8')).not.to.include(TOKEN);
    expect(readFileSync(logFile, 'utf8')).not.to.include('0000wrong0000');
  });
});

describe('TLS on the gRPC listener', () => {
  let pki: TestPki;
  let serverCa: ReturnType<TestPki['rootCa']>;
  let clientCa: ReturnType<TestPki['rootCa']>;
  let serverCert: ReturnType<TestPki['rootCa']>;
  let clientCert: ReturnType<TestPki['rootCa']>;
  let otherClient: ReturnType<TestPki['rootCa']>;

  before(() => {
    pki = TestPki.create();
    serverCa = pki.rootCa('/CN=Server CA');
    clientCa = pki.rootCa('/CN=Envoy Client CA');
    serverCert = pki.server(serverCa);
    clientCert = pki.device(clientCa, '/CN=envoy');
    otherClient = pki.device(pki.rootCa('/CN=Other CA'), '/CN=intruder');
  });

  after(() => pki.cleanup());

  const tlsConfig = (requireClient: boolean) => `
grpc:
  tls:
    certificate: { file: "${serverCert.certPath}" }
    privateKey: { file: "${serverCert.keyPath}" }
    clientCa: { file: "${clientCa.certPath}" }
    requireClientCertificate: ${requireClient}
tenants: { DEFAULT: { config: { authentication.gatewaytoken.enabled: true, authentication.gatewaytoken.key: gwkey } } }
`;

  const checkOver = (address: string, credentials: grpc.ChannelCredentials): Promise<CheckResponseMessage> => {
    const client = new (authorizationService())(address, credentials, { 'grpc.ssl_target_name_override': 'localhost', 'grpc.default_authority': 'localhost' });
    return new Promise((resolve, reject) => {
      client.Check(envoyRequest('/DEFAULT/controller/v1/d', { authorization: 'GatewayToken gwkey' }), { deadline: Date.now() + 3000 }, (error: Error | null, response: CheckResponseMessage) => {
        client.close();
        if (error) {
          reject(error);
        } else {
          resolve(response);
        }
      });
    });
  };

  it('serves Checks over TLS', async () => {
    const service = await startService(tlsConfig(false));
    try {
      const response = await checkOver(service.handle.grpcAddress, grpc.credentials.createSsl(Buffer.from(serverCa.pem)));
      expect(outcome(response).grpc).to.equal(0);
      let plaintextFailed = false;
      try {
        await checkOver(service.handle.grpcAddress, grpc.credentials.createInsecure());
      } catch {
        plaintextFailed = true;
      }
      expect(plaintextFailed).to.equal(true);
    } finally {
      await service.stop();
    }
  });

  it('requires a client certificate from the configured CA', async () => {
    const service = await startService(tlsConfig(true));
    try {
      const withCert = grpc.credentials.createSsl(Buffer.from(serverCa.pem), readFileSync(clientCert.keyPath), Buffer.from(clientCert.pem));
      expect(outcome(await checkOver(service.handle.grpcAddress, withCert)).grpc).to.equal(0);
      for (const credentials of [
        grpc.credentials.createSsl(Buffer.from(serverCa.pem)),
        grpc.credentials.createSsl(Buffer.from(serverCa.pem), readFileSync(otherClient.keyPath), Buffer.from(otherClient.pem)),
      ]) {
        let rejected = false;
        try {
          await checkOver(service.handle.grpcAddress, credentials);
        } catch (error) {
          rejected = (error as grpc.ServiceError).code === grpc.status.UNAVAILABLE;
        }
        expect(rejected).to.equal(true);
      }
    } finally {
      await service.stop();
    }
  });
});

describe('configuration reload', function () {
  this.timeout(60_000);

  function configText(token: string, extra = ''): string {
    return `
grpc: { address: "127.0.0.1:0" }
http: { address: "127.0.0.1:0" }
# The background load sends a wrong token from one address without pause, which the per-source failure limit would answer with 429.
rateLimit: { exemptSources: ["192.0.2.10"] }
${extra}
tenants:
  DEFAULT:
    config: { authentication.targettoken.enabled: true }
    targets:
      device-01: { securityToken: "${token}" }
`;
  }

  it('applies a valid file under load and keeps the old one on an invalid file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'reload-test-'));
    const path = join(dir, 'config.yaml');
    writeFileSync(path, configText(TOKEN));
    const serve = await startServe(['--config', path]);
    const client = new (authorizationService())(serve.grpcAddress, grpc.credentials.createInsecure());
    const check = (token: string) =>
      new Promise<number>((resolve, reject) =>
        client.Check(envoyRequest('/DEFAULT/controller/v1/device-01', { authorization: `TargetToken ${token}` }), (error: Error | null, response: CheckResponseMessage) =>
          error ? reject(error) : resolve(response.status?.code ?? 0),
        ),
      );

    // Background load: every call must get an answer, allow or deny, never an RPC error.
    let stopLoad = false;
    let answered = 0;
    const errors: unknown[] = [];
    const load = (async () => {
      while (!stopLoad && answered < 200_000) {
        await Promise.all([check(TOKEN), check(NEW_TOKEN)]).then(() => (answered += 2), (error) => errors.push(error));
      }
    })();

    try {
      expect(await check(TOKEN)).to.equal(0);
      expect(await check(NEW_TOKEN)).to.equal(16);

      // The file watcher picks up a rotated token.
      writeFileSync(path, configText(NEW_TOKEN));
      await waitFor(async () => (await check(NEW_TOKEN)) === 0, 10_000);
      expect(await check(TOKEN)).to.equal(16);

      // An invalid file is rejected and logged; the running configuration stays.
      writeFileSync(path, configText(NEW_TOKEN, 'mode: sometimes'));
      await waitFor(async () => serve.records.some((record) => record.msg === 'configuration reload failed; keeping the running configuration'), 10_000);
      expect(await check(NEW_TOKEN)).to.equal(0);
      const failure = serve.records.find((record) => record.msg === 'configuration reload failed; keeping the running configuration');
      expect(String(failure?.problems)).to.include('mode: expected one of enforce, audit');

      // SIGHUP reloads too.
      writeFileSync(path, configText(TOKEN, 'reload: { watch: false }'));
      serve.child.kill('SIGHUP');
      await waitFor(async () => (await check(TOKEN)) === 0, 10_000);
    } finally {
      stopLoad = true;
      await load;
      client.close();
      await serve.terminate();
    }
    expect(errors).to.deep.equal([]);
    expect(answered).to.be.greaterThan(10);
    expect(serve.output()).not.to.include(TOKEN);
    expect(serve.output()).not.to.include(NEW_TOKEN);
  });

  it('reports keys that need a restart', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'reload-test-'));
    const path = join(dir, 'config.yaml');
    writeFileSync(path, configText(TOKEN));
    const serve = await startServe(['--config', path]);
    try {
      writeFileSync(path, configText(TOKEN).replace('http: { address: "127.0.0.1:0" }', 'http: { address: "127.0.0.1:1" }'));
      await waitFor(async () => serve.records.some((record) => record.msg === 'these keys changed but need a restart to take effect'), 10_000);
      const warning = serve.records.find((record) => record.msg === 'these keys changed but need a restart to take effect');
      expect(warning?.keys).to.deep.equal(['http']);
      const stillServing = await runCliAsync(['check', '--address', serve.grpcAddress, '--path', '/DEFAULT/controller/v1/device-01', '--header', `Authorization: TargetToken ${TOKEN}`]);
      expect(stillServing.status).to.equal(0);
    } finally {
      await serve.terminate();
    }
  });
});

describe('log destination reload', () => {
  it('keeps the destination and names it', async () => {
    const service = await startService(`
log: { level: warn }
tenants:
  DEFAULT:
    config: { authentication.targettoken.enabled: true }
`);
    try {
      const current = service.handle.config();
      const next = { ...service.config, log: { ...current.log, level: 'info' as const, destination: '/tmp/hawkbit-ext-authz-never-created/service.log' } };
      const kept = await service.handle.reload(next);
      expect(kept).to.deep.equal(['log.destination']);
      expect(service.handle.config().log.destination).to.equal(current.log.destination);
      expect(service.handle.config().log.level, 'the level still reloads').to.equal('info');
      expect(existsSync('/tmp/hawkbit-ext-authz-never-created')).to.equal(false);
    } finally {
      await service.stop();
    }
  });
});

async function waitFor(condition: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await condition()) {
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`condition not met within ${timeoutMs} ms`);
}

describe('secrets in memory', function () {
  this.timeout(60_000);

  /** Configuration text with one target that a device uses, one that never authenticates, and a gateway key. */
  const configText = (presentedToken: string, unusedToken: string, gatewayKey: string) => `grpc: { address: "127.0.0.1:0" }
http: { address: "127.0.0.1:0" }
ddi: { certificate: { trustedProxies: ["198.51.100.0/24"] } }
tenants:
  DEFAULT:
    config:
      authentication.targettoken.enabled: true
      authentication.gatewaytoken.enabled: true
      authentication.gatewaytoken.key: "${gatewayKey}"
    targets:
      device-in-use: { securityToken: "${presentedToken}" }
      device-never-polled-0123: { securityToken: "${unusedToken}" }
`;
  const secret = () => randomBytes(16).toString('hex');
  /**
   * Starts `serve` on a configuration file with a heap snapshot on SIGUSR2, runs `use`, then stops
   * the service and removes the folder of the file and the snapshots.
   */
  const withSnapshots = async (text: string, use: (serve: ServeProcess, dir: string, path: string) => Promise<void>): Promise<void> => {
    const dir = mkdtempSync(join(tmpdir(), 'hawkbit-ext-authz-heap-'));
    const path = join(dir, 'config.yaml');
    writeFileSync(path, text);
    try {
      const serve = await startServe(['--config', path], { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --heapsnapshot-signal=SIGUSR2 --diagnostic-dir=${dir}` });
      try {
        await use(serve, dir, path);
      } finally {
        await serve.terminate();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };

  /** Signals a process for a heap snapshot and returns the snapshot's text once it is completely written. */
  const snapshotOf = async (dir: string, pid: number): Promise<string> => {
    const before = new Set(readdirSync(dir));
    process.kill(pid, 'SIGUSR2');
    for (const deadline = Date.now() + 30_000; Date.now() < deadline; await new Promise((resolve) => setTimeout(resolve, 100))) {
      const file = readdirSync(dir).find((name) => name.endsWith('.heapsnapshot') && !before.has(name));
      if (file === undefined) {
        continue;
      }
      // The file grows while the process writes it, so it is read once it parses.
      const text = readFileSync(join(dir, file), 'utf8');
      try {
        JSON.parse(text);
        return text;
      } catch {
        // Not complete yet.
      }
    }
    throw new Error(`no complete heap snapshot of process ${pid} in ${dir} within 30 s`);
  };

  it('keeps no configured secret in memory', async () => {
    const [presentedToken, unusedToken, gatewayKey] = [secret(), secret(), `gateway-${secret()}`];
    await withSnapshots(configText(presentedToken, unusedToken, gatewayKey), async (serve, dir, path) => {
      const check = (controllerId: string, authorization: string) =>
        runCliAsync(['check', '--address', serve.grpcAddress, '--timeout', '30000', '--path', `/DEFAULT/controller/v1/${controllerId}`, '--header', `Authorization: ${authorization}`]);
      expect((await check('device-in-use', `TargetToken ${presentedToken}`)).status, 'target token').to.equal(0);
      let snapshot = await snapshotOf(dir, serve.child.pid!);
      expect(snapshot, 'the store keeps controller ids, so the search finds strings').to.include('device-never-polled-0123');
      expect(snapshot.includes(unusedToken), 'token of a target that never authenticated').to.equal(false);
      // The gateway key is presented only after the snapshot: a presented credential passes through memory with its request.
      expect(snapshot.includes(gatewayKey), 'gateway key').to.equal(false);
      expect((await check('any-device', `GatewayToken ${gatewayKey}`)).status, 'gateway key').to.equal(0);

      const [nextUnusedToken, nextGatewayKey] = [secret(), `gateway-${secret()}`];
      writeFileSync(path, configText(presentedToken, nextUnusedToken, nextGatewayKey).replace('device-never-polled-0123', 'device-added-on-reload-0123'));
      serve.child.kill('SIGHUP');
      await serve.waitForRecord((record) => record.msg === 'configuration reloaded');
      snapshot = await snapshotOf(dir, serve.child.pid!);
      expect(snapshot, 'the reloaded store').to.include('device-added-on-reload-0123');
      expect(snapshot.includes(nextUnusedToken), 'reloaded token of a target that never authenticated').to.equal(false);
      expect(snapshot.includes(nextGatewayKey), 'reloaded gateway key').to.equal(false);
    });
  });

  it('keeps no secret in workers primary', async () => {
    const [unusedToken, gatewayKey] = [secret(), `gateway-${secret()}`];
    await withSnapshots(`workers: 2\n${configText(secret(), unusedToken, gatewayKey)}`, async (serve, dir, path) => {
      const snapshot = await snapshotOf(dir, serve.child.pid!);
      expect(snapshot, 'the primary keeps its configuration path').to.include(path);
      expect(snapshot.includes(unusedToken), 'token').to.equal(false);
      expect(snapshot.includes(gatewayKey), 'gateway key').to.equal(false);
    });
  });
});
