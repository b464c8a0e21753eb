import { invalidCertificate } from './errors.js';

/**
 * Maximum length of a percent-encoded PEM value, in characters. Envoy's default limit for all
 * request headers together (`max_request_headers_kb`) is 60 KiB, and one certificate encodes
 * to 1-3 KiB, so a longer value is not a real certificate or chain.
 */
export const MAX_ENCODED_PEM_CHARS = 64 * 1024;

function hexValue(code: number): number {
  if (code >= 0x30 && code <= 0x39) return code - 0x30;
  if (code >= 0x41 && code <= 0x46) return code - 0x41 + 10;
  if (code >= 0x61 && code <= 0x66) return code - 0x61 + 10;
  return -1;
}

/**
 * Decodes the PEM that Envoy sends in `source.certificate` and in the XFCC `Cert` and `Chain`
 * values. Envoy percent-encodes exactly `\n`, space, `+`, `/` and `=`. This decodes every
 * `%XX` once, so `%253D` becomes `%3D`, not `=`. A literal `+` stays `+`.
 * Throws `CertificateError` for a `%` without two hex digits, an escape of a non-ASCII byte
 * (PEM is ASCII), or a value longer than `MAX_ENCODED_PEM_CHARS`.
 */
export function decodeEnvoyPem(encoded: string): string {
  if (encoded.length > MAX_ENCODED_PEM_CHARS) {
    throw invalidCertificate(`encoded PEM has ${encoded.length} characters, more than the limit of ${MAX_ENCODED_PEM_CHARS}`);
  }

  let decoded = '';
  let copiedUpTo = 0;
  for (let index = encoded.indexOf('%'); index !== -1; index = encoded.indexOf('%', copiedUpTo)) {
    const high = hexValue(encoded.charCodeAt(index + 1));
    const low = hexValue(encoded.charCodeAt(index + 2));
    if (high < 0 || low < 0) {
      throw invalidCertificate(`encoded PEM has an invalid percent escape at character ${index}: '${encoded.slice(index, index + 3)}'`);
    }

    const byte = high * 16 + low;
    if (byte >= 0x80) {
      throw invalidCertificate(`encoded PEM escapes the non-ASCII byte 0x${byte.toString(16)} at character ${index}`);
    }

    decoded += encoded.slice(copiedUpTo, index) + String.fromCharCode(byte);
    copiedUpTo = index + 3;
  }
  return decoded + encoded.slice(copiedUpTo);
}

const BEGIN_CERTIFICATE = '-----BEGIN CERTIFICATE-----';
const END_CERTIFICATE = '-----END CERTIFICATE-----';
const BASE64_BODY = /^[A-Za-z0-9+/=\s]*$/;

/**
 * Returns every `BEGIN CERTIFICATE` block of a PEM text in order, from the BEGIN line through
 * the END line. Text between blocks (such as `openssl x509 -text` output) is ignored.
 * Throws `CertificateError` for a block without an END line or with non-base64 characters.
 * Returns an empty array when the text has no certificate block.
 */
export function splitPemChain(pem: string): string[] {
  const blocks: string[] = [];
  let begin = pem.indexOf(BEGIN_CERTIFICATE);
  while (begin !== -1) {
    const bodyStart = begin + BEGIN_CERTIFICATE.length;
    const end = pem.indexOf(END_CERTIFICATE, bodyStart);
    if (end === -1) {
      throw invalidCertificate(`PEM certificate block ${blocks.length + 1} has no '${END_CERTIFICATE}' line`);
    }
    if (!BASE64_BODY.test(pem.slice(bodyStart, end))) {
      throw invalidCertificate(`PEM certificate block ${blocks.length + 1} contains characters that are not base64`);
    }

    const blockEnd = end + END_CERTIFICATE.length;
    blocks.push(pem.slice(begin, blockEnd));
    begin = pem.indexOf(BEGIN_CERTIFICATE, blockEnd);
  }
  return blocks;
}

/**
 * Decodes the base64 body of one PEM certificate block (as returned by `splitPemChain`) to DER.
 * Throws `CertificateError` unless the body is canonical padded base64.
 */
export function pemBlockToDer(block: string): Buffer {
  if (!block.startsWith(BEGIN_CERTIFICATE) || !block.endsWith(END_CERTIFICATE)) {
    throw invalidCertificate(`PEM certificate block must start with '${BEGIN_CERTIFICATE}' and end with '${END_CERTIFICATE}'`);
  }
  const body = block.slice(BEGIN_CERTIFICATE.length, block.length - END_CERTIFICATE.length).replace(/\s+/g, '');
  const der = Buffer.from(body, 'base64');
  // Buffer.from skips invalid characters and tolerates missing padding, so compare the round trip.
  if (body.length === 0 || der.toString('base64') !== body) {
    throw invalidCertificate('PEM certificate block is not valid base64');
  }
  return der;
}
