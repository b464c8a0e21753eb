import { expect } from 'chai';
import { createHash, X509Certificate } from 'node:crypto';
import { encodePemLikeEnvoy, xfccElementLikeEnvoy } from '../src/envoy/envoy-encoding.js';
import { envoyRequest, outcome, setHeaders, startService, type RunningService } from './helpers/service.js';
import { TestPki, type TestCertificate } from './helpers/pki.js';
import { runCliAsync } from './helpers/cli.js';

const TOKEN = '4a7c1e9b2d3f40a6b8c0d2e4f6a8b0c2';
const PROXY = '10.1.2.3';

function fingerprint(certificate: TestCertificate): string {
  return createHash('sha256').update(new X509Certificate(certificate.pem).raw).digest('hex');
}

/** Formats a fingerprint as `openssl x509 -fingerprint -sha256` does: upper case with colons. */
function colonFingerprint(certificate: TestCertificate): string {
  return fingerprint(certificate).toUpperCase().match(/../g)!.join(':');
}

describe('certificate authentication', function () {
  this.timeout(60_000);
  let pki: TestPki;
  let root: TestCertificate;
  let intermediate: TestCertificate;
  let device: TestCertificate;
  let deviceOfRoot: TestCertificate;
  let untrustedCa: TestCertificate;
  let untrustedDevice: TestCertificate;
  let foreignCa: TestCertificate;
  let twoCns: TestCertificate;
  let noCn: TestCertificate;
  let fingerprintDevice: TestCertificate;
  let fingerprintIntermediate: TestCertificate;
  let pinnedRoot: TestCertificate;
  let service: RunningService;
  let xfccService: RunningService;

  before(async () => {
    pki = TestPki.create();
    root = pki.rootCa('/O=Example IoT/CN=Fleet Root CA');
    intermediate = pki.intermediateCa(root, '/O=Example IoT/CN=Fleet Device CA');
    device = pki.device(intermediate, '/O=Example IoT/CN=device-01');
    deviceOfRoot = pki.device(root, '/CN=device-01');
    untrustedCa = pki.rootCa('/O=Somebody Else/CN=Other CA');
    untrustedDevice = pki.device(untrustedCa, '/CN=device-01');
    foreignCa = pki.rootCa('/O=Public/CN=Some Public Root');
    twoCns = pki.issue({ subject: '/CN=device-01/CN=device-02', issuer: intermediate });
    noCn = pki.device(intermediate, '/O=Example IoT/serialNumber=device-01');
    // A second hierarchy that the tenant trusts only by the root's fingerprint.
    pinnedRoot = pki.rootCa('/O=Pinned/CN=Pinned Root');
    fingerprintIntermediate = pki.intermediateCa(pinnedRoot, '/O=Pinned/CN=Pinned Issuing CA');
    fingerprintDevice = pki.device(fingerprintIntermediate, '/CN=device-01');

    const authority = [pki.opensslIssuerHash(device), colonFingerprint(pinnedRoot), fingerprint(foreignCa)].join(' ; ');
    const tenants = `
tenants:
  DEFAULT:
    config:
      authentication.targettoken.enabled: true
      authentication.header.enabled: true
      authentication.header.authority: "${authority}"
    targets:
      device-01: { securityToken: "${TOKEN}" }
  header-off:
    config:
      authentication.header.enabled: false
      authentication.header.authority: "${pki.opensslIssuerHash(device)}"
`;
    service = await startService(`
ddi:
  certificate:
    trustedProxies: ["${PROXY}", "2001:db8:7::/48"]
${tenants}`);
    xfccService = await startService(`
ddi:
  certificate: { trustXfcc: true }
${tenants}`);
  });

  after(async () => {
    await service?.stop();
    await xfccService?.stop();
    pki?.cleanup();
  });

  const path = '/DEFAULT/controller/v1/device-01';
  const peer = (certificate: TestCertificate) => ({ certificate: encodePemLikeEnvoy(certificate.pem) });
  const lastReason = (running: RunningService) => running.log.records.filter((record) => record.msg === 'deny' || record.msg === 'allow').at(-1)?.reason;

  it('allows a device whose CN and issuer hash match', async () => {
    const response = await service.check(envoyRequest(path, {}, peer(device)));
    expect(outcome(response)).to.deep.equal({ grpc: 0, http: 200 });
    expect(setHeaders(response)['x-ddi-auth-method']).to.equal('certificate');
    expect(setHeaders(response)['x-ddi-controller-id']).to.equal('device-01');
  });

  it('denies a CN that differs from the controller id', async () => {
    const response = await service.check(envoyRequest('/DEFAULT/controller/v1/device-02', {}, peer(device)));
    expect(outcome(response)).to.deep.equal({ grpc: 16, http: 401 });
    expect(lastReason(service)).to.equal('cn_mismatch');
  });

  it('denies a certificate with two CNs', async () => {
    const response = await service.check(envoyRequest(path, {}, peer(twoCns)));
    expect(outcome(response).grpc).to.equal(16);
    expect(lastReason(service)).to.equal('cn_multiple');
  });

  it('denies a certificate without CN', async () => {
    const response = await service.check(envoyRequest(path, {}, peer(noCn)));
    expect(outcome(response).grpc).to.equal(16);
    expect(lastReason(service)).to.equal('cn_missing');
  });

  it('denies an issuer that is not in the tenant list', async () => {
    const response = await service.check(envoyRequest(path, {}, peer(untrustedDevice)));
    expect(outcome(response).grpc).to.equal(16);
    expect(lastReason(service)).to.equal('issuer_not_trusted');
  });

  it('denies a device signed directly by the root, whose hash is not listed', async () => {
    const response = await service.check(envoyRequest(path, {}, peer(deviceOfRoot)));
    expect(outcome(response).grpc).to.equal(16);
    expect(lastReason(service)).to.equal('issuer_not_trusted');
  });

  it('denies when the tenant has header authentication off', async () => {
    const response = await service.check(envoyRequest('/header-off/controller/v1/device-01', {}, peer(device)));
    expect(outcome(response).grpc).to.equal(16);
    expect(lastReason(service)).to.equal('method_disabled');
  });

  it('ignores source.principal', async () => {
    const request = envoyRequest(path, {});
    request.attributes!.source!.principal = 'CN=device-01';
    const response = await service.check(request);
    expect(outcome(response).grpc).to.equal(16);
    expect(lastReason(service)).to.equal('no_credentials');
  });

  it('falls back to a target token when the certificate fails', async () => {
    const response = await service.check(envoyRequest(path, { authorization: `TargetToken ${TOKEN}` }, peer(untrustedDevice)));
    expect(outcome(response).grpc).to.equal(0);
    expect(setHeaders(response)['x-ddi-auth-method']).to.equal('target-token');
  });

  it('prefers the certificate when both would succeed', async () => {
    const response = await service.check(envoyRequest(path, { authorization: `TargetToken ${TOKEN}` }, peer(device)));
    expect(setHeaders(response)['x-ddi-auth-method']).to.equal('certificate');
  });

  it('reports the certificate failure when every method fails', async () => {
    const response = await service.check(envoyRequest(path, { authorization: 'TargetToken wrong' }, peer(untrustedDevice)));
    expect(outcome(response).grpc).to.equal(16);
    expect(lastReason(service)).to.equal('issuer_not_trusted');
  });

  describe('through x-forwarded-client-cert', () => {
    it('ignores a forged header while trustXfcc is false', async () => {
      const response = await service.check(envoyRequest(path, { 'x-forwarded-client-cert': xfccElementLikeEnvoy(device.pem, []) }));
      expect(outcome(response).grpc).to.equal(16);
      expect(lastReason(service)).to.equal('xfcc_untrusted');
    });

    it('allows a certificate from the header when trusted', async () => {
      const response = await xfccService.check(envoyRequest(path, { 'x-forwarded-client-cert': xfccElementLikeEnvoy(device.pem, [intermediate.pem]) }));
      expect(outcome(response).grpc).to.equal(0);
    });

    it('matches a CA fingerprint on the verified issuing path', async () => {
      const chain = [fingerprintIntermediate.pem, pinnedRoot.pem];
      const response = await xfccService.check(envoyRequest(path, { 'x-forwarded-client-cert': xfccElementLikeEnvoy(fingerprintDevice.pem, chain) }, peer(fingerprintDevice)));
      expect(outcome(response).grpc, String(lastReason(xfccService))).to.equal(0);
    });

    it('does not count a foreign CA appended to the chain', async () => {
      const xfcc = xfccElementLikeEnvoy(untrustedDevice.pem, [untrustedCa.pem, foreignCa.pem]);
      const response = await xfccService.check(envoyRequest(path, { 'x-forwarded-client-cert': xfcc }, peer(untrustedDevice)));
      expect(outcome(response).grpc).to.equal(16);
      expect(lastReason(xfccService)).to.equal('issuer_not_trusted');
    });

    it('uses the chain only when its Cert is the peer certificate', async () => {
      const xfcc = xfccElementLikeEnvoy(device.pem, [fingerprintIntermediate.pem, pinnedRoot.pem]);
      const response = await xfccService.check(envoyRequest(path, { 'x-forwarded-client-cert': xfcc }, peer(fingerprintDevice)));
      expect(outcome(response).grpc).to.equal(16);
      expect(lastReason(xfccService)).to.equal('issuer_not_trusted');
    });

    it('denies two elements', async () => {
      const element = xfccElementLikeEnvoy(device.pem, []);
      const response = await xfccService.check(envoyRequest(path, { 'x-forwarded-client-cert': `${element},${element}` }));
      expect(outcome(response).grpc).to.equal(16);
      expect(lastReason(xfccService)).to.equal('xfcc_multiple_elements');
    });

    it('denies a malformed header', async () => {
      const response = await xfccService.check(envoyRequest(path, { 'x-forwarded-client-cert': 'Hash=abc;Cert="unterminated' }));
      expect(outcome(response).grpc).to.equal(16);
      expect(lastReason(xfccService)).to.equal('xfcc_malformed');
    });
  });

  describe('through headers of a trusted proxy', () => {
    const hash = () => pki.opensslIssuerHash(device);

    it('allows hawkBit headers from a trusted address', async () => {
      const response = await service.check(envoyRequest(path, { 'x-controller-id': 'device-01', 'x-authority': hash() }, { source: PROXY }));
      expect(outcome(response).grpc).to.equal(0);
      expect(setHeaders(response)['x-ddi-auth-method']).to.equal('certificate');
      expect(response.ok_response?.headers_to_remove).to.include.members(['x-controller-id', 'x-authority']);
    });

    it('normalises an IPv4-mapped IPv6 source address', async () => {
      const response = await service.check(envoyRequest(path, { 'x-controller-id': 'device-01', 'x-authority': hash() }, { source: `::ffff:${PROXY}` }));
      expect(outcome(response).grpc).to.equal(0);
    });

    it('matches an IPv6 CIDR', async () => {
      const response = await service.check(envoyRequest(path, { 'x-controller-id': 'device-01', 'x-authority': hash() }, { source: '2001:db8:7::99' }));
      expect(outcome(response).grpc).to.equal(0);
    });

    it('reads indexed authority headers up to the first gap', async () => {
      const fromOne = await service.check(envoyRequest(path, { 'x-controller-id': 'device-01', 'x-authority-1': 'aaaaaaaa', 'x-authority-2': hash() }, { source: PROXY }));
      expect(outcome(fromOne).grpc).to.equal(0);
      const fromZero = await service.check(envoyRequest(path, { 'x-controller-id': 'device-01', 'x-authority-0': hash() }, { source: PROXY }));
      expect(outcome(fromZero).grpc).to.equal(0);
      const afterGap = await service.check(envoyRequest(path, { 'x-controller-id': 'device-01', 'x-authority-1': 'aaaaaaaa', 'x-authority-3': hash() }, { source: PROXY }));
      expect(outcome(afterGap).grpc).to.equal(16);
      expect(lastReason(service)).to.equal('issuer_not_trusted');
    });

    it('denies a controller id header that differs from the path', async () => {
      const response = await service.check(envoyRequest(path, { 'x-controller-id': 'device-02', 'x-authority': hash() }, { source: PROXY }));
      expect(outcome(response).grpc).to.equal(16);
      expect(lastReason(service)).to.equal('cn_mismatch');
    });

    it('ignores and removes the headers from an untrusted address', async () => {
      const response = await service.check(envoyRequest(path, { 'x-controller-id': 'device-01', 'x-authority': hash() }, { source: '10.1.2.4' }));
      expect(outcome(response).grpc).to.equal(16);
      expect(lastReason(service)).to.equal('proxy_untrusted');
      const withToken = await service.check(envoyRequest(path, { authorization: `TargetToken ${TOKEN}`, 'x-controller-id': 'device-01', 'x-authority': hash() }, { source: '10.1.2.4' }));
      expect(outcome(withToken).grpc).to.equal(0);
      expect(withToken.ok_response?.headers_to_remove).to.include.members(['x-controller-id', 'x-authority']);
    });

    it('never trusts x-forwarded-for', async () => {
      const response = await service.check(envoyRequest(path, { 'x-controller-id': 'device-01', 'x-authority': hash(), 'x-forwarded-for': PROXY }, { source: '192.0.2.99' }));
      expect(outcome(response).grpc).to.equal(16);
    });
  });

  describe('through RFC 9440 headers', () => {
    const sf = (certificate: TestCertificate) => `:${new X509Certificate(certificate.pem).raw.toString('base64')}:`;

    it('allows Client-Cert from a trusted proxy', async () => {
      const response = await service.check(envoyRequest(path, { 'client-cert': sf(device) }, { source: PROXY }));
      expect(outcome(response).grpc).to.equal(0);
      expect(setHeaders(response)['x-ddi-auth-method']).to.equal('certificate');
      expect(response.ok_response?.headers_to_remove).to.include('client-cert');
    });

    it('matches a CA fingerprint through Client-Cert-Chain', async () => {
      const response = await service.check(
        envoyRequest(path, { 'client-cert': sf(fingerprintDevice), 'client-cert-chain': `${sf(fingerprintIntermediate)}, ${sf(pinnedRoot)}` }, { source: PROXY }),
      );
      expect(outcome(response).grpc, String(lastReason(service))).to.equal(0);
    });

    it('ignores and removes Client-Cert from an untrusted address', async () => {
      const ignored = await service.check(envoyRequest(path, { 'client-cert': sf(device) }, { source: '192.0.2.77' }));
      expect(outcome(ignored).grpc).to.equal(16);
      expect(lastReason(service)).to.equal('proxy_untrusted');
      for (const header of ['client-cert-chain', 'x-authority', 'x-authority-1']) {
        const alone = await service.check(envoyRequest(path, { [header]: 'x' }, { source: '192.0.2.77' }));
        expect(outcome(alone).grpc, header).to.equal(16);
        expect(lastReason(service), header).to.equal('proxy_untrusted');
      }
      const withToken = await service.check(envoyRequest(path, { authorization: `TargetToken ${TOKEN}`, 'client-cert': sf(device), 'client-cert-chain': sf(root) }, { source: '192.0.2.77' }));
      expect(outcome(withToken).grpc).to.equal(0);
      expect(setHeaders(withToken)['x-ddi-auth-method']).to.equal('target-token');
      expect(withToken.ok_response?.headers_to_remove).to.include.members(['client-cert', 'client-cert-chain']);
    });

    it('denies a malformed Client-Cert', async () => {
      for (const value of ['not-a-byte-sequence', ':!!!:', `${sf(device)}, ${sf(device)}`]) {
        const response = await service.check(envoyRequest(path, { 'client-cert': value }, { source: PROXY }));
        expect(outcome(response).grpc, value.slice(0, 20)).to.equal(16);
        expect(lastReason(service)).to.equal('client_cert_malformed');
      }
    });

    it('denies a Client-Cert whose CN differs from the path', async () => {
      const response = await service.check(envoyRequest('/DEFAULT/controller/v1/device-02', { 'client-cert': sf(device) }, { source: PROXY }));
      expect(outcome(response).grpc).to.equal(16);
      expect(lastReason(service)).to.equal('cn_mismatch');
    });
  });

  it('authenticates with check --cert and --chain', async () => {
    const allowed = await runCliAsync(['check', '--address', xfccService.handle.grpcAddress, '--path', path, '--cert', device.certPath]);
    expect(allowed.status, allowed.stdout + allowed.stderr).to.equal(0);
    expect(allowed.stdout).to.include('set header: x-ddi-auth-method: certificate');
    const chainFile = pki.writeFile('chain.pem', fingerprintIntermediate.pem);
    const withoutRoot = await runCliAsync(['check', '--xfcc', '--address', xfccService.handle.grpcAddress, '--path', path, '--cert', fingerprintDevice.certPath, '--chain', chainFile]);
    // The pinned root is not in that chain file, so its fingerprint cannot match.
    expect(withoutRoot.status).to.equal(1);
    const fullChainFile = pki.writeFile('full-chain.pem', fingerprintIntermediate.pem + pinnedRoot.pem);
    const withRoot = await runCliAsync(['check', '--xfcc', '--address', xfccService.handle.grpcAddress, '--path', path, '--cert', fingerprintDevice.certPath, '--chain', fullChainFile]);
    expect(withRoot.status, withRoot.stdout).to.equal(0);
    const denied = await runCliAsync(['check', '--address', xfccService.handle.grpcAddress, '--path', path, '--cert', untrustedDevice.certPath]);
    expect(denied.status).to.equal(1);
  });
});
