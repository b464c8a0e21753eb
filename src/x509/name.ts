import {
  contentOf,
  decodeObjectIdentifier,
  DerTag,
  encodingOf,
  expectTag,
  readChildren,
  readElement,
} from './der.js';
import { invalidCertificate } from './errors.js';

/** One AttributeTypeAndValue of an X.509 Name, as read from its DER encoding. */
export interface NameAttribute {
  /** Dotted object identifier of the attribute type, e.g. `2.5.4.3` for commonName. */
  readonly oid: string;
  /** Content octets of the type's OBJECT IDENTIFIER. */
  readonly oidContent: Buffer;
  /** Identifier octet of the value, e.g. 0x0c for UTF8String. */
  readonly valueTag: number;
  /** Content octets of the value. */
  readonly valueContent: Buffer;
  /** The value's complete DER encoding (identifier, length and content). */
  readonly valueEncoding: Buffer;
}

/** One RelativeDistinguishedName: usually one attribute, several for a multi-valued RDN. */
export type NameRdn = readonly NameAttribute[];

export const COMMON_NAME_OID = '2.5.4.3';

/**
 * Reads a DER `Name` (SEQUENCE OF SET OF AttributeTypeAndValue) into RDNs in certificate order.
 * An empty RDN, which RFC 5280 forbids but OpenSSL 3.0 loads, becomes an empty array.
 * Throws `CertificateError` if the encoding is malformed.
 */
export function readName(nameDer: Buffer): NameRdn[] {
  const name = expectTag(readElement(nameDer, 0), DerTag.SEQUENCE, 'Name');
  if (name.end !== nameDer.length) {
    throw invalidCertificate('Name has trailing bytes after its SEQUENCE');
  }

  return readChildren(nameDer, name).map((rdnElement, rdnIndex) => {
    const rdn = expectTag(rdnElement, DerTag.SET, `RDN ${rdnIndex + 1} of Name`);
    return readChildren(nameDer, rdn).map((attributeElement) => {
      const attribute = expectTag(attributeElement, DerTag.SEQUENCE, `AttributeTypeAndValue in RDN ${rdnIndex + 1}`);
      const [typeElement, valueElement, ...rest] = readChildren(nameDer, attribute);
      const type = expectTag(typeElement, DerTag.OBJECT_IDENTIFIER, `attribute type in RDN ${rdnIndex + 1}`);
      if (valueElement === undefined || rest.length > 0) {
        throw invalidCertificate(`AttributeTypeAndValue in RDN ${rdnIndex + 1} must contain exactly a type and a value`);
      }

      const oidContent = contentOf(nameDer, type);
      return {
        oid: decodeObjectIdentifier(oidContent),
        oidContent,
        valueTag: valueElement.tag,
        valueContent: contentOf(nameDer, valueElement),
        valueEncoding: encodingOf(nameDer, valueElement),
      };
    });
  });
}

const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const MAX_UNICODE_CODE_POINT = 0x10ffff;

function isSurrogate(codePoint: number): boolean {
  return codePoint >= 0xd800 && codePoint <= 0xdfff;
}

/**
 * Decodes a directory string value to text, or returns undefined for a type that is not a
 * character string. The conversions match OpenSSL's `ASN1_STRING_to_UTF8`: the one-byte
 * types (PrintableString, NumericString, T61String, IA5String, VisibleString) are read as
 * ISO-8859-1, BMPString as UCS-2BE and UniversalString as UCS-4BE. Throws `CertificateError`
 * for invalid UTF-8, a length that does not fit the character width, or a surrogate or
 * out-of-range code point, all of which make OpenSSL reject the certificate.
 */
export function decodeDirectoryString(tag: number, content: Buffer): string | undefined {
  switch (tag) {
    case DerTag.UTF8_STRING:
      try {
        return STRICT_UTF8.decode(content);
      } catch {
        throw invalidCertificate('UTF8String in Name is not valid UTF-8');
      }

    case DerTag.PRINTABLE_STRING:
    case DerTag.NUMERIC_STRING:
    case DerTag.T61_STRING:
    case DerTag.IA5_STRING:
    case DerTag.VISIBLE_STRING:
      return content.toString('latin1');

    case DerTag.BMP_STRING:
      return decodeFixedWidth(content, 2, 'BMPString');

    case DerTag.UNIVERSAL_STRING:
      return decodeFixedWidth(content, 4, 'UniversalString');

    default:
      return undefined;
  }
}

function decodeFixedWidth(content: Buffer, width: 2 | 4, typeName: string): string {
  if (content.length % width !== 0) {
    throw invalidCertificate(`${typeName} in Name has ${content.length} bytes, not a multiple of ${width}`);
  }

  const codePoints: number[] = [];
  for (let offset = 0; offset < content.length; offset += width) {
    const codePoint = width === 2 ? content.readUInt16BE(offset) : content.readUInt32BE(offset);
    if (isSurrogate(codePoint) || codePoint > MAX_UNICODE_CODE_POINT) {
      throw invalidCertificate(`${typeName} in Name contains the invalid code point U+${codePoint.toString(16).toUpperCase()}`);
    }
    codePoints.push(codePoint);
  }
  return String.fromCodePoint(...codePoints);
}

/**
 * Returns every commonName value of the name, in certificate order, including those inside
 * multi-valued RDNs. Throws `CertificateError` if a commonName is not a character string.
 */
export function commonNamesOf(rdns: readonly NameRdn[]): string[] {
  const names: string[] = [];
  for (const rdn of rdns) {
    for (const attribute of rdn) {
      if (attribute.oid !== COMMON_NAME_OID) {
        continue;
      }
      const text = decodeDirectoryString(attribute.valueTag, attribute.valueContent);
      if (text === undefined) {
        throw invalidCertificate(
          `commonName has ASN.1 tag 0x${attribute.valueTag.toString(16).padStart(2, '0')}, which is not a character string`,
        );
      }
      names.push(text);
    }
  }
  return names;
}

/** Short names for the attribute types that device and CA certificates commonly use. */
const SHORT_NAMES: ReadonlyMap<string, string> = new Map([
  ['2.5.4.3', 'CN'],
  ['2.5.4.5', 'serialNumber'],
  ['2.5.4.6', 'C'],
  ['2.5.4.7', 'L'],
  ['2.5.4.8', 'ST'],
  ['2.5.4.9', 'street'],
  ['2.5.4.10', 'O'],
  ['2.5.4.11', 'OU'],
  ['2.5.4.12', 'title'],
  ['2.5.4.46', 'dnQualifier'],
  ['0.9.2342.19200300.100.1.1', 'UID'],
  ['0.9.2342.19200300.100.1.25', 'DC'],
  ['1.2.840.113549.1.9.1', 'emailAddress'],
]);

/**
 * Formats a name for people to read, in certificate order, e.g. `C=DE, O=Example IoT, CN=Device CA`,
 * with ` + ` joining the attributes of a multi-valued RDN. Control characters become `\XX` hex
 * escapes and `\`, `,`, `+` and `"` get a backslash, so the result fits on one line.
 * Compare names by their canonical encoding, never by this text.
 */
export function formatName(rdns: readonly NameRdn[]): string {
  return rdns
    .filter((rdn) => rdn.length > 0)
    .map((rdn) => rdn.map((attribute) => `${SHORT_NAMES.get(attribute.oid) ?? attribute.oid}=${formatValue(attribute)}`).join(' + '))
    .join(', ');
}

function formatValue(attribute: NameAttribute): string {
  let text: string | undefined;
  try {
    text = decodeDirectoryString(attribute.valueTag, attribute.valueContent);
  } catch {
    text = undefined;
  }
  if (text === undefined) {
    // RFC 4514 form for a value without a string representation: '#' and the hex DER encoding.
    return `#${attribute.valueEncoding.toString('hex')}`;
  }

  return text.replace(/[\\,+"]|[\u0000-\u001f\u007f-\u009f]/g, (character) => {
    const code = character.charCodeAt(0);
    if (code < 0x20 || (code >= 0x7f && code <= 0x9f)) {
      return `\\${code.toString(16).toUpperCase().padStart(2, '0')}`;
    }
    return `\\${character}`;
  });
}
