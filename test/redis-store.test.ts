import { expect } from 'chai';
import { PassThrough, Readable, Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import pino from 'pino';
import { createClient } from 'redis';
import { targetCommand, tenantCommand } from '../src/cli/admin/index.js';
import type { CliIo } from '../src/cli/io.js';
import { parseConfig } from '../src/config/load.js';
import type { CacheConfig, RedisStoreConfig, ServiceConfig } from '../src/config/schema.js';
import { LayoutMismatchError } from '../src/store/redis-layout.js';
import { RedisStore, type RedisStoreOptions } from '../src/store/redis-store.js';
import { StoreUnavailableError, type StoreHealth } from '../src/store/store.js';
import { TokenDigester } from '../src/store/token-digest.js';
import { freeLoopbackPort, RedisServer, redisConfigText } from './helpers/redis-server.js';

/** Log records written by a store, parsed. */
class LogCapture {
  readonly records: Array<Record<string, unknown>> = [];
  readonly logger = pino(
    { level: 'debug', formatters: { level: (label) => ({ level: label }) } },
    new Writable({
      write: (chunk: Buffer, _encoding, done) => {
        for (const line of chunk.toString('utf8').split('\n')) {
          if (line.trim() !== '') {
            this.records.push(JSON.parse(line) as Record<string, unknown>);
          }
        }
        done();
      },
    }),
  );

  messages(level: string): string[] {
    return this.records.filter((record) => record.level === level).map((record) => String(record.msg));
  }
}

interface AdminResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs an admin command in-process. */
async function admin(
  command: (args: string[], config: ServiceConfig, io: CliIo) => Promise<number>,
  args: string[],
  config: ServiceConfig,
): Promise<AdminResult> {
  const out = new PassThrough();
  const err = new PassThrough();
  let stdout = '';
  let stderr = '';
  out.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  err.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const code = await command(args, config, { out, err, stdin: Readable.from([]), env: {} });
  return { code, stdout, stderr };
}

const CACHE: CacheConfig = { maxEntries: 1_000, ttlMs: 60_000, staleAllowMs: 0 };
const FAST: RedisStoreOptions = { heartbeatIntervalMs: 200, heartbeatTimeoutMs: 600, connectTimeoutMs: 5_000 };

/** Polls `condition` until it is true or `timeoutMs` passes; returns the time it took, in milliseconds. */
async function eventually(condition: () => Promise<boolean> | boolean, timeoutMs: number, what: string): Promise<number> {
  const started = performance.now();
  for (;;) {
    if (await condition()) {
      return performance.now() - started;
    }
    if (performance.now() - started > timeoutMs) {
      throw new Error(`${what} did not happen within ${timeoutMs} ms`);
    }
    await sleep(10);
  }
}

async function lookupFails(lookup: () => unknown): Promise<Error> {
  try {
    await lookup();
  } catch (error) {
    return error as Error;
  }
  throw new Error('the lookup succeeded, but it was expected to fail');
}

let prefixCounter = 0;

function uniquePrefix(): string {
  prefixCounter += 1;
  return `store-test-${process.pid}-${prefixCounter}:`;
}

describe('Redis store', function () {
  this.timeout(30_000);
  let server: RedisServer;
  const stores: RedisStore[] = [];

  before(async () => {
    server = await RedisServer.start();
  });

  after(async () => {
    await server?.destroy();
  });

  afterEach(async () => {
    await Promise.all(stores.splice(0).map((store) => store.close()));
  });

  function setup(extra = ''): { config: ServiceConfig; redis: RedisStoreConfig } {
    const config = parseConfig(redisConfigText(server.url, uniquePrefix(), extra), '/tmp/redis-store-test.yaml', { env: {} });
    if (config.store.type !== 'redis') {
      throw new Error('expected a Redis configuration');
    }
    return { config, redis: config.store.redis };
  }

  async function openStore(redis: RedisStoreConfig, options: { cache?: CacheConfig; digester?: TokenDigester; log?: LogCapture } = {}): Promise<RedisStore> {
    const store = new RedisStore(redis, options.cache ?? CACHE, options.digester ?? new TokenDigester(), (options.log ?? new LogCapture()).logger, FAST);
    await store.connect();
    stores.push(store);
    return store;
  }

  it('reads tenants and targets written by admin commands', async () => {
    const { config, redis } = setup();
    const set = await admin(tenantCommand, ['set', 'Acme', 'authentication.targettoken.enabled=true', 'authentication.gatewaytoken.key=gw-key-1', 'authentication.header.authority=AE:11:F5, abc'], config);
    expect(set.code, set.stderr).to.equal(0);
    const add = await admin(targetCommand, ['add', 'Acme', 'device-1', '--token', 'token-1'], config);
    expect(add.code, add.stderr).to.equal(0);

    const digester = new TokenDigester();
    const store = await openStore(redis);
    expect(store.health()).to.equal('serving');
    const tenant = await store.getTenant('ACME');
    expect(tenant?.name).to.equal('Acme');
    expect(tenant?.targetTokenEnabled).to.equal(true);
    expect(tenant?.gatewayTokenEnabled).to.equal(false);
    expect(tenant?.headerAuthority).to.deep.equal(['ae11f5', 'abc']);
    expect(digester.matches('gw-key-1', tenant?.gatewayKeyDigest)).to.equal(true);
    const target = await store.getTarget('ACME', 'device-1');
    expect(digester.matches('token-1', target?.securityTokenDigest)).to.equal(true);
    expect(digester.matches('token-2', target?.securityTokenDigest)).to.equal(false);
    expect(await store.getTarget('ACME', 'device-2')).to.equal(undefined);
    expect(await store.getTenant('OTHER')).to.equal(undefined);
  });

  it('serves an empty store without a layout marker', async () => {
    const { redis } = setup();
    const store = await openStore(redis);
    expect(store.health()).to.equal('serving');
    expect(await store.getTenant('ACME')).to.equal(undefined);
  });

  it('rejects a newer layout at connect', async () => {
    const { redis } = setup();
    const client = await createClient({ url: server.url }).connect();
    await client.set(`${redis.keyPrefix}layout`, '2');
    await client.close();
    const store = new RedisStore(redis, CACHE, new TokenDigester(), new LogCapture().logger, FAST);
    const error = await lookupFails(() => store.connect());
    expect(error).to.be.instanceOf(LayoutMismatchError);
    expect(error.message).to.match(/newer layout/);
    expect(error.message).to.include('upgrade hawkbit-ext-authz');
  });

  it('rejects a store written with another digest algorithm or key', async () => {
    const { config, redis } = setup('tokenDigestKey: key-one');
    const set = await admin(tenantCommand, ['set', 'ACME', 'authentication.targettoken.enabled=true'], config);
    expect(set.code, set.stderr).to.equal(0);

    const plain = new RedisStore(redis, CACHE, new TokenDigester(), new LogCapture().logger, FAST);
    const plainError = await lookupFails(() => plain.connect());
    expect(plainError).to.be.instanceOf(LayoutMismatchError);
    expect(plainError.message).to.match(/holds hmac-sha256 digests, but this configuration computes sha256/);

    const otherKey = new RedisStore(redis, CACHE, new TokenDigester('key-two'), new LogCapture().logger, FAST);
    const keyError = await lookupFails(() => otherKey.connect());
    expect(keyError).to.be.instanceOf(LayoutMismatchError);
    expect(keyError.message).to.match(/different tokenDigestKey/);

    const sameKey = await openStore(redis, { digester: new TokenDigester('key-one') });
    expect((await sameKey.getTenant('ACME'))?.targetTokenEnabled).to.equal(true);
  });

  it('serves cached entries until an admin write invalidates them', async () => {
    const { config, redis } = setup();
    await admin(tenantCommand, ['set', 'ACME', 'authentication.targettoken.enabled=true'], config);
    await admin(targetCommand, ['add', 'ACME', 'device-1', '--token', 'old-token'], config);
    const store = await openStore(redis);
    const digester = new TokenDigester();
    expect(digester.matches('old-token', (await store.getTarget('ACME', 'device-1'))?.securityTokenDigest)).to.equal(true);
    expect(store.cacheStats().target).to.deep.equal({ hits: 0, misses: 1 });

    // A write that bypasses the admin commands publishes nothing, so the cached digest stays.
    const client = await createClient({ url: server.url }).connect();
    await client.hSet(`${redis.keyPrefix}targets:ACME`, 'device-1', digester.digest('bypass-token').toString('hex'));
    await client.close();
    expect(digester.matches('old-token', (await store.getTarget('ACME', 'device-1'))?.securityTokenDigest)).to.equal(true);
    expect(store.cacheStats().target).to.deep.equal({ hits: 1, misses: 1 });

    const rotate = await admin(targetCommand, ['rotate', 'ACME', 'device-1'], config);
    expect(rotate.code, rotate.stderr).to.equal(0);
    const newToken = rotate.stdout.trim();
    await eventually(async () => digester.matches(newToken, (await store.getTarget('ACME', 'device-1'))?.securityTokenDigest), 1_000, 'rotation');
  });

  it('two stores see a rotate and a remove within one second', async () => {
    const { config, redis } = setup();
    await admin(tenantCommand, ['set', 'ACME', 'authentication.targettoken.enabled=true'], config);
    await admin(targetCommand, ['add', 'ACME', 'device-1', '--token', 'old-token'], config);
    const digester = new TokenDigester();
    const first = await openStore(redis);
    const second = await openStore(redis);
    for (const store of [first, second]) {
      expect(digester.matches('old-token', (await store.getTarget('ACME', 'device-1'))?.securityTokenDigest)).to.equal(true);
    }

    const rotate = await admin(targetCommand, ['rotate', 'ACME', 'device-1'], config);
    expect(rotate.code, rotate.stderr).to.equal(0);
    const newToken = rotate.stdout.trim();
    expect(newToken).to.match(/^[0-9a-f]{32}$/);
    for (const store of [first, second]) {
      await eventually(async () => !digester.matches('old-token', (await store.getTarget('ACME', 'device-1'))?.securityTokenDigest), 1_000, 'old token stops matching');
      expect(digester.matches(newToken, (await store.getTarget('ACME', 'device-1'))?.securityTokenDigest)).to.equal(true);
    }

    const remove = await admin(targetCommand, ['remove', 'ACME', 'device-1'], config);
    expect(remove.code, remove.stderr).to.equal(0);
    for (const store of [first, second]) {
      await eventually(async () => (await store.getTarget('ACME', 'device-1')) === undefined, 1_000, 'removed target disappears');
    }
  });

  it('drops a cached "not found" when a target is added', async () => {
    const { config, redis } = setup();
    await admin(tenantCommand, ['set', 'ACME', 'authentication.targettoken.enabled=true'], config);
    const store = await openStore(redis);
    expect(await store.getTarget('ACME', 'device-9')).to.equal(undefined);
    await admin(targetCommand, ['add', 'ACME', 'device-9', '--token', 'new-token'], config);
    await eventually(async () => (await store.getTarget('ACME', 'device-9')) !== undefined, 1_000, 'added target appears');
  });

  it('drops cached tenant settings and targets on tenant writes', async () => {
    const { config, redis } = setup();
    await admin(tenantCommand, ['set', 'ACME', 'authentication.targettoken.enabled=true'], config);
    await admin(targetCommand, ['add', 'ACME', 'device-1', '--token', 'token-1'], config);
    const store = await openStore(redis);
    expect((await store.getTenant('ACME'))?.targetTokenEnabled).to.equal(true);
    expect(await store.getTarget('ACME', 'device-1')).to.not.equal(undefined);

    await admin(tenantCommand, ['set', 'ACME', 'authentication.targettoken.enabled=false'], config);
    await eventually(async () => (await store.getTenant('ACME'))?.targetTokenEnabled === false, 1_000, 'tenant update');

    await admin(tenantCommand, ['remove', 'ACME'], config);
    await eventually(async () => (await store.getTenant('ACME')) === undefined, 1_000, 'tenant removal');
    expect(await store.getTarget('ACME', 'device-1')).to.equal(undefined);
  });

  it('bounds a lookup with its timeout', async () => {
    const { redis } = setup();
    const store = new RedisStore(redis, CACHE, new TokenDigester(), new LogCapture().logger, { ...FAST, lookupTimeoutMs: 200 });
    await store.connect();
    stores.push(store);
    const client = await createClient({ url: server.url }).connect();
    await client.sendCommand(['CLIENT', 'PAUSE', '1500', 'ALL']);
    const started = performance.now();
    const error = await lookupFails(() => store.getTarget('ACME', 'device-1'));
    const elapsed = performance.now() - started;
    expect(error).to.be.instanceOf(StoreUnavailableError);
    expect(error.message).to.match(/timed out after 200 ms/);
    expect(elapsed).to.be.below(1_000);
    // The pause blocks every client, so later tests wait for its end.
    await sleep(Math.max(0, 1_600 - (performance.now() - started)));
    await client.close();
    await eventually(() => store.health() === 'serving', 5_000, 'serving after the pause');
  });

  it('fails connect within its time limit when nothing listens', async () => {
    const port = await freeLoopbackPort();
    const { redis } = setup();
    const store = new RedisStore({ ...redis, url: `redis://127.0.0.1:${port}` }, CACHE, new TokenDigester(), new LogCapture().logger, { connectTimeoutMs: 500 });
    const started = performance.now();
    const error = await lookupFails(() => store.connect());
    expect(performance.now() - started).to.be.below(3_000);
    expect(error.message).to.include(`redis://127.0.0.1:${port}`);
    expect(error.message).to.match(/check store\.redis/);
    const lookup = await lookupFails(() => store.getTenant('ACME'));
    expect(lookup).to.be.instanceOf(StoreUnavailableError);
  });

  it('rejects a second connect', async () => {
    const { redis } = setup();
    const store = await openStore(redis);
    const error = await lookupFails(() => store.connect());
    expect(error.message).to.match(/already called/);
  });

  it('throws StoreUnavailableError after close', async () => {
    const { redis } = setup();
    const store = new RedisStore(redis, CACHE, new TokenDigester(), new LogCapture().logger, FAST);
    await store.connect();
    await store.close();
    expect(store.health()).to.equal('not_serving');
    expect(await lookupFails(() => store.getTenant('ACME'))).to.be.instanceOf(StoreUnavailableError);
  });
});

describe('Redis store during a Redis outage', function () {
  this.timeout(60_000);
  let server: RedisServer;
  const stores: RedisStore[] = [];

  beforeEach(async () => {
    server = await RedisServer.start();
  });

  afterEach(async () => {
    await Promise.all(stores.splice(0).map((store) => store.close()));
    await server?.destroy();
  });

  async function seeded(): Promise<{ config: ServiceConfig; redis: RedisStoreConfig }> {
    const config = parseConfig(redisConfigText(server.url, 'outage:'), '/tmp/redis-outage-test.yaml', { env: {} });
    if (config.store.type !== 'redis') {
      throw new Error('expected a Redis configuration');
    }
    expect((await admin(tenantCommand, ['set', 'ACME', 'authentication.targettoken.enabled=true'], config)).code).to.equal(0);
    expect((await admin(targetCommand, ['add', 'ACME', 'device-1', '--token', 'token-1'], config)).code).to.equal(0);
    expect((await admin(targetCommand, ['add', 'ACME', 'device-2', '--token', 'token-2'], config)).code).to.equal(0);
    return { config, redis: config.store.redis };
  }

  async function openStore(redis: RedisStoreConfig, cache: CacheConfig, log: LogCapture): Promise<RedisStore> {
    const store = new RedisStore(redis, cache, new TokenDigester(), log.logger, FAST);
    await store.connect();
    stores.push(store);
    return store;
  }

  it('is not_serving while Redis is down and serves again after restart', async () => {
    const { redis } = await seeded();
    const log = new LogCapture();
    const store = await openStore(redis, CACHE, log);
    const changes: StoreHealth[] = [];
    store.onHealthChange((health) => changes.push(health));
    const digester = new TokenDigester();
    expect(digester.matches('token-1', (await store.getTarget('ACME', 'device-1'))?.securityTokenDigest)).to.equal(true);

    // A write that publishes nothing stands for an invalidation lost during the outage.
    const client = await createClient({ url: server.url }).connect();
    await client.hSet(`${redis.keyPrefix}targets:ACME`, 'device-1', digester.digest('token-1b').toString('hex'));
    await client.close();

    await server.stop();
    await eventually(() => store.health() === 'not_serving', 2_000, 'not_serving after the stop');
    expect(changes).to.deep.equal(['not_serving']);
    expect(log.messages('warn')).to.include('Redis store not serving');
    const cachedLookup = await lookupFails(() => store.getTarget('ACME', 'device-1'));
    expect(cachedLookup).to.be.instanceOf(StoreUnavailableError);
    const tenantLookup = await lookupFails(() => store.getTenant('ACME'));
    expect(tenantLookup).to.be.instanceOf(StoreUnavailableError);

    await server.restart();
    await eventually(() => store.health() === 'serving', 10_000, 'serving after the restart');
    expect(changes).to.deep.equal(['not_serving', 'serving']);
    expect(log.messages('info')).to.include('Redis store serving again; cache flushed');
    const target = await store.getTarget('ACME', 'device-1');
    expect(digester.matches('token-1b', target?.securityTokenDigest), 'cache flushed on recovery').to.equal(true);
    expect(digester.matches('token-2', (await store.getTarget('ACME', 'device-2'))?.securityTokenDigest), 'data survived the restart').to.equal(true);
  });

  it('sees writes made after a restart', async () => {
    const { config, redis } = await seeded();
    const store = await openStore(redis, CACHE, new LogCapture());
    expect(await store.getTarget('ACME', 'device-3')).to.equal(undefined);
    await server.stop();
    await server.restart();
    await eventually(() => store.health() === 'serving', 10_000, 'serving after the restart');
    expect((await admin(targetCommand, ['add', 'ACME', 'device-3', '--token', 'token-3'], config)).code).to.equal(0);
    await eventually(async () => (await store.getTarget('ACME', 'device-3')) !== undefined, 1_000, 'new target visible');
  });

  it('uses cached allows for staleAllowMs after the loss', async () => {
    const { redis } = await seeded();
    const store = await openStore(redis, { ...CACHE, staleAllowMs: 1_500 }, new LogCapture());
    const digester = new TokenDigester();
    expect((await store.getTenant('ACME'))?.targetTokenEnabled).to.equal(true);
    expect(await store.getTarget('ACME', 'device-1')).to.not.equal(undefined);
    expect(await store.getTarget('ACME', 'missing')).to.equal(undefined);

    await server.stop();
    const lostAt = performance.now();
    await eventually(() => store.health() === 'not_serving', 2_000, 'not_serving after the stop');
    expect((await store.getTenant('ACME'))?.targetTokenEnabled).to.equal(true);
    expect(digester.matches('token-1', (await store.getTarget('ACME', 'device-1'))?.securityTokenDigest)).to.equal(true);
    expect(await lookupFails(() => store.getTarget('ACME', 'missing')), 'a cached "not found" is not used').to.be.instanceOf(StoreUnavailableError);
    expect(await lookupFails(() => store.getTarget('ACME', 'device-2')), 'an uncached target').to.be.instanceOf(StoreUnavailableError);

    await sleep(Math.max(0, 1_700 - (performance.now() - lostAt)));
    expect(await lookupFails(() => store.getTarget('ACME', 'device-1')), 'after staleAllowMs').to.be.instanceOf(StoreUnavailableError);
    expect(await lookupFails(() => store.getTenant('ACME'))).to.be.instanceOf(StoreUnavailableError);
  });

  it('trusts no cached entry while down with staleAllowMs 0', async () => {
    const { redis } = await seeded();
    const store = await openStore(redis, CACHE, new LogCapture());
    expect(await store.getTenant('ACME')).to.not.equal(undefined);
    await server.stop();
    await eventually(() => store.health() === 'not_serving', 2_000, 'not_serving after the stop');
    expect(await lookupFails(() => store.getTenant('ACME'))).to.be.instanceOf(StoreUnavailableError);
  });

  it('is not_serving when only the subscriber connection is killed, and recovers', async () => {
    const { redis } = await seeded();
    const store = await openStore(redis, CACHE, new LogCapture());
    const changes: StoreHealth[] = [];
    store.onHealthChange((health) => changes.push(health));
    const client = await createClient({ url: server.url }).connect();
    await client.sendCommand(['CLIENT', 'KILL', 'TYPE', 'pubsub']);
    await client.close();
    await eventually(() => changes.includes('not_serving'), 2_000, 'not_serving after the kill');
    await eventually(() => store.health() === 'serving', 5_000, 'serving after the resubscribe');
  });
});
