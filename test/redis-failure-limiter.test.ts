import { expect } from 'chai';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pino from 'pino';
import { createClient } from 'redis';
import type { RedisStoreConfig } from '../src/config/schema.js';
import { FailureCountKeys, RedisFailureCounts } from '../src/store/redis-failure-counters.js';
import { runCliAsync } from './helpers/cli.js';
import { RedisServer, redisConfigText } from './helpers/redis-server.js';
import { envoyRequest, outcome, startService, type RunningService } from './helpers/service.js';

const TOKEN = '4a7c1e9b2d3f40a6b8c0d2e4f6a8b0c2';
const SYNC_INTERVAL_MS = 100;
const MINUTE_MS = 60_000;

async function waitFor(condition: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const started = Date.now();
  while (Date.now() - started < timeoutMs) {
    if (await condition()) {
      return;
    }
    await sleep(25);
  }
  throw new Error(`${what} did not happen within ${timeoutMs} ms`);
}

describe('Redis failure counts', function () {
  this.timeout(60_000);
  let redis: RedisServer;
  let client: ReturnType<typeof createClient>;
  const opened: RedisFailureCounts[] = [];
  const silent = pino({ level: 'silent' });

  const storeConfig = (keyPrefix: string): RedisStoreConfig => ({ url: redis.url, keyPrefix });
  const open = async (keyPrefix: string): Promise<RedisFailureCounts> => {
    const counts = new RedisFailureCounts(storeConfig(keyPrefix), silent);
    opened.push(counts);
    expect(await counts.connect()).to.equal(true);
    return counts;
  };

  before(async () => {
    redis = await RedisServer.start();
    client = createClient({ url: redis.url });
    // Without a listener, the error event of the outage test would end the test process.
    client.on('error', () => undefined);
    await client.connect();
  });

  after(async () => {
    await Promise.all(opened.map((counts) => counts.close()));
    await client?.destroy();
    await redis?.destroy();
  });

  it('adds failures of two instances in one window key', async () => {
    const first = await open('sum:');
    const second = await open('sum:');
    const keys = new FailureCountKeys('sum:');
    await client.set(keys.count('source:192.0.2.1', MINUTE_MS, 99), '4');

    const [a] = await first.addFailures([{ counter: 'source:192.0.2.1', windowMs: MINUTE_MS, window: 100, count: 2 }]);
    expect(a).to.deep.equal({ counter: 'source:192.0.2.1', windowMs: MINUTE_MS, window: 100, total: 2, previousTotal: 4 });
    const [b] = await second.addFailures([{ counter: 'source:192.0.2.1', windowMs: MINUTE_MS, window: 100, count: 3 }]);
    expect(b.total).to.equal(5);

    const ttl = await client.pTTL(keys.count('source:192.0.2.1', MINUTE_MS, 100));
    expect(ttl).to.be.within(1, 2 * MINUTE_MS);
  });

  it('keeps only limits that have not ended', async () => {
    const counts = await open('limits:');
    const now = Date.now();
    await counts.publishLimits(
      [
        { counter: 'target:7:DEFAULT:device-01', until: now + 30_000 },
        { counter: 'source:192.0.2.1', until: now - 1 },
      ],
      2 * MINUTE_MS,
    );
    expect(await counts.readLimits(now, 100)).to.deep.equal([{ counter: 'target:7:DEFAULT:device-01', until: now + 30_000 }]);
    expect(await client.zCard('limits:ratelimit:limited')).to.equal(1);
    expect(await client.pTTL('limits:ratelimit:limited')).to.be.within(1, 2 * MINUTE_MS);
  });

  it('keeps the newest known sources per counter', async () => {
    const counts = await open('known:');
    const now = Date.now();
    const entries = Array.from({ length: 6 }, (_, i) => ({ counter: 'gateway:DEFAULT', source: `192.0.2.${i}`, at: now - 6 + i }));
    await counts.addKnownSources(entries, MINUTE_MS, 4);
    await counts.addKnownSources([{ counter: 'gateway:DEFAULT', source: '198.51.100.1', at: now - 2 * MINUTE_MS }], MINUTE_MS, 4);

    const read = await counts.readKnownSources(['gateway:DEFAULT', 'gateway:OTHER'], now - MINUTE_MS, 10);
    expect(read.map((entry) => entry.source)).to.deep.equal(['192.0.2.2', '192.0.2.3', '192.0.2.4', '192.0.2.5']);
    expect(await client.zCard('known:ratelimit:known:gateway:DEFAULT')).to.equal(4);
    expect(await client.pTTL('known:ratelimit:known:gateway:DEFAULT')).to.be.within(1, MINUTE_MS);
  });

  it('fails at once while Redis is down', async () => {
    const counts = await open('outage:');
    await redis.stop();
    try {
      const started = Date.now();
      let failure: unknown;
      await counts.readLimits(Date.now(), 10).catch((error: unknown) => (failure = error));
      expect(failure).to.be.instanceOf(Error);
      expect(Date.now() - started).to.be.lessThan(500);
    } finally {
      await redis.restart();
    }
    await waitFor(async () => counts.readLimits(Date.now(), 10).then(() => true, () => false), 10_000, 'reconnecting');
  });

  it('connects after a start without Redis', async () => {
    await redis.stop();
    const counts = new RedisFailureCounts(storeConfig('late:'), silent);
    opened.push(counts);
    try {
      expect(await counts.connect(200)).to.equal(false);
      let failure: unknown;
      await counts.addFailures([{ counter: 'source:192.0.2.1', windowMs: MINUTE_MS, window: 1, count: 1 }]).catch((error: unknown) => (failure = error));
      expect(String(failure)).to.match(/not ready/);
    } finally {
      await redis.restart();
    }
    await waitFor(async () => counts.readLimits(Date.now(), 10).then(() => true, () => false), 10_000, 'connecting');
  });
});

describe('Redis failure counts with the documented ACL user', function () {
  this.timeout(30_000);
  let server: RedisServer;

  before(async () => {
    server = await RedisServer.start({ args: ['--requirepass', 'default-pass'] });
    const client = await createClient({ url: server.url, password: 'default-pass' }).connect();
    // The service user of docs/redis-store.md, for the prefix acl:.
    await client.sendCommand(['ACL', 'SETUSER', 'hbx-service', 'on', '>service-pass', 'resetkeys', '%R~acl:*', '~acl:ratelimit:*', 'resetchannels', '&acl:*',
      '-@all', '+get', '+hget', '+hgetall', '+publish', '+subscribe', '+incrby', '+pexpire', '+zadd', '+zrangebyscore', '+zremrangebyscore', '+zremrangebyrank']);
    await client.close();
  });

  after(async () => {
    await server?.destroy();
  });

  it('exchanges counts but cannot write tenant keys', async () => {
    const config: RedisStoreConfig = { url: server.url, keyPrefix: 'acl:', username: 'hbx-service', password: 'service-pass' };
    const counts = new RedisFailureCounts(config, pino({ level: 'silent' }));
    try {
      expect(await counts.connect()).to.equal(true);
      const now = Date.now();
      const [totals] = await counts.addFailures([{ counter: 'source:192.0.2.1', windowMs: MINUTE_MS, window: 7, count: 1 }]);
      expect(totals.total).to.equal(1);
      await counts.publishLimits([{ counter: 'source:192.0.2.1', until: now + 1000 }], MINUTE_MS);
      expect(await counts.readLimits(now, 10)).to.have.length(1);
      await counts.addKnownSources([{ counter: 'gateway:ACME', source: '192.0.2.1', at: now }], MINUTE_MS, 64);
      expect(await counts.readKnownSources(['gateway:ACME'], now - 1, 64)).to.have.length(1);
    } finally {
      await counts.close();
    }

    const user = await createClient({ url: server.url, username: 'hbx-service', password: 'service-pass' }).connect();
    try {
      let denied: unknown;
      await user.hSet('acl:tenant:ACME', 'authentication.targettoken.enabled', 'true').catch((error: unknown) => (denied = error));
      expect(String(denied)).to.match(/NOPERM/);
    } finally {
      await user.close();
    }
  });
});

describe('failure limits shared through Redis', function () {
  this.timeout(120_000);
  let redis: RedisServer;
  let replicaA: RunningService;
  let replicaB: RunningService;
  let configText: string;

  const check = (replica: RunningService, controllerId: string, token: string, source: string) =>
    replica.check(envoyRequest(`/FLEET/controller/v1/${controllerId}`, { authorization: `TargetToken ${token}` }, { source }));

  before(async () => {
    redis = await RedisServer.start();
    configText = `${redisConfigText(redis.url, 'limiter-test:')}
cache: { staleAllowMs: 600000 }
rateLimit:
  syncIntervalMs: ${SYNC_INTERVAL_MS}
  perSource: { maxFailures: 5, windowMs: 86400000 }
  perTarget: { maxFailures: 5, windowMs: 86400000 }
`;
    const dir = mkdtempSync(join(tmpdir(), 'redis-limiter-'));
    const configPath = join(dir, 'config.yaml');
    writeFileSync(configPath, configText);
    const admin = (args: string[]) => runCliAsync(['--config', configPath, ...args]);
    expect((await admin(['tenant', 'set', 'FLEET', 'authentication.targettoken.enabled=true'])).status).to.equal(0);
    for (const id of ['device-01', 'device-02', 'device-03', 'device-04']) {
      const added = await admin(['target', 'add', 'FLEET', id, '--token', TOKEN]);
      expect(added.status, added.stderr).to.equal(0);
    }
    replicaA = await startService(configText);
    replicaB = await startService(configText);
  });

  after(async () => {
    await replicaA?.stop();
    await replicaB?.stop();
    await redis?.destroy();
  });

  it('shares a source limit between replicas', async () => {
    const guesser = '192.0.2.10';
    expect(outcome(await check(replicaB, 'device-02', TOKEN, guesser)).grpc).to.equal(0);
    for (let i = 0; i < 5; i++) {
      expect(outcome(await check(replicaA, `unknown-${i}`, 'wrong-guess', guesser)).http).to.equal(401);
    }
    expect(outcome(await check(replicaA, 'device-02', TOKEN, guesser)).http).to.equal(429);

    await sleep(3 * SYNC_INTERVAL_MS);
    const response = await check(replicaB, 'device-02', TOKEN, guesser);
    expect(outcome(response)).to.deep.equal({ grpc: 7, http: 429 });
    expect(response.denied_response?.headers.find((option) => option.header.key === 'retry-after')?.header.value).to.match(/^\d+$/);
  });

  it('shares the device address between replicas', async () => {
    const deviceAddress = '198.51.100.20';
    expect(outcome(await check(replicaA, 'device-03', TOKEN, deviceAddress)).grpc).to.equal(0);
    await sleep(3 * SYNC_INTERVAL_MS);
    for (let i = 0; i < 5; i++) {
      expect(outcome(await check(replicaA, 'device-03', 'wrong-guess', `192.0.2.${50 + i}`)).http).to.equal(401);
    }

    await sleep(3 * SYNC_INTERVAL_MS);
    expect(outcome(await check(replicaB, 'device-03', TOKEN, '192.0.2.99')).http).to.equal(429);
    expect(outcome(await check(replicaB, 'device-03', TOKEN, deviceAddress))).to.deep.equal({ grpc: 0, http: 200 });
  });

  it('limits guesses that arrive together', async () => {
    // A new tenant, so that no lookup of these Checks is cached and each one waits for Redis.
    const dir = mkdtempSync(join(tmpdir(), 'redis-limiter-burst-'));
    const configPath = join(dir, 'config.yaml');
    writeFileSync(configPath, configText);
    const admin = (args: string[]) => runCliAsync(['--config', configPath, ...args]);
    expect((await admin(['tenant', 'set', 'BURST', 'authentication.targettoken.enabled=true'])).status).to.equal(0);
    expect((await admin(['target', 'add', 'BURST', 'device-01', '--token', TOKEN])).status).to.equal(0);

    const guesses = Array.from({ length: 40 }, (_, i) =>
      replicaA.check(envoyRequest('/BURST/controller/v1/device-01', { authorization: `TargetToken guess-${i}` }, { source: '192.0.2.80' })),
    );
    const statuses = (await Promise.all(guesses)).map((response) => outcome(response).http);
    expect(statuses.filter((status) => status === 401)).to.have.length(5);
    expect(statuses.filter((status) => status === 429)).to.have.length(35);
  });

  it('keeps counting locally while Redis is down', async () => {
    const deviceAddress = '198.51.100.30';
    const guesser = '192.0.2.30';
    const warning = 'exchanging failure counts with Redis failed; counting locally until it works again';
    // This check caches the device's target, which the store serves from its cache while Redis is down.
    expect(outcome(await check(replicaA, 'device-04', TOKEN, deviceAddress)).grpc).to.equal(0);
    expect(replicaA.log.records.filter((record) => record.msg === warning), 'warnings before the outage').to.have.length(0);

    await redis.stop();
    try {
      await waitFor(() => replicaA.log.records.some((record) => record.msg === warning), 5_000, 'the exchange warning');
      for (let i = 0; i < 5; i++) {
        const started = Date.now();
        expect(outcome(await check(replicaA, 'device-04', 'wrong-guess', guesser)).http).to.equal(401);
        expect(Date.now() - started, 'a Check does not wait for Redis').to.be.lessThan(500);
      }
      expect(outcome(await check(replicaA, 'device-04', 'wrong-guess', guesser)).http).to.equal(429);
      expect(outcome(await check(replicaA, 'device-04', TOKEN, deviceAddress))).to.deep.equal({ grpc: 0, http: 200 });

      await sleep(10 * SYNC_INTERVAL_MS);
      expect(replicaA.log.records.filter((record) => record.msg === warning)).to.have.length(1);
    } finally {
      await redis.restart();
    }

    await waitFor(() => replicaA.log.records.some((record) => record.msg === 'exchanging failure counts with Redis works again'), 20_000, 'recovery');
    // The failures counted during the outage reach the other replica.
    await sleep(3 * SYNC_INTERVAL_MS);
    expect(outcome(await check(replicaB, 'device-04', 'wrong-guess', '192.0.2.31')).http).to.equal(429);
  });
});
