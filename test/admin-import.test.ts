import { expect } from 'chai';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import pino from 'pino';
import { createClient } from 'redis';
import { importCommand, tenantCommand } from '../src/cli/admin/index.js';
import { parseConfig } from '../src/config/load.js';
import type { ServiceConfig } from '../src/config/schema.js';
import { RedisStore } from '../src/store/redis-store.js';
import { TokenDigester } from '../src/store/token-digest.js';
import { RedisServer, redisConfigText } from './helpers/redis-server.js';

interface ImportResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `import` in-process; `terminal` makes stderr claim to be a TTY. */
async function runImport(args: string[], config: ServiceConfig, options: { env?: NodeJS.ProcessEnv; terminal?: boolean } = {}): Promise<ImportResult> {
  const out = new PassThrough();
  const err = new PassThrough() as PassThrough & { isTTY?: boolean };
  if (options.terminal) {
    err.isTTY = true;
  }
  let stdout = '';
  let stderr = '';
  out.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  err.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const code = await importCommand(args, config, { out, err, stdin: Readable.from([]), env: options.env ?? {} });
  return { code, stdout, stderr };
}

function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/** Report lines: the summary lines and each rejection, without the file path line. */
function report(stdout: string): string[] {
  return stdout.split('\n').slice(1).filter((line) => line !== '');
}

let prefixCounter = 0;

describe('admin import', function () {
  this.timeout(60_000);
  let server: RedisServer;
  let redis: ReturnType<typeof createClient>;
  let dir: string;
  let config: ServiceConfig;
  let prefix: string;

  before(async () => {
    server = await RedisServer.start();
    redis = createClient({ url: server.url });
    await redis.connect();
    dir = mkdtempSync(join(tmpdir(), 'import-test-'));
  });

  after(async () => {
    await redis?.close();
    await server?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  beforeEach(() => {
    prefixCounter += 1;
    prefix = `import-test-${prefixCounter}:`;
    config = parseConfig(redisConfigText(server.url, prefix), join(dir, 'config.yaml'), { env: {} });
  });

  function writeImport(name: string, text: string): string {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  }

  /** Returns every key under the prefix except the audit stream, with its value. */
  async function dataSnapshot(): Promise<Record<string, unknown>> {
    const result: Record<string, unknown> = {};
    for await (const keys of redis.scanIterator({ MATCH: `${prefix}*` })) {
      for (const key of keys) {
        const type = await redis.type(key);
        if (type === 'string') {
          result[key] = await redis.get(key);
        } else if (type === 'hash') {
          result[key] = await redis.hGetAll(key);
        } else if (type === 'set') {
          result[key] = (await redis.sMembers(key)).sort();
        }
      }
    }
    return result;
  }

  const VALID = `tenants:
  Acme:
    config:
      authentication.targettoken.enabled: true
      authentication.gatewaytoken.enabled: "TRUE"
      authentication.gatewaytoken.key: import-gw-key
      authentication.header.authority: "ab:cd"
    targets:
      device-1: { securityToken: import-token-1 }
      device-2: { securityTokenSha256: ${sha256Hex('import-token-2').toUpperCase()} }
      device-3: {}
  Beta:
    targets:
      device-1: { securityToken: beta-token-1 }
`;

  it('imports tenants and targets as digests', async () => {
    const path = writeImport('valid.yaml', VALID);
    const result = await runImport([path], config);
    expect(result.code, result.stderr + result.stdout).to.equal(0);
    expect(result.stdout.split('\n')[0]).to.equal(`imported ${path}`);
    expect(report(result.stdout)).to.deep.equal([
      'tenants: 2 created, 0 updated, 0 unchanged, 0 rejected',
      'targets: 4 created, 0 updated, 0 unchanged, 0 rejected',
    ]);
    expect(await redis.hGetAll(`${prefix}tenant:ACME`)).to.deep.equal({
      name: 'Acme',
      'authentication.targettoken.enabled': 'true',
      'authentication.gatewaytoken.enabled': 'true',
      'authentication.gatewaytoken.key.digest': sha256Hex('import-gw-key'),
      'authentication.header.authority': 'ab:cd',
    });
    expect(await redis.hGetAll(`${prefix}targets:ACME`)).to.deep.equal({
      'device-1': sha256Hex('import-token-1'),
      'device-2': sha256Hex('import-token-2'),
      'device-3': '',
    });
    expect(await redis.hGetAll(`${prefix}tenant:BETA`)).to.deep.equal({ name: 'Beta' });
    expect((await redis.sMembers(`${prefix}tenants`)).sort()).to.deep.equal(['ACME', 'BETA']);

    const audit = await redis.xRange(`${prefix}audit`, '-', '+');
    expect(audit.map((entry) => [entry.message.command, entry.message.tenant, entry.message.detail])).to.deep.equal([
      ['import', 'Acme', 'from valid.yaml: tenant created; targets 3 created, 0 updated, 0 unchanged'],
      ['import', 'Beta', 'from valid.yaml: tenant created; targets 1 created, 0 updated, 0 unchanged'],
    ]);
  });

  it('changes nothing when run twice', async () => {
    const path = writeImport('twice.yaml', VALID);
    expect((await runImport([path], config)).code).to.equal(0);
    const before = await dataSnapshot();
    const auditBefore = await redis.xLen(`${prefix}audit`);
    const second = await runImport([path], config);
    expect(second.code, second.stderr).to.equal(0);
    expect(report(second.stdout)).to.deep.equal([
      'tenants: 0 created, 0 updated, 2 unchanged, 0 rejected',
      'targets: 0 created, 0 updated, 4 unchanged, 0 rejected',
    ]);
    expect(await dataSnapshot()).to.deep.equal(before);
    expect(await redis.xLen(`${prefix}audit`), 'no audit entry for an unchanged tenant').to.equal(auditBefore);
  });

  it('counts updates and replaces a tenant config as a whole', async () => {
    expect((await runImport([writeImport('first.yaml', VALID)], config)).code).to.equal(0);
    const changed = `tenants:
  ACME:
    config:
      authentication.targettoken.enabled: false
    targets:
      device-1: { securityToken: import-token-1-new }
      device-2: { securityTokenSha256: ${sha256Hex('import-token-2')} }
      device-4: { securityToken: import-token-4 }
`;
    const result = await runImport([writeImport('changed.yaml', changed)], config);
    expect(result.code, result.stderr).to.equal(0);
    expect(report(result.stdout)).to.deep.equal([
      'tenants: 0 created, 1 updated, 0 unchanged, 0 rejected',
      'targets: 1 created, 1 updated, 1 unchanged, 0 rejected',
    ]);
    expect(await redis.hGetAll(`${prefix}tenant:ACME`)).to.deep.equal({ name: 'Acme', 'authentication.targettoken.enabled': 'false' });
    expect(await redis.hGetAll(`${prefix}targets:ACME`)).to.deep.equal({
      'device-1': sha256Hex('import-token-1-new'),
      'device-2': sha256Hex('import-token-2'),
      'device-3': '',
      'device-4': sha256Hex('import-token-4'),
    });
  });

  it('imports the valid entries, lists the rejected ones and exits 1', async () => {
    const text = `tenants:
  ACME:
    config:
      authentication.targettoken.enabled: true
    targets:
      good-1: { securityToken: good-token-1 }
      "bad id": { securityToken: bad-id-token }
      bad-token: { securityToken: "has space" }
      bad-digest: { securityTokenSha256: "abc" }
      both: { securityToken: both-token, securityTokenSha256: ${sha256Hex('x')} }
      unknown-key: { token: x }
      good-2: { securityToken: good-token-2 }
  acme:
    targets:
      dup-1: { securityToken: dup-token }
  "bad/tenant":
    targets:
      t-1: { securityToken: t-token }
  Gamma:
    config:
      authentication.targettoken.enabled: maybe
    targets:
      g-1: { securityToken: g-token-1 }
      g-2: { securityToken: g-token-2 }
  Delta:
    targets:
      d-1: { securityToken: d-token-1 }
`;
    const result = await runImport([writeImport('partial.yaml', text)], config);
    expect(result.code).to.equal(1);
    expect(report(result.stdout)).to.deep.equal([
      'tenants: 2 created, 0 updated, 0 unchanged, 3 rejected',
      'targets: 3 created, 0 updated, 0 unchanged, 9 rejected',
      'rejected:',
      '  tenants.ACME.targets.bad id: controller id must not contain whitespace or control characters',
      '  tenants.ACME.targets.bad-token.securityToken: security token must use only the token68 characters A-Z a-z 0-9 - . _ ~ + / (and trailing =), because devices send it in an Authorization header',
      '  tenants.ACME.targets.bad-digest.securityTokenSha256: expected 64 hex digits, the SHA-256 of the token (for example from `printf %s TOKEN | sha256sum`)',
      '  tenants.ACME.targets.both: set securityToken or securityTokenSha256, not both',
      '  tenants.ACME.targets.unknown-key.token: unknown key; expected one of: securityToken, securityTokenSha256',
      '  tenants.acme: same tenant as "ACME", because tenant names are case-insensitive; merge the two entries (tenant and its 1 target not imported)',
      '  tenants.bad/tenant: tenant name must not be "." or ".." or contain whitespace, control characters, "/", "\\", "%", ";", "?" or "#", because no DDI path can address it (tenant and its 1 target not imported)',
      '  tenants.Gamma.config.authentication.targettoken.enabled: expected true or false, got string "maybe" (tenant and its 2 targets not imported)',
    ]);
    expect(Object.keys(await redis.hGetAll(`${prefix}targets:ACME`)).sort()).to.deep.equal(['good-1', 'good-2']);
    expect(await redis.hGetAll(`${prefix}targets:DELTA`)).to.deep.equal({ 'd-1': sha256Hex('d-token-1') });
    expect(await redis.exists([`${prefix}tenant:GAMMA`, `${prefix}targets:GAMMA`])).to.equal(0);
    expect(result.stdout + result.stderr).to.not.match(/bad-id-token|both-token|good-token/);
  });

  it('reads secrets from files and environment variables', async () => {
    writeFileSync(join(dir, 'gw.key'), 'file-gw-key\n');
    const text = `tenants:
  ACME:
    config:
      authentication.gatewaytoken.key: { file: gw.key }
    targets:
      device-1: { securityToken: { env: DEVICE_1_TOKEN } }
      device-2: { securityToken: { env: UNSET_TOKEN } }
`;
    const result = await runImport([writeImport('secrets.yaml', text)], config, { env: { DEVICE_1_TOKEN: 'env-token-1' } });
    expect(result.code).to.equal(1);
    expect(report(result.stdout)).to.include('  tenants.ACME.targets.device-2.securityToken: environment variable UNSET_TOKEN is not set; set it or use { file: PATH }');
    expect((await redis.hGetAll(`${prefix}tenant:ACME`))['authentication.gatewaytoken.key.digest']).to.equal(sha256Hex('file-gw-key'));
    expect(await redis.hGetAll(`${prefix}targets:ACME`)).to.deep.equal({ 'device-1': sha256Hex('env-token-1') });
  });

  it('rejects SHA-256 digests when tokenDigestKey is set', async () => {
    config = parseConfig(redisConfigText(server.url, prefix, 'tokenDigestKey: hmac-key'), join(dir, 'config.yaml'), { env: {} });
    const text = `tenants:
  ACME:
    targets:
      device-1: { securityTokenSha256: ${sha256Hex('t')} }
      device-2: { securityToken: hmac-token }
`;
    const result = await runImport([writeImport('hmac.yaml', text)], config);
    expect(result.code).to.equal(1);
    expect(report(result.stdout)).to.include(
      '  tenants.ACME.targets.device-1.securityTokenSha256: cannot be used with tokenDigestKey, because stored digests are then HMAC-SHA-256; give securityToken instead',
    );
    expect(await redis.hExists(`${prefix}targets:ACME`, 'device-2')).to.equal(1);
  });

  it('notes top-level keys other than tenants', async () => {
    const path = writeImport('config-like.yaml', `grpc: { address: "127.0.0.1:9191" }\n${VALID}`);
    const result = await runImport([path], config);
    expect(result.code, result.stderr).to.equal(0);
    expect(result.stderr).to.include(`note: ${path}: ignoring grpc; import reads only tenants:`);
  });

  const invalidFiles: Array<[string, string | undefined, RegExp]> = [
    ['a missing file', undefined, /cannot read .*missing\.yaml \(ENOENT\); check the path/],
    ['a file that is not YAML', 'tenants: [unclosed', /is not valid YAML/],
    ['a file without tenants', 'store: { type: redis }\n', /has no tenants: mapping/],
    ['a YAML list', '- a\n- b\n', /must be a YAML mapping with a tenants: section/],
    ['a controller id YAML reads as a number', 'tenants:\n  ACME:\n    targets:\n      0x1F: { securityToken: "0123456789abcdef" }\n', /is ambiguous YAML: tenants\.ACME\.targets: 0x1F reads as 31/],
  ];
  for (const [name, text, message] of invalidFiles) {
    it(`rejects ${name} with exit 2`, async () => {
      const path = text === undefined ? join(dir, 'missing.yaml') : writeImport('invalid.yaml', text);
      const result = await runImport([path], config);
      expect(result.code).to.equal(2);
      expect(result.stderr).to.match(message);
      expect(await redis.exists(`${prefix}layout`)).to.equal(0);
    });
  }

  it('reports a YAML error without the file text', async () => {
    const path = writeImport('broken.yaml', 'tenants:\n  ACME:\n    targets:\n      device-1: { securityToken: leaked-token-0123456789 } }\n');
    const result = await runImport([path], config);
    expect(result.code).to.equal(2);
    expect(result.stderr).to.match(/is not valid YAML at line \d+, column \d+/);
    expect(result.stderr).to.not.include('leaked-token-0123456789');
  });

  it('rejects missing and extra arguments with exit 2', async () => {
    const none = await runImport([], config);
    expect(none.code).to.equal(2);
    expect(none.stderr).to.match(/missing FILE/);
    const extra = await runImport(['a.yaml', 'b.yaml'], config);
    expect(extra.code).to.equal(2);
    expect(extra.stderr).to.match(/unexpected argument "b\.yaml"/);
  });

  it('imports 200,000 targets with progress lines and makes them visible to a store', async () => {
    const count = 200_000;
    const lines = ['tenants:', '  BULK:', '    config:', '      authentication.targettoken.enabled: true', '    targets:'];
    for (let index = 0; index < count; index += 1) {
      lines.push(`      dev-${index}: { securityToken: tok-${index} }`);
    }
    const path = writeImport('bulk.yaml', `${lines.join('\n')}\n`);
    const started = performance.now();
    const result = await runImport([path], config);
    const elapsedMs = performance.now() - started;
    expect(result.code, result.stderr).to.equal(0);
    expect(report(result.stdout)).to.deep.equal([
      'tenants: 1 created, 0 updated, 0 unchanged, 0 rejected',
      `targets: ${count} created, 0 updated, 0 unchanged, 0 rejected`,
    ]);
    const progress = result.stderr.split('\n').filter((line) => line.startsWith('imported '));
    expect(progress).to.have.length(2);
    expect(progress[0]).to.match(/^imported 10\d{4} of 200000 targets$/);
    expect(progress[1]).to.equal('imported 200000 of 200000 targets');
    expect(elapsedMs, 'import time in ms').to.be.below(30_000);
    expect(await redis.hLen(`${prefix}targets:BULK`)).to.equal(count);

    if (config.store.type !== 'redis') {
      throw new Error('expected a Redis configuration');
    }
    const store = new RedisStore(
      config.store.redis,
      { maxEntries: 100, ttlMs: 1_000, staleAllowMs: 0 },
      new TokenDigester(),
      pino({ level: 'silent' }),
    );
    await store.connect();
    try {
      const digester = new TokenDigester();
      expect(digester.matches('tok-199999', (await store.getTarget('BULK', 'dev-199999'))?.securityTokenDigest)).to.equal(true);
    } finally {
      await store.close();
    }

    const again = await runImport([path], config, { terminal: true });
    expect(again.code).to.equal(0);
    expect(report(again.stdout)[1]).to.equal(`targets: 0 created, 0 updated, ${count} unchanged, 0 rejected`);
    expect(again.stderr).to.include(`\rimporting targets: ${count} of ${count} (100%)\n`);
  });

  it('adds targets to a tenant created by tenant set', async () => {
    const out = new PassThrough();
    const err = new PassThrough();
    expect(await tenantCommand(['set', 'Acme', 'authentication.targettoken.enabled=true'], config, { out, err, stdin: Readable.from([]), env: {} })).to.equal(0);
    const result = await runImport([writeImport('targets-only.yaml', 'tenants:\n  ACME:\n    targets:\n      device-1: { securityToken: t1 }\n')], config);
    expect(result.code, result.stderr).to.equal(0);
    expect(report(result.stdout)[0]).to.equal('tenants: 0 created, 0 updated, 1 unchanged, 0 rejected');
    expect(await redis.hGetAll(`${prefix}tenant:ACME`)).to.deep.equal({ name: 'Acme', 'authentication.targettoken.enabled': 'true' });
  });
});
