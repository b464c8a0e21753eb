import { expect } from 'chai';
import { X509Certificate } from 'node:crypto';
import fc from 'fast-check';

import { CertificateCache, CertificateError, decodeEnvoyPem, parseCertificate } from '../src/x509/index.js';
import { anyString, applyEdits, fuzzParameters, onlyThrows, replaying, stringEdits, tokenString } from './helpers/fuzz.js';
import { envoyEncodePem, TestPki } from './helpers/pki.js';

function toPem(der: Buffer): string {
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN CERTIFICATE-----\n${lines.join('\n')}\n-----END CERTIFICATE-----\n`;
}

/** One change to DER bytes: overwrite or flip bits of a byte, insert or delete bytes, truncate, or append. */
type ByteMutation =
  | { kind: 'set'; offset: number; value: number }
  | { kind: 'flip'; offset: number; mask: number }
  | { kind: 'insert'; offset: number; bytes: Uint8Array }
  | { kind: 'delete'; offset: number; length: number }
  | { kind: 'truncate'; offset: number }
  | { kind: 'append'; bytes: Uint8Array };

/** Offsets are biased to the first 64 bytes, where the outer lengths and the TBSCertificate header sit. */
const offset = fc.oneof(fc.nat({ max: 63 }), fc.nat({ max: 100_000 }));

const byteMutation: fc.Arbitrary<ByteMutation> = fc.oneof(
  fc.record({ kind: fc.constant('set' as const), offset, value: fc.oneof(fc.constantFrom(0x00, 0x30, 0x80, 0x81, 0x82, 0x84, 0xff), fc.nat({ max: 255 })) }),
  fc.record({ kind: fc.constant('flip' as const), offset, mask: fc.integer({ min: 1, max: 255 }) }),
  fc.record({ kind: fc.constant('insert' as const), offset, bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
  fc.record({ kind: fc.constant('delete' as const), offset, length: fc.integer({ min: 1, max: 8 }) }),
  fc.record({ kind: fc.constant('truncate' as const), offset }),
  fc.record({ kind: fc.constant('append' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 64 }) }),
);

function mutate(der: Buffer, mutations: readonly ByteMutation[]): Buffer {
  let bytes = Buffer.from(der);
  for (const mutation of mutations) {
    const at = mutation.kind === 'append' ? bytes.length : mutation.offset % Math.max(bytes.length, 1);
    switch (mutation.kind) {
      case 'set':
        if (bytes.length > 0) bytes[at] = mutation.value;
        break;
      case 'flip':
        if (bytes.length > 0) bytes[at] ^= mutation.mask;
        break;
      case 'insert':
        bytes = Buffer.concat([bytes.subarray(0, at), mutation.bytes, bytes.subarray(at)]);
        break;
      case 'delete':
        bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + mutation.length)]);
        break;
      case 'truncate':
        bytes = bytes.subarray(0, at);
        break;
      case 'append':
        bytes = Buffer.concat([bytes, mutation.bytes]);
        break;
    }
  }
  return bytes;
}

/** Characters of PEM and of Envoy's percent-encoding, and a few that belong to neither. */
const PEM_TOKENS = ['%', '%0A', '%20', '%2B', '%2F', '%3D', '%25', '%C3', '%7', '\n', '\r', ' ', '-', '=', '+', '/', 'A', 'z', 'ä', '-----', 'BEGIN CERTIFICATE', 'END CERTIFICATE'];

describe('certificate decoding properties', function () {
  let certificates: Buffer[];
  const cache = new CertificateCache(64);

  before(function () {
    this.timeout(60_000);
    const pki = TestPki.create();
    try {
      const root = pki.rootCa('/C=DE/O=Example IoT/CN=Device CA');
      const device = pki.device(root, '/O=Example IoT/CN=device-0001');
      const twoNames = pki.issue({ subject: '/CN=a+CN=b/O=Multi', issuer: root, multiValueRdn: true, stringMask: 'default' });
      certificates = [root, device, twoNames].map((certificate) => Buffer.from(new X509Certificate(certificate.pem).raw));
    } finally {
      pki.cleanup();
    }
  });

  const mutatedCertificate = () =>
    fc.tuple(fc.nat({ max: 2 }), fc.array(byteMutation, { minLength: 1, maxLength: 4 })).map(([index, mutations]) => mutate(certificates[index], mutations));

  it('parses the unmutated certificates', () => {
    for (const der of certificates) {
      expect(parseCertificate(der).der.equals(der)).to.equal(true);
      expect(cache.parseEnvoyCertificate(envoyEncodePem(toPem(der))).der.equals(der)).to.equal(true);
    }
  });

  it('parseCertificate throws only CertificateError for any bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 1000 }), (bytes) => {
        onlyThrows([CertificateError], () => parseCertificate(Buffer.from(bytes)));
      }),
      fuzzParameters(),
    );
  });

  it('parseCertificate throws only CertificateError for mutated certificates', () => {
    let parsed = 0;
    fc.assert(
      fc.property(mutatedCertificate(), (der) => {
        onlyThrows([CertificateError], () => {
          parseCertificate(der);
          parsed++;
        });
        onlyThrows([CertificateError], () => parseCertificate(toPem(der)));
      }),
      fuzzParameters(),
    );
    // A change in the signature or a field's content leaves the DER readable, so the code past the DER checks runs too.
    if (!replaying) {
      expect(parsed, 'mutated certificates that parse').to.be.greaterThan(0);
    }
  });

  it('PEM decoding throws only CertificateError', () => {
    fc.assert(
      fc.property(fc.oneof(anyString(300), tokenString(PEM_TOKENS)), (text) => {
        onlyThrows([CertificateError], () => decodeEnvoyPem(text));
        onlyThrows([CertificateError], () => parseCertificate(text));
        onlyThrows([CertificateError], () => parseCertificate(`-----BEGIN CERTIFICATE-----\n${text}\n-----END CERTIFICATE-----\n`));
      }),
      fuzzParameters(),
    );
  });

  it('CertificateCache throws only CertificateError', () => {
    const encoded = fc.oneof(
      mutatedCertificate().map((der) => envoyEncodePem(toPem(der))),
      fc
        .tuple(fc.nat({ max: 2 }), stringEdits(fc.oneof(fc.constantFrom(...PEM_TOKENS), anyString(3))))
        .map(([index, edits]) => applyEdits(envoyEncodePem(toPem(certificates[index])), edits)),
      anyString(300),
    );
    fc.assert(
      fc.property(encoded, (text) => {
        onlyThrows([CertificateError], () => cache.parseEnvoyCertificate(text));
        onlyThrows([CertificateError], () => cache.parseEnvoyChain(text));
      }),
      fuzzParameters(),
    );
  });
});
