import { expect } from 'chai';
import { createHash, createHmac } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { createClient } from 'redis';
import { importCommand, targetCommand, tenantCommand } from '../src/cli/admin/index.js';
import type { CliIo } from '../src/cli/io.js';
import { parseConfig } from '../src/config/load.js';
import type { ServiceConfig } from '../src/config/schema.js';
import { freeLoopbackPort, RedisServer, redisConfigText } from './helpers/redis-server.js';

type AdminCommand = (args: string[], config: ServiceConfig, io: CliIo) => Promise<number>;

interface AdminResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs an admin command in-process with `stdin` as standard input. */
async function run(command: AdminCommand, args: string[], config: ServiceConfig, stdin = ''): Promise<AdminResult> {
  const out = new PassThrough();
  const err = new PassThrough();
  let stdout = '';
  let stderr = '';
  out.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  err.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const code = await command(args, config, { out, err, stdin: Readable.from([Buffer.from(stdin)]), env: {} });
  return { code, stdout, stderr };
}

function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/** Admin JSON log lines on stderr, parsed; other stderr lines are skipped. */
function logRecords(stderr: string): Array<Record<string, unknown>> {
  return stderr
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

let prefixCounter = 0;

describe('admin commands', function () {
  this.timeout(30_000);
  let server: RedisServer;
  let redis: ReturnType<typeof createClient>;
  let dir: string;
  let config: ServiceConfig;
  let prefix: string;

  before(async () => {
    // A rewritten append-only file as plain commands, not an RDB preamble that compresses values, so the disk check can read them.
    server = await RedisServer.start({ args: ['--aof-use-rdb-preamble', 'no'] });
    redis = createClient({ url: server.url });
    await redis.connect();
    dir = mkdtempSync(join(tmpdir(), 'admin-test-'));
  });

  after(async () => {
    await redis?.close();
    await server?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  beforeEach(() => {
    prefixCounter += 1;
    prefix = `admin-test-${prefixCounter}:`;
    config = parseConfig(redisConfigText(server.url, prefix), join(dir, 'config.yaml'), { env: {} });
  });

  /** Resolves once Redis has no append-only file rewrite running or scheduled, so its files are complete. */
  async function aofRewriteFinished(): Promise<void> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const info = await redis.info('persistence');
      if (/aof_rewrite_in_progress:0/.test(info) && /aof_rewrite_scheduled:0/.test(info)) {
        return;
      }
      expect(Date.now(), 'AOF rewrite still running after 10 s').to.be.below(deadline);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /** Returns every key under the test's prefix with its value, read by type. */
  async function dump(): Promise<Record<string, unknown>> {
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
        } else if (type === 'stream') {
          result[key] = await redis.xRange(key, '-', '+');
        } else {
          result[key] = `unexpected type ${type}`;
        }
      }
    }
    return result;
  }

  async function createTenant(name = 'ACME'): Promise<void> {
    const result = await run(tenantCommand, ['set', name, 'authentication.targettoken.enabled=true'], config);
    expect(result.code, result.stderr).to.equal(0);
  }

  describe('tenant set', () => {
    it('creates a tenant with hawkBit keys', async () => {
      const result = await run(tenantCommand, ['set', 'Acme', 'authentication.targettoken.enabled=TRUE', 'authentication.header.enabled=false', 'authentication.header.authority=ab:cd'], config);
      expect(result.code, result.stderr).to.equal(0);
      expect(result.stdout).to.equal('tenant Acme created: authentication.targettoken.enabled=true, authentication.header.enabled=false, authentication.header.authority=ab:cd\n');
      expect(await redis.hGetAll(`${prefix}tenant:ACME`)).to.deep.equal({
        name: 'Acme',
        'authentication.targettoken.enabled': 'true',
        'authentication.header.enabled': 'false',
        'authentication.header.authority': 'ab:cd',
      });
      expect(await redis.sMembers(`${prefix}tenants`)).to.deep.equal(['ACME']);
      expect(await redis.get(`${prefix}layout`)).to.equal('1');
      expect(await redis.get(`${prefix}digest`)).to.match(/^sha256:[0-9a-f]{64}$/);
    });

    it('updates keys, removes a key given empty, and keeps the first name', async () => {
      await createTenant('Acme');
      const result = await run(tenantCommand, ['set', 'ACME', 'authentication.targettoken.enabled=', 'authentication.gatewaytoken.enabled=true'], config);
      expect(result.code, result.stderr).to.equal(0);
      expect(result.stdout).to.equal('tenant Acme updated: authentication.targettoken.enabled (removed), authentication.gatewaytoken.enabled=true\n');
      expect(await redis.hGetAll(`${prefix}tenant:ACME`)).to.deep.equal({ name: 'Acme', 'authentication.gatewaytoken.enabled': 'true' });
    });

    it('stores the gateway key only as a digest', async () => {
      const result = await run(tenantCommand, ['set', 'ACME', 'authentication.gatewaytoken.key=plain-gateway-key'], config);
      expect(result.code, result.stderr).to.equal(0);
      expect(result.stdout).to.equal('tenant ACME created: authentication.gatewaytoken.key=(set)\n');
      expect(result.stdout + result.stderr).to.not.include('plain-gateway-key');
      const hash = await redis.hGetAll(`${prefix}tenant:ACME`);
      expect(hash['authentication.gatewaytoken.key.digest']).to.equal(sha256Hex('plain-gateway-key'));
      expect(hash).to.not.have.property('authentication.gatewaytoken.key');
    });

    it('reads the gateway key from standard input', async () => {
      const result = await run(tenantCommand, ['set', 'ACME', 'authentication.gatewaytoken.key=@-'], config, 'stdin-gateway-key\n');
      expect(result.code, result.stderr).to.equal(0);
      expect((await redis.hGetAll(`${prefix}tenant:ACME`))['authentication.gatewaytoken.key.digest']).to.equal(sha256Hex('stdin-gateway-key'));
    });

    it('reads the gateway key from a file', async () => {
      const path = join(dir, 'gateway.key');
      writeFileSync(path, 'file-gateway-key\n');
      const result = await run(tenantCommand, ['set', 'ACME', `authentication.gatewaytoken.key=@${path}`], config);
      expect(result.code, result.stderr).to.equal(0);
      expect((await redis.hGetAll(`${prefix}tenant:ACME`))['authentication.gatewaytoken.key.digest']).to.equal(sha256Hex('file-gateway-key'));
    });

    it('rejects a gateway key outside token68', async () => {
      const result = await run(tenantCommand, ['set', 'ACME', 'authentication.gatewaytoken.key=key with spaces'], config);
      expect(result.code).to.equal(2);
      expect(result.stderr).to.match(/authentication\.gatewaytoken\.key from the command line must use only the token68 characters/);
      expect(result.stderr).to.not.include('key with spaces');
    });

    it('removes the gateway key given empty', async () => {
      await run(tenantCommand, ['set', 'ACME', 'authentication.gatewaytoken.key=some-key'], config);
      const result = await run(tenantCommand, ['set', 'ACME', 'authentication.gatewaytoken.key='], config);
      expect(result.code, result.stderr).to.equal(0);
      expect(await redis.hGetAll(`${prefix}tenant:ACME`)).to.deep.equal({ name: 'ACME' });
    });

    const invalid: Array<[string, string[], RegExp]> = [
      ['unknown key', ['set', 'ACME', 'authentication.anonymous.enabled=true'], /unknown key "authentication\.anonymous\.enabled"; expected one of: authentication\.targettoken\.enabled/],
      ['non-boolean flag', ['set', 'ACME', 'authentication.targettoken.enabled=yes'], /authentication\.targettoken\.enabled=yes: expected true or false/],
      ['missing =', ['set', 'ACME', 'authentication.targettoken.enabled'], /expected KEY=VALUE, got "authentication\.targettoken\.enabled"/],
      ['repeated key', ['set', 'ACME', 'authentication.header.enabled=true', 'authentication.header.enabled=false'], /given twice/],
      ['invalid tenant', ['set', 'A/B', 'authentication.header.enabled=true'], /invalid tenant "A\/B": tenant name must not be/],
      ['missing tenant', ['set'], /missing TENANT/],
      ['missing key file', ['set', 'ACME', 'authentication.gatewaytoken.key=@/nonexistent/gw.key'], /cannot read authentication\.gatewaytoken\.key from \/nonexistent\/gw\.key \(ENOENT\)/],
      ['empty standard input', ['set', 'ACME', 'authentication.gatewaytoken.key=@-'], /standard input was empty/],
    ];
    for (const [name, args, message] of invalid) {
      it(`rejects ${name} with exit 2`, async () => {
        const result = await run(tenantCommand, args, config);
        expect(result.code).to.equal(2);
        expect(result.stderr).to.match(message);
        expect(await redis.exists(`${prefix}tenant:ACME`)).to.equal(0);
      });
    }
  });

  describe('tenant show, list and remove', () => {
    it('shows a tenant with the gateway key masked', async () => {
      await run(tenantCommand, ['set', 'Acme', 'authentication.targettoken.enabled=true', 'authentication.gatewaytoken.key=secret-gw-key'], config);
      await run(targetCommand, ['add', 'ACME', 'device-1', '--token', 'tok-1'], config);
      const result = await run(tenantCommand, ['show', 'acme'], config);
      expect(result.code, result.stderr).to.equal(0);
      expect(result.stdout).to.equal(
        [
          'tenant: Acme',
          'authentication.targettoken.enabled: true',
          'authentication.gatewaytoken.enabled: false (not set)',
          'authentication.gatewaytoken.key: (set)',
          'authentication.header.enabled: false (not set)',
          'authentication.header.authority: (not set)',
          'targets: 1',
          '',
        ].join('\n'),
      );
      expect(result.stdout).to.not.include('secret-gw-key');
      expect(result.stdout).to.not.include(sha256Hex('secret-gw-key'));
    });

    it('reports an unknown tenant with exit 1', async () => {
      const result = await run(tenantCommand, ['show', 'NOPE'], config);
      expect(result.code).to.equal(1);
      expect(result.stderr).to.match(/tenant NOPE not found; list tenants with "hawkbit-ext-authz tenant list"/);
    });

    it('lists tenants with target counts', async () => {
      await createTenant('Beta');
      await createTenant('Acme');
      await run(targetCommand, ['add', 'Acme', 'device-1'], config);
      await run(targetCommand, ['add', 'Acme', 'device-2'], config);
      const result = await run(tenantCommand, ['list'], config);
      expect(result.code, result.stderr).to.equal(0);
      expect(result.stdout).to.equal('TENANT\tTARGETS\nAcme\t2\nBeta\t0\n');
    });

    it('removes a tenant with its targets', async () => {
      await createTenant('Acme');
      await createTenant('Beta');
      await run(targetCommand, ['add', 'ACME', 'device-1'], config);
      const result = await run(tenantCommand, ['remove', 'acme'], config);
      expect(result.code, result.stderr).to.equal(0);
      expect(result.stdout).to.equal('tenant Acme removed with 1 targets\n');
      expect(await redis.exists([`${prefix}tenant:ACME`, `${prefix}targets:ACME`])).to.equal(0);
      expect(await redis.sMembers(`${prefix}tenants`)).to.deep.equal(['BETA']);
      const again = await run(tenantCommand, ['remove', 'ACME'], config);
      expect(again.code).to.equal(1);
      expect(again.stderr).to.match(/tenant ACME not found/);
    });

    it('prints usage for no subcommand and for --help', async () => {
      const none = await run(tenantCommand, [], config);
      expect(none.code).to.equal(2);
      expect(none.stderr).to.match(/usage: hawkbit-ext-authz tenant set TENANT KEY=VALUE/);
      const help = await run(tenantCommand, ['--help'], config);
      expect(help.code).to.equal(0);
      expect(help.stdout).to.match(/usage: hawkbit-ext-authz tenant set TENANT KEY=VALUE/);
      const unknown = await run(tenantCommand, ['frob'], config);
      expect(unknown.code).to.equal(2);
      expect(unknown.stderr).to.match(/unknown subcommand "frob"; expected set, show, list or remove/);
      const extra = await run(tenantCommand, ['show', 'ACME', 'extra'], config);
      expect(extra.code).to.equal(2);
      expect(extra.stderr).to.match(/unexpected argument "extra"/);
    });
  });

  describe('target add', () => {
    it('generates a 32-hex-digit token and prints it once', async () => {
      await createTenant();
      const result = await run(targetCommand, ['add', 'ACME', 'device-1'], config);
      expect(result.code, result.stderr).to.equal(0);
      const token = result.stdout.trim();
      expect(token).to.match(/^[0-9a-f]{32}$/);
      expect(result.stderr).to.include('target device-1 added to tenant ACME; its security token follows and is not shown again');
      expect(result.stderr).to.not.include(token);
      expect(await redis.hGet(`${prefix}targets:ACME`, 'device-1')).to.equal(sha256Hex(token));
    });

    it('stores a token given with --token as a digest', async () => {
      await createTenant();
      const result = await run(targetCommand, ['add', 'ACME', 'device-1', '--token', 'given-token-1'], config);
      expect(result.code, result.stderr).to.equal(0);
      expect(result.stdout).to.equal('target device-1 added to tenant ACME\n');
      expect(await redis.hGet(`${prefix}targets:ACME`, 'device-1')).to.equal(sha256Hex('given-token-1'));
    });

    it('reads the token from a file and from standard input', async () => {
      await createTenant();
      const path = join(dir, 'token.txt');
      writeFileSync(path, 'file-token-1\n');
      const fromFile = await run(targetCommand, ['add', 'ACME', 'device-1', `--token-file=${path}`], config);
      expect(fromFile.code, fromFile.stderr).to.equal(0);
      const fromStdin = await run(targetCommand, ['add', 'ACME', 'device-2', '--token-stdin'], config, 'stdin-token-2\n');
      expect(fromStdin.code, fromStdin.stderr).to.equal(0);
      expect(await redis.hGet(`${prefix}targets:ACME`, 'device-1')).to.equal(sha256Hex('file-token-1'));
      expect(await redis.hGet(`${prefix}targets:ACME`, 'device-2')).to.equal(sha256Hex('stdin-token-2'));
    });

    it('uses the HMAC key when tokenDigestKey is set', async () => {
      config = parseConfig(redisConfigText(server.url, prefix, 'tokenDigestKey: digest-key'), join(dir, 'config.yaml'), { env: {} });
      await createTenant();
      const result = await run(targetCommand, ['add', 'ACME', 'device-1', '--token', 'hmac-token'], config);
      expect(result.code, result.stderr).to.equal(0);
      const expected = createHmac('sha256', 'digest-key').update('hmac-token').digest('hex');
      expect(await redis.hGet(`${prefix}targets:ACME`, 'device-1')).to.equal(expected);
      expect(await redis.get(`${prefix}digest`)).to.match(/^hmac-sha256:/);
    });

    it('rejects an existing target and an unknown tenant with exit 1', async () => {
      await createTenant();
      await run(targetCommand, ['add', 'ACME', 'device-1', '--token', 'first'], config);
      const again = await run(targetCommand, ['add', 'ACME', 'device-1', '--token', 'second'], config);
      expect(again.code).to.equal(1);
      expect(again.stderr).to.match(/target device-1 already exists in tenant ACME; use "target rotate"/);
      expect(await redis.hGet(`${prefix}targets:ACME`, 'device-1')).to.equal(sha256Hex('first'));
      const unknown = await run(targetCommand, ['add', 'OTHER', 'device-1'], config);
      expect(unknown.code).to.equal(1);
      expect(unknown.stderr).to.match(/tenant OTHER not found; create it first with "hawkbit-ext-authz tenant set OTHER/);
      expect(unknown.stdout).to.equal('');
    });

    const invalid: Array<[string, string[], RegExp]> = [
      ['a token with a space', ['add', 'ACME', 'device-1', '--token', 'bad token'], /invalid token from --token: security token must use only the token68 characters/],
      ['a 129-character token', ['add', 'ACME', 'device-1', '--token', 'a'.repeat(129)], /security token must be 1 to 128 characters; got 129/],
      ['an empty token', ['add', 'ACME', 'device-1', '--token', ''], /security token must be 1 to 128 characters; got 0/],
      ['two token sources', ['add', 'ACME', 'device-1', '--token', 'x', '--token-stdin'], /give one of --token, --token-stdin, not several/],
      ['a controller id with a space', ['add', 'ACME', 'device 1'], /invalid controller id "device 1": controller id must not contain whitespace/],
      ['a missing controller id', ['add', 'ACME'], /missing CONTROLLER_ID/],
      ['an unknown option', ['add', 'ACME', 'device-1', '--secret', 'x'], /unknown option --secret; expected --token, --token-file, --token-stdin/],
      ['a missing token file', ['add', 'ACME', 'device-1', '--token-file', '/nonexistent/token'], /cannot read the security token from \/nonexistent\/token \(ENOENT\)/],
    ];
    for (const [name, args, message] of invalid) {
      it(`rejects ${name} with exit 2`, async () => {
        await createTenant();
        const result = await run(targetCommand, args, config);
        expect(result.code).to.equal(2);
        expect(result.stderr).to.match(message);
        expect(await redis.hLen(`${prefix}targets:ACME`)).to.equal(0);
      });
    }

    it('accepts a 128-character token68 token', async () => {
      await createTenant();
      const token = `${'Az09-._~+/'.repeat(12)}abcdef==`;
      expect(token).to.have.length(128);
      const result = await run(targetCommand, ['add', 'ACME', 'device-1', '--token', token], config);
      expect(result.code, result.stderr).to.equal(0);
    });
  });

  describe('target rotate, remove and list', () => {
    it('rotates a token and prints the new one once', async () => {
      await createTenant();
      await run(targetCommand, ['add', 'ACME', 'device-1', '--token', 'old-token'], config);
      const result = await run(targetCommand, ['rotate', 'ACME', 'device-1'], config);
      expect(result.code, result.stderr).to.equal(0);
      const token = result.stdout.trim();
      expect(token).to.match(/^[0-9a-f]{32}$/);
      expect(await redis.hGet(`${prefix}targets:ACME`, 'device-1')).to.equal(sha256Hex(token));
      expect(result.stderr).to.match(/the old one no longer works/);
    });

    it('rejects rotating an unknown target without creating it', async () => {
      await createTenant();
      const result = await run(targetCommand, ['rotate', 'ACME', 'device-1'], config);
      expect(result.code).to.equal(1);
      expect(result.stderr).to.match(/target device-1 not found in tenant ACME; add it with "hawkbit-ext-authz target add ACME device-1"/);
      expect(result.stdout).to.equal('');
      expect(await redis.hExists(`${prefix}targets:ACME`, 'device-1')).to.equal(0);
    });

    it('removes a target', async () => {
      await createTenant();
      await run(targetCommand, ['add', 'ACME', 'device-1'], config);
      const result = await run(targetCommand, ['remove', 'ACME', 'device-1'], config);
      expect(result.code, result.stderr).to.equal(0);
      expect(result.stdout).to.equal('target device-1 removed from tenant ACME\n');
      expect(await redis.hLen(`${prefix}targets:ACME`)).to.equal(0);
      const again = await run(targetCommand, ['remove', 'ACME', 'device-1'], config);
      expect(again.code).to.equal(1);
      expect(again.stderr).to.match(/target device-1 not found in tenant ACME/);
    });

    it('lists all targets page by page with cursors', async () => {
      await createTenant();
      const ids = Array.from({ length: 600 }, (_, index) => `device-${index}`);
      await redis.hSet(`${prefix}targets:ACME`, Object.fromEntries(ids.map((id) => [id, ''])));
      const seen = new Set<string>();
      let cursor: string | undefined;
      let pages = 0;
      for (;;) {
        const result = await run(targetCommand, ['list', 'ACME', '--limit', '100', ...(cursor ? ['--cursor', cursor] : [])], config);
        expect(result.code, result.stderr).to.equal(0);
        pages += 1;
        for (const id of result.stdout.split('\n').filter((line) => line !== '')) {
          seen.add(id);
        }
        const next = /next cursor: (\d+) \(continue with --cursor \1\)/.exec(result.stderr);
        if (next === null) {
          expect(result.stderr).to.include('end of list');
          break;
        }
        cursor = next[1];
        expect(pages).to.be.below(50);
      }
      expect(pages).to.be.above(1);
      expect([...seen].sort()).to.deep.equal([...ids].sort());
    });

    it('lists a small tenant in one page', async () => {
      await createTenant();
      await run(targetCommand, ['add', 'ACME', 'b'], config);
      await run(targetCommand, ['add', 'ACME', 'a'], config);
      const result = await run(targetCommand, ['list', 'ACME', '--limit', '1'], config);
      expect(result.code, result.stderr).to.equal(0);
      expect(result.stdout.split('\n').filter((line) => line !== '').sort()).to.deep.equal(['a', 'b']);
      expect(result.stderr).to.include('end of list');
    });

    const invalid: Array<[string, string[], RegExp]> = [
      ['limit 0', ['list', 'ACME', '--limit', '0'], /--limit 0: expected an integer from 1 to 100000/],
      ['a non-numeric limit', ['list', 'ACME', '--limit', 'ten'], /--limit ten: expected an integer/],
      ['a non-numeric cursor', ['list', 'ACME', '--cursor', 'abc'], /--cursor abc: expected the number printed as "next cursor"/],
      ['a repeated option', ['list', 'ACME', '--limit', '1', '--limit', '2'], /option --limit is given twice/],
      ['a missing option value', ['list', 'ACME', '--limit'], /option --limit needs a value/],
    ];
    for (const [name, args, message] of invalid) {
      it(`rejects ${name} with exit 2`, async () => {
        const result = await run(targetCommand, args, config);
        expect(result.code).to.equal(2);
        expect(result.stderr).to.match(message);
      });
    }
  });

  describe('audit', () => {
    it('records every write in the audit stream and the log, without secrets', async () => {
      const results = [
        await run(tenantCommand, ['set', 'Acme', 'authentication.targettoken.enabled=true', 'authentication.gatewaytoken.key=audit-gw-key'], config),
        await run(targetCommand, ['add', 'Acme', 'device-1', '--token', 'audit-token-1'], config),
        await run(targetCommand, ['rotate', 'Acme', 'device-1'], config),
        await run(targetCommand, ['remove', 'Acme', 'device-1'], config),
        await run(tenantCommand, ['remove', 'Acme'], config),
      ];
      const rotated = results[2].stdout.trim();
      const entries = await redis.xRange(`${prefix}audit`, '-', '+');
      expect(entries.map((entry) => [entry.message.command, entry.message.tenant, entry.message.target])).to.deep.equal([
        ['tenant set', 'Acme', ''],
        ['target add', 'Acme', 'device-1'],
        ['target rotate', 'Acme', 'device-1'],
        ['target remove', 'Acme', 'device-1'],
        ['tenant remove', 'Acme', ''],
      ]);
      for (const entry of entries) {
        expect(entry.message.user).to.equal(userInfo().username);
        expect(Date.parse(entry.message.time)).to.be.closeTo(Date.now(), 60_000);
      }
      expect(entries[0].message.detail).to.equal('created: authentication.targettoken.enabled=true, authentication.gatewaytoken.key=(set)');

      const records = results.flatMap((result) => logRecords(result.stderr)).filter((record) => record.msg === 'admin write');
      expect(records).to.have.length(5);
      expect((records[1].audit as Record<string, string>).command).to.equal('target add');

      const everything = JSON.stringify(entries) + results.map((result) => result.stderr).join('');
      for (const secret of ['audit-gw-key', 'audit-token-1', rotated]) {
        expect(everything).to.not.include(secret);
      }
    });

    it('writes no audit entry for a rejected command', async () => {
      await run(tenantCommand, ['set', 'ACME', 'authentication.targettoken.enabled=maybe'], config);
      await run(targetCommand, ['remove', 'ACME', 'device-1'], config);
      expect(await redis.exists(`${prefix}audit`)).to.equal(0);
    });
  });

  it('leaves no plain token or key in Redis or on disk', async () => {
    const gatewayKey = 'gw-plain-key-4711';
    const givenToken = 'given-plain-token-4711';
    await run(tenantCommand, ['set', 'ACME', 'authentication.targettoken.enabled=true', `authentication.gatewaytoken.key=${gatewayKey}`], config);
    await run(targetCommand, ['add', 'ACME', 'device-1', '--token', givenToken], config);
    const generated = (await run(targetCommand, ['add', 'ACME', 'device-2'], config)).stdout.trim();
    const rotated = (await run(targetCommand, ['rotate', 'ACME', 'device-2'], config)).stdout.trim();
    const importFile = join(dir, 'import-secrets.yaml');
    writeFileSync(importFile, 'tenants:\n  ACME:\n    targets:\n      device-3: { securityToken: imported-plain-token-4711 }\n');
    expect((await run(importCommand, [importFile], config)).code).to.equal(0);

    const secrets = [gatewayKey, givenToken, generated, rotated, 'imported-plain-token-4711'];
    const everything = JSON.stringify(await dump());
    expect(everything).to.include(sha256Hex(givenToken));
    for (const secret of secrets) {
      expect(everything).to.not.include(secret);
    }
    await redis.sendCommand(['BGREWRITEAOF']);
    await aofRewriteFinished();
    const persisted = server.persistedBytes().toString('latin1');
    expect(persisted).to.include(sha256Hex(givenToken));
    for (const secret of secrets) {
      expect(persisted).to.not.include(secret);
    }
  });

  it('fails with exit 1 naming the URL when Redis is unreachable', async () => {
    const port = await freeLoopbackPort();
    config = parseConfig(redisConfigText(`redis://user:hunter2@127.0.0.1:${port}`, prefix), join(dir, 'config.yaml'), { env: {} });
    const result = await run(tenantCommand, ['list'], config);
    expect(result.code).to.equal(1);
    expect(result.stderr).to.match(new RegExp(`cannot connect to Redis at redis://user:\\*\\*\\*@127\\.0\\.0\\.1:${port}`));
    expect(result.stderr).to.not.include('hunter2');
  });

  it('validates arguments before connecting', async () => {
    const port = await freeLoopbackPort();
    config = parseConfig(redisConfigText(`redis://127.0.0.1:${port}`, prefix), join(dir, 'config.yaml'), { env: {} });
    const result = await run(targetCommand, ['add', 'ACME', 'device 1'], config);
    expect(result.code).to.equal(2);
    expect(result.stderr).to.match(/invalid controller id/);
  });
});

describe('admin commands with the memory store', () => {
  const config = parseConfig('store:\n  type: memory\n', '/etc/hawkbit-ext-authz/config.yaml', { env: {} });
  const cases: Array<[string, AdminCommand, string[]]> = [
    ['tenant set', tenantCommand, ['set', 'ACME', 'authentication.targettoken.enabled=true']],
    ['tenant list', tenantCommand, ['list']],
    ['target add', targetCommand, ['add', 'ACME', 'device-1']],
    ['target list', targetCommand, ['list', 'ACME']],
    ['import', importCommand, ['/nonexistent/import.yaml']],
  ];
  for (const [name, command, args] of cases) {
    it(`rejects ${name} with exit 2`, async () => {
      const result = await run(command, args, config);
      expect(result.code).to.equal(2);
      expect(result.stderr).to.include(`hawkbit-ext-authz ${name}: needs store.type: redis in /etc/hawkbit-ext-authz/config.yaml`);
      expect(result.stdout).to.equal('');
    });
  }
});
