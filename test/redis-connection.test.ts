import { expect } from 'chai';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import pino from 'pino';
import { createClient } from 'redis';
import { targetCommand, tenantCommand } from '../src/cli/admin/index.js';
import { parseConfig } from '../src/config/load.js';
import type { ServiceConfig } from '../src/config/schema.js';
import { RedisOptionsError, createRedisConnections, redactRedisUrl } from '../src/store/redis-client.js';
import { RedisStore } from '../src/store/redis-store.js';
import { TokenDigester } from '../src/store/token-digest.js';
import { TestPki } from './helpers/pki.js';
import { freeLoopbackPort, RedisServer, redisConfigText } from './helpers/redis-server.js';

const CACHE = { maxEntries: 100, ttlMs: 60_000, staleAllowMs: 0 };

async function admin(command: typeof tenantCommand, args: string[], config: ServiceConfig): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = new PassThrough();
  const err = new PassThrough();
  let stdout = '';
  let stderr = '';
  out.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  err.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const code = await command(args, config, { out, err, stdin: Readable.from([]), env: {} });
  return { code, stdout, stderr };
}

function redisConfig(config: ServiceConfig): Extract<ServiceConfig['store'], { type: 'redis' }>['redis'] {
  if (config.store.type !== 'redis') {
    throw new Error('expected a Redis configuration');
  }
  return config.store.redis;
}

describe('Redis connection options', function () {
  this.timeout(30_000);

  describe('ACL users', () => {
    let server: RedisServer;

    before(async () => {
      server = await RedisServer.start({ args: ['--requirepass', 'default-pass'] });
      const client = await createClient({ url: server.url, password: 'default-pass' }).connect();
      // The ACL rules that docs/redis-store.md gives for each role.
      await client.sendCommand(['ACL', 'SETUSER', 'hbx-admin', 'on', '>admin-pass', 'resetkeys', '~acl:*', 'resetchannels', '&acl:*',
        '-@all', '+get', '+set', '+hget', '+hgetall', '+hmget', '+hset', '+hsetnx', '+hdel', '+hlen', '+hscan', '+hexists',
        '+sadd', '+srem', '+smembers', '+unlink', '+publish', '+xadd', '+eval']);
      await client.sendCommand(['ACL', 'SETUSER', 'hbx-service', 'on', '>service-pass', 'resetkeys', '%R~acl:*', '~acl:ratelimit:*', 'resetchannels', '&acl:*',
        '-@all', '+get', '+hget', '+hgetall', '+publish', '+subscribe', '+incrby', '+pexpire', '+zadd', '+zrangebyscore', '+zremrangebyscore', '+zremrangebyrank']);
      await client.close();
    });

    after(async () => {
      await server?.destroy();
    });

    it('runs admin commands and the store with least-privilege users', async () => {
      const adminConfig = parseConfig(redisConfigText(server.url, 'acl:', ''), '/tmp/acl.yaml', { env: {} });
      Object.assign(redisConfig(adminConfig), { username: 'hbx-admin', password: 'admin-pass' });
      expect((await admin(tenantCommand, ['set', 'ACME', 'authentication.targettoken.enabled=true'], adminConfig)).code).to.equal(0);
      const added = await admin(targetCommand, ['add', 'ACME', 'device-1', '--token', 'acl-token'], adminConfig);
      expect(added.code, added.stderr).to.equal(0);
      const rotated = await admin(targetCommand, ['rotate', 'ACME', 'device-1'], adminConfig);
      expect(rotated.code, rotated.stderr).to.equal(0);
      const listed = await admin(targetCommand, ['list', 'ACME'], adminConfig);
      expect(listed.code, listed.stderr).to.equal(0);
      const removed = await admin(tenantCommand, ['remove', 'ACME'], adminConfig);
      expect(removed.code, removed.stderr).to.equal(0);
      expect((await admin(tenantCommand, ['set', 'ACME', 'authentication.targettoken.enabled=true'], adminConfig)).code).to.equal(0);

      const serviceConfig = parseConfig(redisConfigText(`redis://hbx-service:service-pass@127.0.0.1:${server.port}`, 'acl:'), '/tmp/acl.yaml', { env: {} });
      const store = new RedisStore(redisConfig(serviceConfig), CACHE, new TokenDigester(), pino({ level: 'silent' }));
      await store.connect();
      try {
        expect(store.health()).to.equal('serving');
        expect((await store.getTenant('ACME'))?.targetTokenEnabled).to.equal(true);
        expect(await store.getTarget('ACME', 'device-1')).to.equal(undefined);
      } finally {
        await store.close();
      }
    });

    it('reports a wrong password without showing it', async () => {
      const config = parseConfig(redisConfigText(server.url, 'acl:'), '/tmp/acl.yaml', { env: {} });
      Object.assign(redisConfig(config), { username: 'hbx-admin', password: 'wrong-pass' });
      const result = await admin(tenantCommand, ['list'], config);
      expect(result.code).to.equal(1);
      expect(result.stderr).to.match(/cannot connect to Redis at redis:\/\/127\.0\.0\.1:\d+: .*WRONGPASS/);
      expect(result.stderr).to.not.include('wrong-pass');

      const store = new RedisStore(redisConfig(config), CACHE, new TokenDigester(), pino({ level: 'silent' }), { connectTimeoutMs: 1_000 });
      let error: Error | undefined;
      try {
        await store.connect();
      } catch (caught) {
        error = caught as Error;
      }
      expect(error?.message).to.match(/cannot use the Redis store at redis:\/\/127\.0\.0\.1:\d+: .*timed out after 1000 ms \(last connection error: WRONGPASS/);
      expect(error?.message).to.not.include('wrong-pass');
    });
  });

  describe('TLS', () => {
    let server: RedisServer;
    let pki: TestPki;
    let caPem: string;

    before(async function () {
      pki = TestPki.create();
      const ca = pki.rootCa('/CN=Redis Test CA');
      const serverCertificate = pki.server(ca);
      caPem = ca.pem;
      server = await RedisServer.start({
        tls: true,
        args: ['--tls-cert-file', serverCertificate.certPath, '--tls-key-file', serverCertificate.keyPath, '--tls-ca-cert-file', ca.certPath, '--tls-auth-clients', 'no'],
      });
    });

    after(async () => {
      await server?.destroy();
      pki?.cleanup();
    });

    it('connects with rediss:// and the CA from clientOptions', async () => {
      const extra = ['    clientOptions:', '      socket:', `        ca: ${JSON.stringify(caPem)}`].join('\n');
      const config = parseConfig(redisConfigText(server.url, 'tls:', extra), '/tmp/tls.yaml', { env: {} });
      expect(server.url).to.match(/^rediss:/);
      const set = await admin(tenantCommand, ['set', 'ACME', 'authentication.targettoken.enabled=true'], config);
      expect(set.code, set.stderr).to.equal(0);
      const store = new RedisStore(redisConfig(config), CACHE, new TokenDigester(), pino({ level: 'silent' }));
      await store.connect();
      try {
        expect(store.health()).to.equal('serving');
        expect((await store.getTenant('ACME'))?.targetTokenEnabled).to.equal(true);
      } finally {
        await store.close();
      }
    });

    it('rejects a server certificate from an unknown CA', async () => {
      const config = parseConfig(redisConfigText(server.url, 'tls:'), '/tmp/tls.yaml', { env: {} });
      const result = await admin(tenantCommand, ['list'], config);
      expect(result.code).to.equal(1);
      expect(result.stderr).to.match(/cannot connect to Redis at rediss:\/\/127\.0\.0\.1:\d+: .*(self-signed|unable to verify|certificate)/i);
    });
  });

  /** Adds a target, opens a store, rotates the token and checks that the store returns the new digest within one second. */
  async function checkRoundTrip(config: ServiceConfig): Promise<void> {
    const set = await admin(tenantCommand, ['set', 'ACME', 'authentication.targettoken.enabled=true'], config);
    expect(set.code, set.stderr).to.equal(0);
    const added = await admin(targetCommand, ['add', 'ACME', 'device-1', '--token', 'round-trip-token'], config);
    expect(added.code, added.stderr).to.equal(0);
    const store = new RedisStore(redisConfig(config), CACHE, new TokenDigester(), pino({ level: 'silent' }));
    await store.connect();
    try {
      const digester = new TokenDigester();
      expect(store.health()).to.equal('serving');
      expect(digester.matches('round-trip-token', (await store.getTarget('ACME', 'device-1'))?.securityTokenDigest)).to.equal(true);
      const rotated = await admin(targetCommand, ['rotate', 'ACME', 'device-1'], config);
      expect(rotated.code, rotated.stderr).to.equal(0);
      const deadline = performance.now() + 1_000;
      while (digester.matches('round-trip-token', (await store.getTarget('ACME', 'device-1'))?.securityTokenDigest)) {
        expect(performance.now(), 'old token still matches after 1 s').to.be.below(deadline);
        await sleep(10);
      }
      expect(digester.matches(rotated.stdout.trim(), (await store.getTarget('ACME', 'device-1'))?.securityTokenDigest)).to.equal(true);
    } finally {
      await store.close();
    }
  }

  describe('Sentinel', () => {
    let master: RedisServer;
    let sentinel: ChildProcess;
    let sentinelPort: number;
    let dir: string;

    before(async () => {
      master = await RedisServer.start();
      dir = mkdtempSync(join(tmpdir(), 'hawkbit-ext-authz-sentinel-'));
      sentinelPort = await freeLoopbackPort();
      const configFile = join(dir, 'sentinel.conf');
      writeFileSync(configFile, `port ${sentinelPort}\nbind 127.0.0.1\ndir ${dir}\nsentinel monitor hbx-master 127.0.0.1 ${master.port} 1\n`);
      sentinel = spawn('redis-server', [configFile, '--sentinel'], { stdio: 'ignore' });
      const child = sentinel;
      process.once('exit', () => child.kill('SIGKILL'));
      const client = createClient({ socket: { port: sentinelPort, host: '127.0.0.1', reconnectStrategy: false } });
      client.on('error', () => undefined);
      const deadline = Date.now() + 10_000;
      for (;;) {
        try {
          await client.connect();
          break;
        } catch (error) {
          if (Date.now() > deadline) {
            throw new Error('redis-server --sentinel did not accept connections within 10 s', { cause: error });
          }
          await sleep(50);
        }
      }
      await client.close();
    });

    after(async () => {
      sentinel?.kill('SIGTERM');
      await master?.destroy();
      rmSync(dir, { recursive: true, force: true });
    });

    it('passes store.redis.sentinel to createSentinel', async () => {
      const extra = ['    sentinel:', '      name: hbx-master', `      sentinelRootNodes: [{ host: 127.0.0.1, port: ${sentinelPort} }]`].join('\n');
      const config = parseConfig(redisConfigText('redis://unused.invalid', 'sentinel:', extra), '/tmp/sentinel.yaml', { env: {} });
      await checkRoundTrip(config);
    });
  });

  describe('cluster', () => {
    const nodes: RedisServer[] = [];

    before(async function () {
      this.timeout(60_000);
      for (let index = 0; index < 3; index += 1) {
        nodes.push(await RedisServer.start({ args: ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf'] }));
      }
      execFileSync('redis-cli', ['--cluster', 'create', ...nodes.map((node) => `127.0.0.1:${node.port}`), '--cluster-yes'], { stdio: 'ignore' });
      // Every node must see the cluster as ok, not only the first, or a command routed elsewhere gets CLUSTERDOWN.
      const deadline = Date.now() + 30_000;
      for (const node of nodes) {
        const client = await createClient({ url: node.url }).connect();
        while (!String(await client.sendCommand(['CLUSTER', 'INFO'])).includes('cluster_state:ok')) {
          if (Date.now() > deadline) {
            throw new Error(`test cluster node ${node.port} did not reach cluster_state:ok within 30 s`);
          }
          await sleep(50);
        }
        await client.close();
      }
    });

    after(async () => {
      await Promise.all(nodes.map((node) => node.destroy()));
    });

    it('passes store.redis.cluster to createCluster', async () => {
      const config = parseConfig(redisConfigText(nodes[0].url, 'cluster:', '    cluster: { useReplicas: false }'), '/tmp/cluster.yaml', { env: {} });
      await checkRoundTrip(config);
    });
  });

  describe('option checks', () => {
    const base = { url: 'redis://127.0.0.1:6379', keyPrefix: 'x:' };

    it('rejects sentinel and cluster together', () => {
      expect(() => createRedisConnections({ ...base, sentinel: {}, cluster: {} }, { subscriber: false })).to.throw(RedisOptionsError, /sentinel and store\.redis\.cluster are both set/);
    });

    it('rejects credentials in the URL and in username or password', () => {
      expect(() => createRedisConnections({ ...base, url: 'redis://u:p@127.0.0.1:6379', password: 'p' }, { subscriber: false })).to.throw(
        RedisOptionsError,
        /give them in one place only/,
      );
    });

    it('redacts the password in a URL', () => {
      expect(redactRedisUrl('rediss://user:secret@redis.example:6380/0')).to.equal('rediss://user:***@redis.example:6380/0');
      expect(redactRedisUrl('redis://:secret@redis.example')).to.equal('redis://:***@redis.example');
      expect(redactRedisUrl('redis://redis.example:6379')).to.equal('redis://redis.example:6379');
    });
  });
});
