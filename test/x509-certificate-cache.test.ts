import { expect } from 'chai';

import { CertificateCache, CertificateError } from '../src/x509/index.js';
import { chainPem, envoyEncodePem, TestPki, type TestCertificate } from './helpers/pki.js';

function thrownBy(action: () => unknown): unknown {
  try {
    action();
  } catch (error) {
    return error;
  }
  return undefined;
}

describe('CertificateCache', function () {
  let pki: TestPki;
  let root: TestCertificate;
  let devices: TestCertificate[];

  before(function () {
    pki = TestPki.create();
    root = pki.rootCa();
    devices = [1, 2, 3].map((number) => pki.device(root, `/CN=device-${number}`));
  });

  after(function () {
    pki.cleanup();
  });

  it('returns the cached object for the same encoded certificate', function () {
    const cache = new CertificateCache(10);
    const encoded = envoyEncodePem(devices[0]!.pem);
    const first = cache.parseEnvoyCertificate(encoded);
    expect(first.subjectCommonNames).to.deep.equal(['device-1']);
    expect(cache.parseEnvoyCertificate(encoded)).to.equal(first);
    expect(cache.size).to.equal(1);
  });

  it('caches a failure and rethrows the same error', function () {
    const cache = new CertificateCache(10);
    const first = thrownBy(() => cache.parseEnvoyCertificate('%ZZjunk'));
    expect(first).to.be.instanceOf(CertificateError);
    expect(thrownBy(() => cache.parseEnvoyCertificate('%ZZjunk'))).to.equal(first);
    expect(cache.size).to.equal(1);
  });

  it('evicts the least recently used entry', function () {
    const cache = new CertificateCache(2);
    const [a, b, c] = devices.map((device) => envoyEncodePem(device.pem)) as [string, string, string];
    const parsedA = cache.parseEnvoyCertificate(a);
    const parsedB = cache.parseEnvoyCertificate(b);
    cache.parseEnvoyCertificate(a);
    cache.parseEnvoyCertificate(c);

    expect(cache.size).to.equal(2);
    expect(cache.parseEnvoyCertificate(a), 'recently used entry').to.equal(parsedA);
    expect(cache.parseEnvoyCertificate(b), 'evicted entry').to.not.equal(parsedB);
  });

  it('tells apart texts with the same ending', function () {
    const cache = new CertificateCache(10);
    const encoded = envoyEncodePem(devices[0]!.pem);
    // Same length and same last 400 characters: a different certificate body before an identical end.
    const start = encoded.indexOf('%0A') + 3;
    const changed = `${encoded.slice(0, start)}${encoded[start] === 'A' ? 'B' : 'A'}${encoded.slice(start + 1)}`;
    expect(changed.length).to.equal(encoded.length);
    expect(changed.slice(-400)).to.equal(encoded.slice(-400));

    const parsed = cache.parseEnvoyCertificate(encoded);
    expect(thrownBy(() => cache.parseEnvoyCertificate(changed)), 'altered text is parsed, not served from the cache').to.be.instanceOf(CertificateError);
    expect(thrownBy(() => cache.parseEnvoyCertificate(changed)), 'altered text again').to.be.instanceOf(CertificateError);
    expect(cache.parseEnvoyCertificate(encoded), 'original after the altered one').to.equal(parsed);
    expect(cache.stats).to.deep.equal({ hits: 2, misses: 2 });
  });

  it('keeps chains under one CA apart', function () {
    const cache = new CertificateCache(10);
    const intermediate = pki.intermediateCa(root);
    const chains = [1, 2, 3, 4].map((number) => envoyEncodePem(chainPem(pki.device(intermediate, `/CN=chained-${number}`), intermediate, root)));
    const first = chains.map((chain) => cache.parseEnvoyChain(chain)[0]);
    const again = chains.map((chain) => cache.parseEnvoyChain(chain)[0]);
    expect(again).to.deep.equal(first);
    again.forEach((leaf, index) => expect(leaf, `chain ${index}`).to.equal(first[index]));
    expect(cache.stats).to.deep.equal({ hits: 4, misses: 4 });
  });

  it('caches long texts by digest', function () {
    const cache = new CertificateCache(10);
    const longChain = envoyEncodePem(chainPem(...devices, root, ...devices, root, ...devices, root, ...devices, root));
    expect(longChain.length).to.be.greaterThan(8 * 1024);
    const first = cache.parseEnvoyChain(longChain);
    expect(first).to.have.length(16);
    expect(cache.parseEnvoyChain(longChain)[0]).to.equal(first[0]);
    expect(cache.stats).to.deep.equal({ hits: 1, misses: 1 });
  });

  it('parses a chain in order and returns a fresh array each time', function () {
    const cache = new CertificateCache(10);
    const encoded = envoyEncodePem(chainPem(devices[0]!, root));
    const chain = cache.parseEnvoyChain(encoded);
    expect(chain.map((certificate) => certificate.isCa)).to.deep.equal([false, true]);

    chain.pop();
    const again = cache.parseEnvoyChain(encoded);
    expect(again).to.have.length(2);
    expect(again[0]).to.equal(chain[0]);
  });

  it('keeps a certificate and a one-element chain apart', function () {
    const cache = new CertificateCache(10);
    const encoded = envoyEncodePem(devices[0]!.pem);
    expect(Array.isArray(cache.parseEnvoyCertificate(encoded))).to.equal(false);
    expect(cache.parseEnvoyChain(encoded)).to.have.length(1);
    expect(cache.size).to.equal(2);
  });

  it('rejects an empty chain and a chain over the limit', function () {
    const cache = new CertificateCache(10);
    expect(thrownBy(() => cache.parseEnvoyChain(''))).to.be.instanceOf(CertificateError);
    const tooLong = envoyEncodePem(Array.from({ length: 17 }, () => devices[0]!.pem).join(''));
    expect(thrownBy(() => cache.parseEnvoyChain(tooLong))).to.be.instanceOf(CertificateError);
  });

  it('rejects a chain with text outside its blocks', function () {
    const cache = new CertificateCache(10);
    const encoded = envoyEncodePem(`${devices[0]!.pem}subject=CN=device-1\n${root.pem}`);
    expect(thrownBy(() => cache.parseEnvoyChain(encoded))).to.be.instanceOf(CertificateError);
  });

  it('rejects an oversized value without caching it', function () {
    const cache = new CertificateCache(10);
    expect(thrownBy(() => cache.parseEnvoyCertificate('A'.repeat(64 * 1024 + 1)))).to.be.instanceOf(CertificateError);
    expect(cache.size).to.equal(0);
  });

  it('rejects a maxEntries that is not a positive integer', function () {
    for (const maxEntries of [0, -1, 1.5, Number.NaN]) {
      expect(() => new CertificateCache(maxEntries), String(maxEntries)).to.throw(RangeError);
    }
  });
});
