import { expect } from 'chai';
import { createHash, X509Certificate } from 'node:crypto';

import type { AuthContext, MethodResult } from '../src/auth/authenticator.js';
import { parseAuthorization } from '../src/auth/authorization-header.js';
import { CertificateAuthenticator } from '../src/auth/certificate.js';
import { RequestHeaders } from '../src/auth/request.js';
import { parseConfig } from '../src/config/load.js';
import type { ServiceConfig } from '../src/config/schema.js';
import { parseDdiPath } from '../src/ddi/path.js';
import { xfccElementLikeEnvoy } from '../src/envoy/envoy-encoding.js';
import { MemoryStore, TokenDigester } from '../src/store/index.js';
import type { TenantSettings } from '../src/store/store.js';
import { tenantSettingsFrom } from '../src/store/tenant-settings.js';
import { TextCache } from '../src/x509/index.js';
import { sampledKey } from '../src/x509/text-cache.js';
import { TestPki, type TestCertificate } from './helpers/pki.js';

function fingerprint(certificate: TestCertificate): string {
  return createHash('sha256').update(new X509Certificate(certificate.pem).raw).digest('hex');
}

describe('TextCache', function () {
  it('returns the value stored for the same text', function () {
    const cache = new TextCache<number>(4);
    cache.set('a'.repeat(500), 1);
    expect(cache.get('a'.repeat(500))).to.equal(1);
    expect(cache.stats).to.deep.equal({ hits: 1, misses: 0 });
  });

  it('misses a text that differs only in the middle', function () {
    const cache = new TextCache<number>(4);
    const text = `${'a'.repeat(200)}X${'b'.repeat(200)}`;
    cache.set(text, 1);
    expect(cache.get(`${'a'.repeat(200)}Y${'b'.repeat(200)}`)).to.equal(undefined);
    expect(cache.stats.misses).to.equal(1);
  });

  it('samples the first and last character', function () {
    const text = 'a'.repeat(1000);
    expect(sampledKey(0, `b${text.slice(1)}`)).to.not.equal(sampledKey(0, text));
    expect(sampledKey(0, `${text.slice(1)}b`)).to.not.equal(sampledKey(0, text));
  });

  it('separates keys by seed', function () {
    const text = 'a'.repeat(1000);
    expect(sampledKey(1, text)).to.not.equal(sampledKey(0, text));
  });

  it('keeps apart texts with one key', function () {
    // 128 samples of 1,000 characters fall about 8 apart, so the second character is not sampled.
    const stored = 'a'.repeat(1000);
    const other = `ab${'a'.repeat(998)}`;
    expect(sampledKey(0, other)).to.equal(sampledKey(0, stored));

    const cache = new TextCache<number>(4);
    cache.set(stored, 1);
    expect(cache.get(other)).to.equal(undefined);
    cache.set(other, 2);
    expect(cache.size).to.equal(1);
    expect(cache.get(other)).to.equal(2);
    expect(cache.get(stored)).to.equal(undefined);
  });

  it('evicts the least recently used text', function () {
    const cache = new TextCache<string>(2);
    cache.set('first', 'a');
    cache.set('second', 'b');
    cache.get('first');
    cache.set('third', 'c');
    expect(cache.size).to.equal(2);
    expect(cache.get('first')).to.equal('a');
    expect(cache.get('second')).to.equal(undefined);
    expect(cache.get('third')).to.equal('c');
  });

  it('keeps no text over the length limit', function () {
    const cache = new TextCache<number>(2);
    cache.set('x'.repeat(9000), 1);
    expect(cache.size).to.equal(0);
    expect(cache.get('x'.repeat(9000))).to.equal(undefined);
  });

  it('rejects a size that is not a positive integer', function () {
    expect(() => new TextCache(0)).to.throw(RangeError, /maxEntries/);
  });
});

describe('certificate method with a repeated XFCC value', function () {
  this.timeout(30_000);
  let pki: TestPki;
  let root: TestCertificate;
  let issuing: TestCertificate;
  let device: TestCertificate;
  let config: ServiceConfig;
  let xfcc: string;

  before(function () {
    pki = TestPki.create();
    root = pki.rootCa('/O=Example IoT/CN=Fleet Root CA');
    issuing = pki.intermediateCa(root, '/O=Example IoT/CN=Fleet Device CA');
    device = pki.device(issuing, '/CN=device-01');
    config = parseConfig('ddi: { certificate: { trustXfcc: true } }\n', 'test configuration');
    xfcc = xfccElementLikeEnvoy(device.pem, [issuing.pem, root.pem]);
  });

  after(function () {
    pki.cleanup();
  });

  /** Tenant settings that trust CAs by these fingerprints and revoke these certificate fingerprints. */
  function tenant(authority: string[], revoked: string[] = []): TenantSettings {
    const settings = { 'authentication.header.enabled': true, 'authentication.header.authority': authority.join(';') };
    return tenantSettingsFrom('DEFAULT', settings, undefined, { revoked });
  }

  function authenticate(authenticator: CertificateAuthenticator, settings: TenantSettings, controllerId = 'device-01'): MethodResult {
    const parsed = parseDdiPath(`/DEFAULT/controller/v1/${controllerId}`);
    if (!parsed.ok) {
      throw new Error(`test path did not parse: ${parsed.reason}`);
    }
    const headers = RequestHeaders.ofLowerCaseMap({ 'x-forwarded-client-cert': xfcc });
    const context: AuthContext = {
      request: { requestId: '', path: '', method: 'GET', headers, sourceAddress: '192.0.2.1', peerCertificate: '', headerBytes: 0, headerCount: 1 },
      headers,
      target: parsed.target,
      tenant: settings,
      store: new MemoryStore({}, new TokenDigester()),
      authorization: parseAuthorization(headers),
      compareAfterWait: (_method, compare) => compare(),
    };
    return authenticator.authenticate(context) as MethodResult;
  }

  it('parses the value once', function () {
    const authenticator = new CertificateAuthenticator(config.ddi.certificate, config.limits);
    const trusted = tenant([fingerprint(root)]);
    expect(authenticate(authenticator, trusted)).to.deep.equal({ outcome: 'success' });
    const parsesAfterFirst = authenticator.cacheStats.misses;
    const hitsAfterFirst = authenticator.cacheStats.hits;

    expect(authenticate(authenticator, trusted)).to.deep.equal({ outcome: 'success' });
    expect(authenticator.cacheStats.misses, 'parses').to.equal(parsesAfterFirst);
    expect(authenticator.cacheStats.hits, 'hits').to.equal(hitsAfterFirst + 1);
  });

  it('checks trust against the current tenant settings', function () {
    const authenticator = new CertificateAuthenticator(config.ddi.certificate, config.limits);
    expect(authenticate(authenticator, tenant([fingerprint(root)]))).to.deep.equal({ outcome: 'success' });
    expect(authenticate(authenticator, tenant([fingerprint(pki.rootCa('/CN=Other Root'))]))).to.deep.equal({ outcome: 'failure', reason: 'issuer_not_trusted' });
    expect(authenticate(authenticator, tenant([fingerprint(issuing)]))).to.deep.equal({ outcome: 'success' });
  });

  it('checks revocation after a cached success', function () {
    const authenticator = new CertificateAuthenticator(config.ddi.certificate, config.limits);
    expect(authenticate(authenticator, tenant([fingerprint(root)]))).to.deep.equal({ outcome: 'success' });
    const revoking = tenant([fingerprint(root)], [fingerprint(device)]);
    expect(authenticate(authenticator, revoking)).to.deep.equal({ outcome: 'failure', reason: 'certificate_revoked' });
  });

  it('compares the CN with each request path', function () {
    const authenticator = new CertificateAuthenticator(config.ddi.certificate, config.limits);
    const trusted = tenant([fingerprint(root)]);
    expect(authenticate(authenticator, trusted)).to.deep.equal({ outcome: 'success' });
    expect(authenticate(authenticator, trusted, 'device-02')).to.deep.equal({ outcome: 'failure', reason: 'cn_mismatch' });
  });
});
