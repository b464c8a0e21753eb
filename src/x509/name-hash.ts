import { createHash } from 'node:crypto';

import { DerTag, encodeElement } from './der.js';
import { decodeDirectoryString, readName, type NameAttribute } from './name.js';

/**
 * String types whose values OpenSSL canonicalises (`ASN1_MASK_CANON` in OpenSSL 3
 * `crypto/x509/x_name.c`). Every other type, NumericString included, is kept byte for byte.
 */
const CANONICALISED_TAGS: ReadonlySet<number> = new Set([
  DerTag.UTF8_STRING,
  DerTag.PRINTABLE_STRING,
  DerTag.T61_STRING,
  DerTag.IA5_STRING,
  DerTag.VISIBLE_STRING,
  DerTag.UNIVERSAL_STRING,
  DerTag.BMP_STRING,
]);

/** Exactly the bytes OpenSSL's `ossl_isspace` accepts: TAB, LF, VT, FF, CR and SPACE. */
function isAsciiWhitespace(byte: number): boolean {
  return byte === 0x20 || (byte >= 0x09 && byte <= 0x0d);
}

/**
 * Canonicalises one string value as OpenSSL's `asn1_string_canon` does: convert to UTF-8,
 * trim ASCII whitespace, collapse each inner whitespace run to one space and lower-case
 * A-Z. Bytes of 0x80 and above are copied, so non-ASCII letters keep their case.
 */
function canonicaliseString(tag: number, content: Buffer): Buffer {
  // Every canonicalised tag is a character string type, so decoding returns text or throws.
  const utf8 = Buffer.from(decodeDirectoryString(tag, content)!, 'utf8');

  let start = 0;
  let end = utf8.length;
  while (start < end && isAsciiWhitespace(utf8[start]!)) {
    start++;
  }
  while (end > start && isAsciiWhitespace(utf8[end - 1]!)) {
    end--;
  }

  const output: number[] = [];
  let index = start;
  while (index < end) {
    const byte = utf8[index]!;
    if (isAsciiWhitespace(byte)) {
      output.push(0x20);
      while (index < end && isAsciiWhitespace(utf8[index]!)) {
        index++;
      }
      continue;
    }
    output.push(byte >= 0x41 && byte <= 0x5a ? byte + 0x20 : byte);
    index++;
  }
  return Buffer.from(output);
}

function encodeCanonicalAttribute(attribute: NameAttribute): Buffer {
  const type = encodeElement(DerTag.OBJECT_IDENTIFIER, attribute.oidContent);
  let value: Buffer;
  if (CANONICALISED_TAGS.has(attribute.valueTag)) {
    value = encodeElement(DerTag.UTF8_STRING, canonicaliseString(attribute.valueTag, attribute.valueContent));
  } else if ((attribute.valueTag & 0x20) === 0) {
    // OpenSSL re-encodes a kept primitive value from its tag and content octets.
    value = encodeElement(attribute.valueTag, attribute.valueContent);
  } else {
    value = attribute.valueEncoding;
  }
  return encodeElement(DerTag.SEQUENCE, Buffer.concat([type, value]));
}

/** DER SET OF order: byte-wise over the common length, then the shorter encoding first. */
function compareDerEncodings(left: Buffer, right: Buffer): number {
  const common = Math.min(left.length, right.length);
  const byBytes = Buffer.compare(left.subarray(0, common), right.subarray(0, common));
  return byBytes !== 0 ? byBytes : left.length - right.length;
}

/**
 * Builds the canonical encoding OpenSSL 3 hashes and compares names by (`x509_name_canon`):
 * each RDN as a SET of canonical attributes, re-sorted after canonicalisation, the SETs
 * concatenated in certificate order without the outer SEQUENCE. An empty name gives an
 * empty buffer. Throws `CertificateError` if the name is malformed.
 */
export function canonicalNameEncoding(nameDer: Buffer): Buffer {
  // OpenSSL regroups attributes by RDN index, so an empty RDN contributes nothing.
  const rdnEncodings = readName(nameDer)
    .filter((rdn) => rdn.length > 0)
    .map((rdn) => {
      const attributes = rdn.map(encodeCanonicalAttribute).sort(compareDerEncodings);
      return encodeElement(DerTag.SET, Buffer.concat(attributes));
    });
  return Buffer.concat(rdnEncodings);
}

/** Formats a canonical encoding as `X509_NAME_hash_ex` does: SHA-1, first four bytes little-endian, `%08x`. */
export function hashCanonicalName(canonical: Buffer): string {
  const digest = createHash('sha1').update(canonical).digest();
  return digest.readUInt32LE(0).toString(16).padStart(8, '0');
}

/**
 * Computes OpenSSL 3's name hash (`X509_NAME_hash_ex`), the value `openssl x509 -issuer_hash`
 * and `-subject_hash` print, from a DER `Name` including its outer SEQUENCE.
 * Throws `CertificateError` if the name is malformed.
 */
export function openSslNameHash(nameDer: Buffer): string {
  return hashCanonicalName(canonicalNameEncoding(nameDer));
}
