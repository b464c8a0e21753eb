import { expect } from 'chai';
import fc from 'fast-check';

import {
  CertificateCache,
  CertificateError,
  decodeEnvoyPem,
  openSslNameHash,
  parseCertificate,
  parseXfcc,
  splitPemChain,
  XfccError,
} from '../src/x509/index.js';
import { envoyEncodePem, TestPki } from './helpers/pki.js';

/** Runs `action` and rethrows anything that is not one of `allowed`, so fast-check reports it. */
function onlyThrows(allowed: Array<new (...args: never[]) => Error>, action: () => unknown): void {
  try {
    action();
  } catch (error) {
    if (!allowed.some((type) => error instanceof type)) {
      throw error;
    }
  }
}

const RUNS = { numRuns: 500, seed: 20260101 };

describe('garbage input', function () {
  let validDer: Buffer;
  let validPem: string;

  before(function () {
    const pki = TestPki.create();
    try {
      const root = pki.rootCa('/C=DE/O=Example IoT/CN=Device CA');
      validPem = pki.device(root, '/O=Example IoT/CN=device-0001').pem;
      validDer = parseCertificate(validPem).der;
    } finally {
      pki.cleanup();
    }
  });

  it('parseCertificate throws only CertificateError for random bytes', function () {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
        onlyThrows([CertificateError], () => parseCertificate(Buffer.from(bytes)));
      }),
      RUNS,
    );
  });

  it('parseCertificate throws only CertificateError for mutated certificates', function () {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat({ max: validDer.length - 1 }), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }),
        fc.nat({ max: validDer.length }),
        (edits, cut) => {
          const mutated = Buffer.from(validDer);
          for (const [offset, value] of edits) {
            mutated[offset] = value;
          }
          onlyThrows([CertificateError], () => parseCertificate(mutated));
          onlyThrows([CertificateError], () => parseCertificate(mutated.subarray(0, cut)));
        },
      ),
      RUNS,
    );
  });

  it('parseCertificate throws only CertificateError for mutated PEM text', function () {
    fc.assert(
      fc.property(fc.nat({ max: validPem.length - 1 }), fc.string({ maxLength: 3 }), (offset, insert) => {
        onlyThrows([CertificateError], () => parseCertificate(validPem.slice(0, offset) + insert + validPem.slice(offset + 1)));
      }),
      RUNS,
    );
  });

  it('openSslNameHash throws only CertificateError for random bytes', function () {
    const nameLike = fc.uint8Array({ maxLength: 80 }).map((bytes) => Buffer.concat([Buffer.from([0x30, bytes.length]), bytes]));
    fc.assert(
      fc.property(fc.oneof(nameLike, fc.uint8Array({ maxLength: 80 }).map((bytes) => Buffer.from(bytes))), (bytes) => {
        onlyThrows([CertificateError], () => openSslNameHash(bytes));
      }),
      RUNS,
    );
  });

  it('decodeEnvoyPem and splitPemChain throw only CertificateError', function () {
    const pemLike = fc.string({ unit: fc.constantFrom('%', '0', 'A', 'g', '\n', '-', '=', '+', '/', 'ä'), maxLength: 60 });
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 200 }), pemLike), (text) => {
        onlyThrows([CertificateError], () => decodeEnvoyPem(text));
        onlyThrows([CertificateError], () => splitPemChain(`-----BEGIN CERTIFICATE-----${text}`));
        onlyThrows([CertificateError], () => splitPemChain(text));
      }),
      RUNS,
    );
  });

  it('CertificateCache throws only CertificateError for mutated encoded certificates', function () {
    const cache = new CertificateCache(50);
    const encoded = envoyEncodePem(validPem);
    fc.assert(
      fc.property(fc.nat({ max: encoded.length - 1 }), fc.constantFrom('%', '%2', 'Z', ''), (offset, insert) => {
        const mutated = encoded.slice(0, offset) + insert + encoded.slice(offset + 1);
        onlyThrows([CertificateError], () => cache.parseEnvoyCertificate(mutated));
        onlyThrows([CertificateError], () => cache.parseEnvoyChain(mutated));
      }),
      RUNS,
    );
  });

  it('parseXfcc throws only XfccError', function () {
    const xfccLike = fc.string({ unit: fc.constantFrom('"', '\\', ',', ';', '=', 'a', 'B', ' ', '%'), maxLength: 40 });
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 200 }), xfccLike), (text) => {
        onlyThrows([XfccError], () => parseXfcc(text));
      }),
      RUNS,
    );
  });

  it('parses the unmutated inputs, so the checks above reach deep code', function () {
    expect(parseCertificate(validDer).subjectCommonNames).to.deep.equal(['device-0001']);
    expect(new CertificateCache().parseEnvoyCertificate(envoyEncodePem(validPem)).subjectCommonNames).to.deep.equal(['device-0001']);
  });
});
