import { expect } from 'chai';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { authorizationService, healthService } from '../src/envoy/proto.js';
import type { CheckResponseMessage } from '../src/envoy/messages.js';
import { envoyRequest } from './helpers/service.js';
import { runCliAsync, startServe, type ServeProcess } from './helpers/cli.js';
import { RedisServer, redisConfigText } from './helpers/redis-server.js';

/** A Check client for a `serve` process, reporting the gRPC code (0 allow, 16 or 7 deny) and HTTP status. */
function checker(address: string) {
  const client = new (authorizationService())(address, grpc.credentials.createInsecure());
  const health = new (healthService())(address, grpc.credentials.createInsecure());
  return {
    check: (controllerId: string, token: string) =>
      new Promise<{ grpc: number; http: number }>((resolve, reject) =>
        client.Check(envoyRequest(`/FLEET/controller/v1/${controllerId}`, { authorization: `TargetToken ${token}` }), { deadline: Date.now() + 3000 }, (error: Error | null, response: CheckResponseMessage) => {
          if (error) {
            reject(error);
          } else {
            const code = response.status?.code ?? 0;
            resolve({ grpc: code, http: code === 0 ? 200 : Number(response.denied_response?.status?.code) });
          }
        }),
      ),
    health: () =>
      new Promise<number>((resolve, reject) => health.Check({ service: '' }, (error: Error | null, response: { status: number }) => (error ? reject(error) : resolve(response.status)))),
    close: () => {
      client.close();
      health.close();
    },
  };
}

async function waitFor(condition: () => Promise<boolean>, timeoutMs: number, what: string): Promise<number> {
  const started = Date.now();
  while (Date.now() - started < timeoutMs) {
    if (await condition()) {
      return Date.now() - started;
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`${what} did not happen within ${timeoutMs} ms`);
}

describe('service on the Redis store', function () {
  this.timeout(120_000);
  let redis: RedisServer;
  let configPath: string;
  const serves: ServeProcess[] = [];

  before(async () => {
    redis = await RedisServer.start();
    const dir = mkdtempSync(join(tmpdir(), 'redis-service-'));
    configPath = join(dir, 'config.yaml');
    writeFileSync(configPath, `grpc: { address: "127.0.0.1:0" }\nhttp: { address: "127.0.0.1:0" }\n${redisConfigText(redis.url, 'svc-test:')}\n`);
    const admin = (args: string[]) => runCliAsync(['--config', configPath, ...args]);
    expect((await admin(['tenant', 'set', 'FLEET', 'authentication.targettoken.enabled=true'])).status).to.equal(0);
    expect((await admin(['target', 'add', 'FLEET', 'device-01', '--token', 'firsttoken0001'])).status).to.equal(0);
    serves.push(await startServe(['--config', configPath]), await startServe(['--config', configPath]));
  });

  after(async () => {
    for (const serve of serves) {
      if (serve.child.exitCode === null) {
        await serve.terminate();
      }
    }
    await redis?.destroy();
  });

  it('revokes a rotated token on every replica within one second', async () => {
    const replicas = serves.map((serve) => checker(serve.grpcAddress));
    try {
      for (const replica of replicas) {
        expect((await replica.check('device-01', 'firsttoken0001')).grpc).to.equal(0);
        // A second check is answered from the cache, the case a revocation must reach.
        expect((await replica.check('device-01', 'firsttoken0001')).grpc).to.equal(0);
      }
      const rotated = await runCliAsync(['--config', configPath, 'target', 'rotate', 'FLEET', 'device-01']);
      expect(rotated.status, rotated.stderr).to.equal(0);
      const newToken = rotated.stdout.trim();
      expect(newToken).to.match(/^[0-9a-f]{32}$/);
      const rotatedAt = Date.now();

      for (const replica of replicas) {
        await waitFor(async () => (await replica.check('device-01', 'firsttoken0001')).grpc !== 0, 1000, 'revocation');
        expect(Date.now() - rotatedAt).to.be.lessThan(1000);
        expect((await replica.check('device-01', newToken)).grpc).to.equal(0);
      }

      const removed = await runCliAsync(['--config', configPath, 'target', 'remove', 'FLEET', 'device-01']);
      expect(removed.status).to.equal(0);
      const removedAt = Date.now();
      for (const replica of replicas) {
        await waitFor(async () => (await replica.check('device-01', newToken)).grpc !== 0, 1000, 'removal');
      }
      expect(Date.now() - removedAt).to.be.lessThan(1000);
    } finally {
      replicas.forEach((replica) => replica.close());
    }
  });

  it('denies with 503 while Redis is down and recovers without a restart', async () => {
    const added = await runCliAsync(['--config', configPath, 'target', 'add', 'FLEET', 'device-02', '--token', 'outagetoken0002']);
    expect(added.status).to.equal(0);
    const replica = checker(serves[0].grpcAddress);
    const readyz = async () => (await fetch(`http://${serves[0].httpAddress}/readyz`)).status;
    try {
      expect((await replica.check('device-02', 'outagetoken0002')).grpc).to.equal(0);
      expect(await replica.health()).to.equal(1);

      await redis.stop();
      await waitFor(async () => (await replica.health()) === 2, 10_000, 'NOT_SERVING');
      expect(await readyz()).to.equal(503);
      // The cached allow is not trusted once the invalidation channel is gone.
      expect(await replica.check('device-02', 'outagetoken0002')).to.deep.equal({ grpc: 7, http: 503 });
      expect(await replica.check('device-01', 'anything')).to.deep.equal({ grpc: 7, http: 503 });
      const liveness = await fetch(`http://${serves[0].httpAddress}/healthz`);
      expect(liveness.status).to.equal(200);

      await redis.restart();
      await waitFor(async () => (await replica.health()) === 1, 20_000, 'SERVING again');
      expect(await readyz()).to.equal(200);
      expect((await replica.check('device-02', 'outagetoken0002')).grpc).to.equal(0);
      expect(serves[0].records.some((record) => record.reason === 'store_unavailable')).to.equal(true);
    } finally {
      replica.close();
    }
  });

  it('exports the Redis cache counters', async () => {
    const text = await (await fetch(`http://${serves[1].httpAddress}/metrics`)).text();
    expect(text).to.match(/hawkbit_ext_authz_cache_requests_total\{cache="target",result="hit"\} [1-9]/);
    expect(text).to.match(/hawkbit_ext_authz_cache_requests_total\{cache="tenant",result="miss"\} [1-9]/);
  });

  it('never logs a token', () => {
    for (const serve of serves) {
      expect(serve.output()).not.to.include('firsttoken0001');
      expect(serve.output()).not.to.include('outagetoken0002');
    }
  });
});
