/**
 * Parses the `Client-Cert` and `Client-Cert-Chain` request headers of RFC 9440, with which a
 * TLS-terminating proxy passes the client's certificates on. Both are Structured Fields
 * (RFC 8941, updated by RFC 9651): `Client-Cert` is an Item whose value is a Byte Sequence,
 * `:` + base64 of the DER + `:`, and `Client-Cert-Chain` is a List of such Items in TLS order.
 * Parameters after an Item are checked against the grammar and then ignored.
 */
import { MAX_CHAIN_CERTIFICATES } from './certificate-cache.js';
import { Rfc9440Error } from './errors.js';

/**
 * Maximum length of a `Client-Cert` or `Client-Cert-Chain` value, in characters. Envoy's default
 * limit for all request headers together (`max_request_headers_kb`) is 60 KiB, so a longer value
 * cannot come through an Envoy with default limits. One certificate of 0.5-2 KiB encodes to
 * 0.7-2.7 KiB of base64.
 */
export const MAX_CLIENT_CERT_CHARS = 64 * 1024;

/**
 * Decodes a `Client-Cert` value to the DER bytes of the certificate.
 *
 * Spaces before and after the Item are skipped, as RFC 8941 section 4.2 specifies. Base64 padding may
 * be left out, and non-zero bits in the last character are ignored, as RFC 8941 section 4.2.7
 * recommends for recipients.
 *
 * Throws `Rfc9440Error` (`client_cert_malformed`) when the value is longer than
 * `MAX_CLIENT_CERT_CHARS` or is not a single Byte Sequence Item. That covers another Item type,
 * an empty Byte Sequence, a character outside the base64 alphabet, and misplaced or partial
 * padding. It also covers a parameter that does not follow the grammar and any text after the
 * Item, such as the second Item of two header lines joined with a comma.
 */
export function parseClientCertHeader(value: string): Buffer {
  const reader = new FieldReader('Client-Cert', value);
  reader.skipSpaces();
  const der = reader.readCertificateItem();
  reader.skipSpaces();
  if (!reader.atEnd()) {
    throw reader.malformed(`has text after the Item at character ${reader.index}`);
  }
  return der;
}

/**
 * Decodes a `Client-Cert-Chain` value to the DER bytes of each certificate, in header order.
 *
 * Members are separated by a comma with optional spaces or tabs around it, so two header lines
 * joined with a comma read as one list. An empty value is an empty list, which RFC 8941 treats
 * like an absent header. Each member is read as `parseClientCertHeader` reads its value.
 * Throws `Rfc9440Error` (`client_cert_malformed`) for anything `parseClientCertHeader` rejects in
 * a member, an Inner List, an empty member or trailing comma, or more than
 * `MAX_CHAIN_CERTIFICATES` members.
 */
export function parseClientCertChainHeader(value: string): Buffer[] {
  const reader = new FieldReader('Client-Cert-Chain', value);
  const certificates: Buffer[] = [];
  reader.skipSpaces();

  while (!reader.atEnd()) {
    if (certificates.length === MAX_CHAIN_CERTIFICATES) {
      throw reader.malformed(`has more than ${MAX_CHAIN_CERTIFICATES} members`);
    }
    if (reader.next() === ',') {
      throw reader.malformed(`has an empty member at character ${reader.index}`);
    }
    certificates.push(reader.readCertificateItem());

    reader.skipOptionalWhitespace();
    if (reader.atEnd()) {
      break;
    }
    if (reader.next() !== ',') {
      throw reader.malformed(`has '${reader.next()}' after member ${certificates.length} at character ${reader.index}, where ',' or the end must follow`);
    }
    reader.index++;
    reader.skipOptionalWhitespace();
    if (reader.atEnd()) {
      throw reader.malformed('ends with a comma');
    }
  }
  return certificates;
}

const BASE64_CHARACTER = /[A-Za-z0-9+/=]/;
const DIGIT = /[0-9]/;
const ALPHA = /[A-Za-z]/;
const LOWER_CASE_HEX = /[0-9a-f]/;
const KEY_FIRST_CHARACTER = /[a-z*]/;
const KEY_CHARACTER = /[a-z0-9_\-.*]/;
/** RFC 9110 `tchar`, plus `:` and `/`, which sf-token allows after its first character. */
const TOKEN_CHARACTER = /[!#$%&'*+\-.^_`|~0-9A-Za-z:/]/;
const UTF8 = new TextDecoder('utf-8', { fatal: true });

/** A cursor over one field value. Every method reads at `index` and moves it past what it read. */
class FieldReader {
  index = 0;

  constructor(
    private readonly header: string,
    private readonly input: string,
  ) {
    if (input.length > MAX_CLIENT_CERT_CHARS) {
      throw this.malformed(`has ${input.length} characters, more than the limit of ${MAX_CLIENT_CERT_CHARS}`);
    }
  }

  malformed(problem: string): Rfc9440Error {
    return new Rfc9440Error('client_cert_malformed', `${this.header} value ${problem}`);
  }

  atEnd(): boolean {
    return this.index >= this.input.length;
  }

  /** Returns the character at the cursor, or '' at the end. */
  next(): string {
    return this.input.charAt(this.index);
  }

  skipSpaces(): void {
    while (this.next() === ' ') {
      this.index++;
    }
  }

  /** Skips OWS (spaces and tabs), which RFC 8941 allows around the commas of a List. */
  skipOptionalWhitespace(): void {
    while (this.next() === ' ' || this.next() === '\t') {
      this.index++;
    }
  }

  /** Reads an Item that must be a non-empty Byte Sequence, then its parameters, and returns the bytes. */
  readCertificateItem(): Buffer {
    const start = this.index;
    const first = this.next();
    if (first === '') {
      throw this.malformed('has no Byte Sequence');
    }
    if (first === '(') {
      throw this.malformed(`has an Inner List at character ${start}, where a Byte Sequence must be`);
    }
    if (first !== ':') {
      throw this.malformed(`has '${first}' at character ${start}, where a Byte Sequence (':base64:') must start`);
    }

    const bytes = this.readByteSequence();
    if (bytes.length === 0) {
      throw this.malformed(`has an empty Byte Sequence at character ${start}, which cannot be a certificate`);
    }
    this.readParameters();
    return bytes;
  }

  /** Reads a Byte Sequence (RFC 8941 section 4.2.7) whose padding is complete or absent, and returns its bytes. */
  readByteSequence(): Buffer {
    const start = this.index;
    const end = this.input.indexOf(':', start + 1);
    if (end === -1) {
      throw this.malformed(`has a Byte Sequence at character ${start} without its closing ':'`);
    }
    const content = this.input.slice(start + 1, end);
    for (let offset = 0; offset < content.length; offset++) {
      if (!BASE64_CHARACTER.test(content[offset])) {
        throw this.malformed(`has '${content[offset]}' at character ${start + 1 + offset}, which is not a base64 character`);
      }
    }

    const data = content.replace(/=+$/, '');
    const padding = content.length - data.length;
    if (data.includes('=')) {
      throw this.malformed(`has '=' inside the Byte Sequence at character ${start}, where only padding at its end may be`);
    }
    // One character left over carries 6 bits, less than a byte, so no base64 encoder writes it.
    if (data.length % 4 === 1 || padding > 2 || (padding > 0 && content.length % 4 !== 0)) {
      throw this.malformed(`has a Byte Sequence at character ${start} whose length or padding is not valid base64`);
    }

    this.index = end + 1;
    return Buffer.from(data, 'base64');
  }

  /** Reads parameters, `;key` or `;key=bare-item` repeated (RFC 8941 section 4.2.3.2), and drops their values. */
  readParameters(): void {
    while (this.next() === ';') {
      this.index++;
      this.skipSpaces();
      this.readKey();
      if (this.next() === '=') {
        this.index++;
        this.readBareItem();
      }
    }
  }

  readKey(): void {
    if (!KEY_FIRST_CHARACTER.test(this.next())) {
      throw this.malformed(`has a parameter key starting with '${this.next()}' at character ${this.index}, where a lower-case letter or '*' must be`);
    }
    this.index++;
    while (KEY_CHARACTER.test(this.next())) {
      this.index++;
    }
  }

  /** Reads a bare item (RFC 8941 section 4.2.3.1, with RFC 9651's Date and Display String) and drops it. */
  readBareItem(): void {
    const first = this.next();
    if (first === '-' || DIGIT.test(first)) {
      this.readNumber();
    } else if (first === '"') {
      this.readString();
    } else if (first === '*' || ALPHA.test(first)) {
      this.readToken();
    } else if (first === ':') {
      this.readByteSequence();
    } else if (first === '?') {
      this.readBoolean();
    } else if (first === '@') {
      this.index++;
      if (this.readNumber() === 'decimal') {
        throw this.malformed(`has a Date parameter with a fraction before character ${this.index}`);
      }
    } else if (first === '%') {
      this.readDisplayString();
    } else {
      throw this.malformed(`has a parameter value starting with '${first}' at character ${this.index}, which starts no Structured Field type`);
    }
  }

  /** Reads an Integer of at most 15 digits, or a Decimal of at most 12 digits, '.', and 1 to 3 digits (RFC 8941 section 4.2.4). */
  readNumber(): 'integer' | 'decimal' {
    const start = this.index;
    if (this.next() === '-') {
      this.index++;
    }
    if (!DIGIT.test(this.next())) {
      throw this.malformed(`has a number without digits at character ${start}`);
    }

    let integerDigits = 0;
    while (DIGIT.test(this.next())) {
      this.index++;
      integerDigits++;
    }
    if (this.next() !== '.') {
      if (integerDigits > 15) {
        throw this.malformed(`has an Integer of more than 15 digits at character ${start}`);
      }
      return 'integer';
    }

    this.index++;
    let fractionDigits = 0;
    while (DIGIT.test(this.next())) {
      this.index++;
      fractionDigits++;
    }
    if (integerDigits > 12 || fractionDigits === 0 || fractionDigits > 3) {
      throw this.malformed(`has a Decimal at character ${start} that does not have 1 to 12 digits, '.', and 1 to 3 digits`);
    }
    return 'decimal';
  }

  /** Reads a String (RFC 8941 section 4.2.5): printable ASCII, with `\"` and `\\` as the only escapes. */
  readString(): void {
    const start = this.index;
    this.index++;
    for (;;) {
      const character = this.next();
      if (character === '') {
        throw this.malformed(`has a String at character ${start} without its closing '"'`);
      }
      this.index++;
      if (character === '"') {
        return;
      }
      if (character === '\\') {
        const escaped = this.next();
        if (escaped !== '"' && escaped !== '\\') {
          throw this.malformed(`has an invalid escape in a String at character ${this.index - 1}`);
        }
        this.index++;
      } else if (!isPrintableAscii(character)) {
        throw this.malformed(`has a character that is not printable ASCII in a String at character ${this.index - 1}`);
      }
    }
  }

  readToken(): void {
    this.index++;
    while (TOKEN_CHARACTER.test(this.next())) {
      this.index++;
    }
  }

  readBoolean(): void {
    const value = this.input.charAt(this.index + 1);
    if (value !== '0' && value !== '1') {
      throw this.malformed(`has a Boolean at character ${this.index} that is not '?0' or '?1'`);
    }
    this.index += 2;
  }

  /** Reads a Display String (RFC 9651 section 4.2.10): `%"`, printable ASCII and lower-case `%xx` escapes of UTF-8 bytes, then `"`. */
  readDisplayString(): void {
    const start = this.index;
    if (this.input.charAt(this.index + 1) !== '"') {
      throw this.malformed(`has '%' without '"' at character ${start}`);
    }
    this.index += 2;

    const bytes: number[] = [];
    for (;;) {
      const character = this.next();
      if (character === '') {
        throw this.malformed(`has a Display String at character ${start} without its closing '"'`);
      }
      this.index++;
      if (character === '"') {
        break;
      }
      if (!isPrintableAscii(character)) {
        throw this.malformed(`has a character that is not printable ASCII in a Display String at character ${this.index - 1}`);
      }
      if (character === '%') {
        const hex = this.input.slice(this.index, this.index + 2);
        if (hex.length !== 2 || !LOWER_CASE_HEX.test(hex[0]) || !LOWER_CASE_HEX.test(hex[1])) {
          throw this.malformed(`has an invalid escape in a Display String at character ${this.index - 1}`);
        }
        bytes.push(parseInt(hex, 16));
        this.index += 2;
      } else {
        bytes.push(character.charCodeAt(0));
      }
    }

    try {
      UTF8.decode(Uint8Array.from(bytes));
    } catch {
      throw this.malformed(`has a Display String at character ${start} that is not valid UTF-8`);
    }
  }
}

function isPrintableAscii(character: string): boolean {
  const code = character.charCodeAt(0);
  return code >= 0x20 && code <= 0x7e;
}
