import { expect } from 'chai';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodePemLikeEnvoy, xfccElementLikeEnvoy } from '../src/envoy/envoy-encoding.js';
import { envoyRequest, outcome, startService, type RunningService } from './helpers/service.js';
import { derName, reencodeEcdsaSignature, TestPki, type TestCertificate } from './helpers/pki.js';
import { runCliAsync, startServe, type ServeProcess } from './helpers/cli.js';
import { RedisServer, redisConfigText } from './helpers/redis-server.js';
import * as grpc from '@grpc/grpc-js';
import { parseCertificate } from '../src/x509/index.js';
import { authorizationService } from '../src/envoy/proto.js';
import type { CheckResponseMessage } from '../src/envoy/messages.js';

const DAY_MS = 86_400_000;

function fingerprint(certificate: TestCertificate): string {
  return createHash('sha256').update(new X509Certificate(certificate.pem).raw).digest('hex');
}

/** Rebuilds a certificate's subject as DER, with CN and O as UTF8String as TestPki writes them, to copy into a forged issuer. */
function subjectDer(certificate: TestCertificate): Buffer {
  const subject = new X509Certificate(certificate.pem).subject.split('\n').map((part) => part.split('='));
  const oids: Record<string, string> = { CN: '2.5.4.3', O: '2.5.4.10', C: '2.5.4.6' };
  return derName(subject.map(([type, value]) => [{ oid: oids[type], tag: 0x0c, value }]));
}

describe('pinned CAs and revocation', function () {
  this.timeout(60_000);
  let pki: TestPki;
  let ca: TestCertificate;
  let device: TestCertificate;
  let forgedCa: TestCertificate;
  let forgedDevice: TestCertificate;
  let expired: TestCertificate;
  let notYetValid: TestCertificate;
  let serverOnly: TestCertificate;
  let revoked: TestCertificate;
  let revokedBySignedPart: TestCertificate;
  let service: RunningService;

  before(async () => {
    pki = TestPki.create();
    ca = pki.rootCa('/O=Fleet/CN=Fleet Device CA');
    device = pki.device(ca, '/CN=device-01');
    revoked = pki.device(ca, '/CN=device-01');
    revokedBySignedPart = pki.device(ca, '/CN=device-01');
    serverOnly = pki.issue({ subject: '/CN=device-01', issuer: ca, extendedKeyUsage: 'serverAuth' });
    // A CA with the same name as the pinned one but another key, and a device it signed.
    forgedCa = pki.issueWithNames({ subjectName: subjectDer(ca), ca: true });
    forgedDevice = pki.issueWithNames({ subjectName: derName([[{ oid: '2.5.4.3', tag: 0x0c, value: 'device-01' }]]), signer: forgedCa });
    const now = Date.now();
    expired = pki.issueWithNames({ subjectName: derName([[{ oid: '2.5.4.3', tag: 0x0c, value: 'device-01' }]]), signer: ca, notBefore: new Date(now - 10 * DAY_MS), notAfter: new Date(now - DAY_MS) });
    notYetValid = pki.issueWithNames({ subjectName: derName([[{ oid: '2.5.4.3', tag: 0x0c, value: 'device-01' }]]), signer: ca, notBefore: new Date(now + DAY_MS), notAfter: new Date(now + 10 * DAY_MS) });
    const caFile = pki.writeFile('pinned.pem', ca.pem);

    service = await startService(`
tenants:
  PINNED:
    config:
      authentication.header.enabled: true
      authentication.header.authority: "${pki.opensslIssuerHash(device)}"
    caCertificates: { file: "${caFile}" }
    revokedCertificates:
      - "${fingerprint(revoked).toUpperCase().match(/../g)!.join(':')}"
      - "${parseCertificate(revokedBySignedPart.pem).tbsSha256}"
  UNPINNED:
    config:
      authentication.header.enabled: true
      authentication.header.authority: "${pki.opensslIssuerHash(device)}"
`);
  });

  after(async () => {
    await service?.stop();
    pki?.cleanup();
  });

  const check = async (tenant: string, certificate: TestCertificate) => {
    const response = await service.check(envoyRequest(`/${tenant}/controller/v1/device-01`, {}, { certificate: encodePemLikeEnvoy(certificate.pem) }));
    return { ...outcome(response), reason: service.log.records.at(-1)?.reason };
  };

  it('hashes the forged CA name like the real one', () => {
    expect(pki.opensslIssuerHash(forgedDevice)).to.equal(pki.opensslIssuerHash(device));
  });

  it('allows a device signed by the pinned CA', async () => {
    expect(await check('PINNED', device)).to.deep.include({ grpc: 0 });
  });

  it('denies a certificate whose issuer copies the pinned CA name', async () => {
    expect(await check('PINNED', forgedDevice)).to.deep.equal({ grpc: 16, http: 401, reason: 'ca_not_pinned' });
  });

  it('shows the hole pinning closes: the name hash alone accepts it', async () => {
    expect((await check('UNPINNED', forgedDevice)).grpc).to.equal(0);
  });

  it('denies an expired certificate', async () => {
    expect(await check('PINNED', expired)).to.deep.equal({ grpc: 16, http: 401, reason: 'certificate_expired' });
  });

  it('denies a certificate that is not yet valid', async () => {
    expect(await check('PINNED', notYetValid)).to.deep.equal({ grpc: 16, http: 401, reason: 'certificate_not_yet_valid' });
  });

  it('denies a certificate for server authentication only', async () => {
    expect(await check('PINNED', serverOnly)).to.deep.equal({ grpc: 16, http: 401, reason: 'certificate_usage_invalid' });
  });

  it('denies a revoked certificate', async () => {
    expect(await check('PINNED', revoked)).to.deep.equal({ grpc: 16, http: 401, reason: 'certificate_revoked' });
  });

  it('denies a revoked certificate whose signature was re-encoded', async () => {
    expect(await check('PINNED', revokedBySignedPart)).to.deep.include({ reason: 'certificate_revoked' });
    const copy = { ...revokedBySignedPart, pem: reencodeEcdsaSignature(revokedBySignedPart.pem) };
    expect(new X509Certificate(copy.pem).verify(new X509Certificate(ca.pem).publicKey)).to.equal(true);
    expect(fingerprint(copy)).not.to.equal(fingerprint(revokedBySignedPart));
    expect(await check('PINNED', copy)).to.deep.equal({ grpc: 16, http: 401, reason: 'certificate_revoked' });
  });

  it('verifies through an intermediate from the forwarded chain', async () => {
    const intermediate = pki.intermediateCa(ca, '/O=Fleet/CN=Fleet Issuing CA');
    const leaf = pki.device(intermediate, '/CN=device-01');
    const xfccService = await startService(`
ddi: { certificate: { trustXfcc: true } }
tenants:
  PINNED:
    config: { authentication.header.enabled: true, authentication.header.authority: "${pki.opensslIssuerHash(leaf)}" }
    caCertificates: ${JSON.stringify(ca.pem)}
`);
    try {
      const withChain = await xfccService.check(envoyRequest('/PINNED/controller/v1/device-01', { 'x-forwarded-client-cert': xfccElementLikeEnvoy(leaf.pem, [intermediate.pem]) }));
      expect(outcome(withChain).grpc).to.equal(0);
      const withoutChain = await xfccService.check(envoyRequest('/PINNED/controller/v1/device-01', {}, { certificate: encodePemLikeEnvoy(leaf.pem) }));
      expect(outcome(withoutChain).grpc).to.equal(16);
      expect(xfccService.log.records.at(-1)?.reason).to.equal('ca_not_pinned');
    } finally {
      await xfccService.stop();
    }
  });

  it('rejects a pinned certificate that is not a CA, naming the key', async () => {
    let message = '';
    try {
      await startService(`tenants: { T: { caCertificates: ${JSON.stringify(device.pem)} } }`);
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).to.include('tenants.T.caCertificates[0]');
    expect(message).to.include('is not a CA certificate');
  });

  it('warns about certificate authentication without authority', async () => {
    const empty = await startService('tenants: { EMPTY: { config: { authentication.header.enabled: true } } }');
    try {
      const warning = empty.log.records.find((record) => String(record.msg).startsWith('certificate authentication is enabled with an empty'));
      expect(warning?.tenant).to.equal('EMPTY');
    } finally {
      await empty.stop();
    }
  });

  it('warns when two tenants trust one issuer hash from different or unpinned CA keys', async () => {
    const hash = pki.opensslIssuerHash(device);
    const conflicted = await startService(`
tenants:
  A:
    config: { authentication.header.authority: "${hash}" }
    caCertificates: ${JSON.stringify(ca.pem)}
  B:
    config: { authentication.header.authority: "${hash}" }
    caCertificates: ${JSON.stringify(forgedCa.pem)}
  C:
    config: { authentication.header.authority: "${hash}" }
    caCertificates: ${JSON.stringify(ca.pem)}
  D:
    config: { authentication.header.authority: "${hash}" }
  E:
    config: { authentication.header.authority: "${fingerprint(ca)}" }
`);
    try {
      const warnings = conflicted.log.records.filter((record) => String(record.msg).startsWith('two tenants trust the same issuer hash'));
      const pairs = warnings.map((record) => [...(record.tenants as string[]), record.pinned]);
      expect(pairs).to.have.deep.members([
        ['A', 'B', true],
        ['A', 'D', false],
        ['B', 'C', true],
        ['B', 'D', false],
        ['C', 'D', false],
      ]);
      const text = await (await fetch(`http://${conflicted.handle.httpAddress}/metrics`)).text();
      expect(text).to.match(/^hawkbit_ext_authz_issuer_hash_conflicts 5$/m);
    } finally {
      await conflicted.stop();
    }
  });
});

describe('cert admin commands on Redis', function () {
  this.timeout(120_000);
  let redis: RedisServer;
  let pki: TestPki;
  let configPath: string;
  let ca: TestCertificate;
  let otherCa: TestCertificate;
  let device: TestCertificate;
  const serves: ServeProcess[] = [];
  const admin = (...args: string[]) => runCliAsync(['--config', configPath, ...args]);

  before(async () => {
    redis = await RedisServer.start();
    pki = TestPki.create();
    ca = pki.rootCa('/O=Fleet/CN=Fleet Device CA');
    otherCa = pki.rootCa('/O=Fleet/CN=Other CA');
    device = pki.device(ca, '/CN=device-01');
    const dir = mkdtempSync(join(tmpdir(), 'cert-admin-'));
    configPath = join(dir, 'config.yaml');
    writeFileSync(configPath, `grpc: { address: "127.0.0.1:0" }\nhttp: { address: "127.0.0.1:0" }\n${redisConfigText(redis.url, 'cert-test:')}\n`);
    const hash = pki.opensslIssuerHash(device);
    expect((await admin('tenant', 'set', 'FLEET', 'authentication.header.enabled=true', `authentication.header.authority=${hash}`)).status).to.equal(0);
  });

  after(async () => {
    for (const serve of serves) {
      if (serve.child.exitCode === null) {
        await serve.terminate();
      }
    }
    await redis?.destroy();
    pki?.cleanup();
  });

  it('pins, lists and unpins CAs', async () => {
    const pinned = await admin('cert', 'pin', 'FLEET', ca.certPath);
    expect(pinned.status, pinned.stderr).to.equal(0);
    expect(pinned.stdout).to.include(`pinned ${fingerprint(ca)}`);
    const listed = await admin('cert', 'list', 'FLEET');
    expect(listed.stdout).to.match(new RegExp(`^pinned ${fingerprint(ca)} .*Fleet Device CA`, 'm'));
    const notCa = await admin('cert', 'pin', 'FLEET', device.certPath);
    expect(notCa.status).to.equal(2);
    expect(notCa.stderr).to.include('is not a CA certificate');
    expect((await admin('cert', 'pin', 'FLEET', otherCa.certPath)).status).to.equal(0);
    expect((await admin('cert', 'unpin', 'FLEET', fingerprint(otherCa))).status).to.equal(0);
    const missing = await admin('cert', 'unpin', 'FLEET', fingerprint(otherCa));
    expect(missing.status).to.equal(1);
    expect((await admin('cert', 'revoke', 'FLEET', 'not-a-fingerprint')).status).to.equal(2);
  });

  it('revokes a certificate on two replicas within one second', async () => {
    serves.push(await startServe(['--config', configPath]), await startServe(['--config', configPath]));
    const clients = serves.map((serve) => new (authorizationService())(serve.grpcAddress, grpc.credentials.createInsecure()));
    const check = (index: number) =>
      new Promise<number>((resolve, reject) =>
        clients[index].Check(envoyRequest('/FLEET/controller/v1/device-01', {}, { certificate: encodePemLikeEnvoy(device.pem) }), (error: Error | null, response: CheckResponseMessage) =>
          error ? reject(error) : resolve(response.status?.code ?? 0),
        ),
      );
    try {
      expect(await check(0)).to.equal(0);
      expect(await check(1)).to.equal(0);
      const revoked = await admin('cert', 'revoke', 'FLEET', device.certPath);
      expect(revoked.status, revoked.stderr).to.equal(0);
      expect(revoked.stdout).to.include(`revoked ${parseCertificate(device.pem).tbsSha256}`);
      // The command has written and published when it exits; every replica must follow within a second.
      const revokedAt = Date.now();
      for (const index of [0, 1]) {
        while ((await check(index)) === 0) {
          expect(Date.now() - revokedAt, `replica ${index} still allows`).to.be.lessThan(1000);
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      }
      expect(Date.now() - revokedAt).to.be.lessThan(1000);
      const denied = await serves[0].waitForRecord((record) => record.result === 'deny');
      expect(denied.reason).to.equal('certificate_revoked');
      const copy = reencodeEcdsaSignature(device.pem);
      const checkCopy = () =>
        new Promise<number>((resolve, reject) =>
          clients[1].Check(envoyRequest('/FLEET/controller/v1/device-01', {}, { certificate: encodePemLikeEnvoy(copy) }), (error: Error | null, response: CheckResponseMessage) =>
            error ? reject(error) : resolve(response.status?.code ?? 0),
          ),
        );
      expect(await checkCopy()).to.equal(16);
      expect((await admin('cert', 'unrevoke', 'FLEET', parseCertificate(device.pem).tbsSha256)).status).to.equal(0);

      // A second tenant trusting the same issuer hash without pinning is reported by every replica.
      const created = await admin('tenant', 'set', 'OTHER', `authentication.header.authority=${pki.opensslIssuerHash(device)}`);
      expect(created.status, created.stderr).to.equal(0);
      const warnedAt = Date.now();
      while (!serves.every((serve) => serve.records.some((record) => String(record.msg).startsWith('two tenants trust the same issuer hash without pinning')))) {
        expect(Date.now() - warnedAt, 'conflict warning').to.be.lessThan(3000);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const conflict = serves[0].records.find((record) => String(record.msg).startsWith('two tenants trust the same issuer hash'));
      expect(conflict?.tenants).to.deep.equal(['FLEET', 'OTHER']);
      const unrevokedAt = Date.now();
      while ((await check(1)) !== 0) {
        expect(Date.now() - unrevokedAt).to.be.lessThan(1000);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    } finally {
      clients.forEach((client) => client.close());
    }
  });
});
