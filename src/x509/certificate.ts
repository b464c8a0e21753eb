import { createHash, X509Certificate } from 'node:crypto';

import { DerTag, encodingOf, expectTag, readChildren, readElement, type DerElement } from './der.js';
import { invalidCertificate } from './errors.js';
import { commonNamesOf, formatName, readName } from './name.js';
import { canonicalNameEncoding, hashCanonicalName } from './name-hash.js';
import { pemBlockToDer, splitPemChain } from './pem.js';

/**
 * Maximum DER size of one certificate, in bytes. Device and CA certificates are 0.5-2 KiB,
 * so this only stops absurd input before it reaches OpenSSL.
 */
export const MAX_CERTIFICATE_DER_BYTES = 64 * 1024;

/** A decoded X.509 certificate with the values authentication needs, computed once. */
export interface ParsedCertificate {
  readonly der: Buffer;
  /** SHA-256 of the DER, lower-case hex without colons (the XFCC `Hash` form). */
  readonly sha256: string;
  /**
   * SHA-256 of the TBSCertificate DER, the part the issuer signed. Unlike
   * `sha256` it does not change when the signature is re-encoded (an ECDSA
   * signature (r, s) also verifies as (r, n - s)), so revocation uses it.
   */
  readonly tbsSha256: string;
  readonly x509: X509Certificate;
  /** Every commonName of the subject in certificate order, decoded from its ASN.1 string type. */
  readonly subjectCommonNames: readonly string[];
  /** The subject for logs and CLI output (`C=DE, O=Example IoT, CN=Device CA`), never for comparison. */
  readonly subject: string;
  /** The issuer for logs and CLI output, never for comparison. */
  readonly issuer: string;
  /** DER of the issuer `Name`, outer SEQUENCE included. */
  readonly issuerNameDer: Buffer;
  /** DER of the subject `Name`, outer SEQUENCE included. */
  readonly subjectNameDer: Buffer;
  /** OpenSSL's canonical issuer encoding. Equal bytes mean OpenSSL's `X509_NAME_cmp` finds the names equal. */
  readonly issuerNameCanonical: Buffer;
  /** OpenSSL's canonical subject encoding. */
  readonly subjectNameCanonical: Buffer;
  /** Issuer name hash as `openssl x509 -issuer_hash` prints it: 8 lower-case hex digits. */
  readonly issuerHash: string;
  /** Subject name hash as `openssl x509 -subject_hash` prints it. */
  readonly subjectHash: string;
  /** Whether basicConstraints has cA=TRUE (`X509Certificate.ca`). */
  readonly isCa: boolean;
}

const PEM_TEXT_START = /^\s*-----BEGIN /;

/**
 * Parses one certificate given as PEM text, as a Buffer of PEM text, or as a Buffer of DER.
 * PEM input must contain exactly one `BEGIN CERTIFICATE` block and nothing but whitespace
 * around it. Throws only `CertificateError`: for garbage, truncated or trailing DER, several
 * certificates, names OpenSSL cannot canonicalise, or anything `X509Certificate` rejects.
 */
export function parseCertificate(input: string | Buffer): ParsedCertificate {
  const der = toDer(input);
  if (der.length > MAX_CERTIFICATE_DER_BYTES) {
    throw invalidCertificate(`certificate has ${der.length} bytes, more than the limit of ${MAX_CERTIFICATE_DER_BYTES}`);
  }

  const { issuerNameDer, subjectNameDer, tbsDer } = readTbsNames(der);
  const issuerNameCanonical = canonicalNameEncoding(issuerNameDer);
  const subjectNameCanonical = canonicalNameEncoding(subjectNameDer);
  const subjectRdns = readName(subjectNameDer);

  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(der);
  } catch (error) {
    throw invalidCertificate(`OpenSSL could not load the certificate (${(error as Error).message})`, error);
  }

  return {
    der,
    sha256: createHash('sha256').update(der).digest('hex'),
    tbsSha256: createHash('sha256').update(tbsDer).digest('hex'),
    x509,
    subjectCommonNames: commonNamesOf(subjectRdns),
    subject: formatName(subjectRdns),
    issuer: formatName(readName(issuerNameDer)),
    issuerNameDer,
    subjectNameDer,
    issuerNameCanonical,
    subjectNameCanonical,
    issuerHash: hashCanonicalName(issuerNameCanonical),
    subjectHash: hashCanonicalName(subjectNameCanonical),
    isCa: x509.ca,
  };
}

function toDer(input: string | Buffer): Buffer {
  if (typeof input !== 'string' && !PEM_TEXT_START.test(input.subarray(0, 64).toString('latin1'))) {
    // Copy, so later changes to the caller's buffer cannot alter a parsed or cached certificate.
    return Buffer.from(input);
  }

  const text = typeof input === 'string' ? input : input.toString('latin1');
  const blocks = splitPemChain(text);
  if (blocks.length === 0) {
    throw invalidCertificate("input contains no '-----BEGIN CERTIFICATE-----' block");
  }
  if (blocks.length > 1) {
    throw invalidCertificate(`input contains ${blocks.length} certificates where one is expected`);
  }
  if (text.trim() !== blocks[0]) {
    throw invalidCertificate('input contains text outside its PEM certificate block');
  }
  return pemBlockToDer(blocks[0]);
}

/** Identifier octet of the optional `[0] EXPLICIT version` field of TBSCertificate (RFC 5280). */
const VERSION_TAG = 0xa0;

/**
 * Walks Certificate and TBSCertificate far enough to cut out the issuer and subject names:
 * `SEQUENCE { tbs SEQUENCE { [0] version OPTIONAL, serial, signature, issuer, validity,
 * subject, spki, ... }, signatureAlgorithm, signatureValue }`. The whole input must be one
 * Certificate, so a second concatenated DER certificate is rejected here.
 */
function readTbsNames(der: Buffer): { issuerNameDer: Buffer; subjectNameDer: Buffer; tbsDer: Buffer } {
  const certificate = expectTag(readElement(der, 0), DerTag.SEQUENCE, 'Certificate');
  if (certificate.end !== der.length) {
    throw invalidCertificate(`certificate DER has ${der.length - certificate.end} bytes after its end`);
  }

  const parts = readChildren(der, certificate);
  if (parts.length !== 3) {
    throw invalidCertificate(`Certificate has ${parts.length} elements, expected 3`);
  }
  const tbs = expectTag(parts[0], DerTag.SEQUENCE, 'TBSCertificate');
  expectTag(parts[1], DerTag.SEQUENCE, 'signatureAlgorithm');
  expectTag(parts[2], DerTag.BIT_STRING, 'signatureValue');

  const fields: DerElement[] = readChildren(der, tbs);
  const first = fields[0]?.tag === VERSION_TAG ? 1 : 0;
  expectTag(fields[first], DerTag.INTEGER, 'serialNumber');
  expectTag(fields[first + 1], DerTag.SEQUENCE, 'TBSCertificate signature');
  const issuer = expectTag(fields[first + 2], DerTag.SEQUENCE, 'issuer');
  expectTag(fields[first + 3], DerTag.SEQUENCE, 'validity');
  const subject = expectTag(fields[first + 4], DerTag.SEQUENCE, 'subject');
  expectTag(fields[first + 5], DerTag.SEQUENCE, 'subjectPublicKeyInfo');

  return { issuerNameDer: encodingOf(der, issuer), subjectNameDer: encodingOf(der, subject), tbsDer: encodingOf(der, tbs) };
}
