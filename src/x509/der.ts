import { invalidCertificate } from './errors.js';

/** Identifier octets used by this module (universal class unless stated). */
export const DerTag = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  OBJECT_IDENTIFIER: 0x06,
  UTF8_STRING: 0x0c,
  NUMERIC_STRING: 0x12,
  PRINTABLE_STRING: 0x13,
  T61_STRING: 0x14,
  IA5_STRING: 0x16,
  VISIBLE_STRING: 0x1a,
  UNIVERSAL_STRING: 0x1c,
  BMP_STRING: 0x1e,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

/** One DER element: offsets into the buffer it was read from. */
export interface DerElement {
  /** The single identifier octet (class, constructed bit and tag number). */
  readonly tag: number;
  /** Offset of the identifier octet. */
  readonly start: number;
  /** Offset of the first content octet. */
  readonly contentStart: number;
  /** Offset just past the last content octet. */
  readonly end: number;
}

const CONSTRUCTED_BIT = 0x20;
const HIGH_TAG_NUMBER = 0x1f;
const INDEFINITE_LENGTH = 0x80;
/** Four length octets allow 4 GiB, far more than any input this module accepts. */
const MAX_LENGTH_OCTETS = 4;

/**
 * Reads the element that starts at `offset` and must end at or before `limit`.
 * Accepts DER only: low tag numbers, definite and minimal lengths. Throws `CertificateError`.
 */
export function readElement(buffer: Buffer, offset: number, limit: number = buffer.length): DerElement {
  if (offset + 2 > limit) {
    throw invalidCertificate(`DER element at offset ${offset} is truncated`);
  }

  const tag = buffer[offset]!;
  if ((tag & HIGH_TAG_NUMBER) === HIGH_TAG_NUMBER) {
    throw invalidCertificate(`DER element at offset ${offset} uses a high tag number, which X.509 never needs`);
  }

  const firstLengthOctet = buffer[offset + 1]!;
  let contentStart = offset + 2;
  let length: number;

  if (firstLengthOctet < INDEFINITE_LENGTH) {
    length = firstLengthOctet;
  } else if (firstLengthOctet === INDEFINITE_LENGTH) {
    throw invalidCertificate(`DER element at offset ${offset} uses an indefinite length, which DER forbids`);
  } else {
    const lengthOctets = firstLengthOctet & 0x7f;
    if (lengthOctets > MAX_LENGTH_OCTETS || contentStart + lengthOctets > limit) {
      throw invalidCertificate(`DER length at offset ${offset} is truncated or too large`);
    }

    length = 0;
    for (let i = 0; i < lengthOctets; i++) {
      length = length * 256 + buffer[contentStart + i]!;
    }
    contentStart += lengthOctets;

    // DER requires the shortest form: no leading zero octet, and the long form only from 128 on.
    if (buffer[offset + 2] === 0 || length < INDEFINITE_LENGTH) {
      throw invalidCertificate(`DER length at offset ${offset} is not minimally encoded`);
    }
  }

  const end = contentStart + length;
  if (end > limit) {
    throw invalidCertificate(`DER element at offset ${offset} claims ${length} bytes but only ${limit - contentStart} remain`);
  }

  return { tag, start: offset, contentStart, end };
}

/** Reads the elements inside a constructed element, which must fill its content exactly. */
export function readChildren(buffer: Buffer, parent: DerElement): DerElement[] {
  if ((parent.tag & CONSTRUCTED_BIT) === 0) {
    throw invalidCertificate(`DER element at offset ${parent.start} is primitive where a constructed one is required`);
  }

  const children: DerElement[] = [];
  let offset = parent.contentStart;
  while (offset < parent.end) {
    const child = readElement(buffer, offset, parent.end);
    children.push(child);
    offset = child.end;
  }
  return children;
}

/** Returns the element, or throws `CertificateError` naming `description` if it is missing or has another tag. */
export function expectTag(element: DerElement | undefined, tag: number, description: string): DerElement {
  if (element === undefined) {
    throw invalidCertificate(`${description} is missing`);
  }
  if (element.tag !== tag) {
    throw invalidCertificate(
      `${description} has tag 0x${element.tag.toString(16).padStart(2, '0')}, expected 0x${tag.toString(16).padStart(2, '0')}`,
    );
  }
  return element;
}

export function contentOf(buffer: Buffer, element: DerElement): Buffer {
  return buffer.subarray(element.contentStart, element.end);
}

export function encodingOf(buffer: Buffer, element: DerElement): Buffer {
  return buffer.subarray(element.start, element.end);
}

/** Encodes one element with a minimal definite length. */
export function encodeElement(tag: number, content: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag]), encodeLength(content.length), content]);
}

function encodeLength(length: number): Buffer {
  if (length < INDEFINITE_LENGTH) {
    return Buffer.from([length]);
  }
  const octets: number[] = [];
  for (let rest = length; rest > 0; rest = Math.floor(rest / 256)) {
    octets.unshift(rest % 256);
  }
  return Buffer.from([INDEFINITE_LENGTH | octets.length, ...octets]);
}

/** Decodes OBJECT IDENTIFIER content octets to dotted form, e.g. `2.5.4.3`. */
export function decodeObjectIdentifier(content: Buffer): string {
  if (content.length === 0) {
    throw invalidCertificate('OBJECT IDENTIFIER is empty');
  }

  const arcs: string[] = [];
  let value = 0n;
  let startOfArc = true;
  for (const octet of content) {
    if (startOfArc && octet === 0x80) {
      throw invalidCertificate('OBJECT IDENTIFIER arc has a leading zero octet');
    }
    value = (value << 7n) | BigInt(octet & 0x7f);
    startOfArc = (octet & 0x80) === 0;
    if (!startOfArc) {
      continue;
    }

    if (arcs.length === 0) {
      // The first subidentifier packs the first two arcs as 40 * first + second, with first at most 2.
      let first = value / 40n;
      if (first > 2n) {
        first = 2n;
      }
      arcs.push(first.toString(), (value - first * 40n).toString());
    } else {
      arcs.push(value.toString());
    }
    value = 0n;
  }

  if (!startOfArc) {
    throw invalidCertificate('OBJECT IDENTIFIER ends inside an arc');
  }
  return arcs.join('.');
}
