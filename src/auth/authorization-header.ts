import type { RequestHeaders } from './request.js';

/** The `Authorization` header of a request, parsed as RFC 9110 section 11.4 describes. */
export type AuthorizationHeader =
  | { kind: 'absent' }
  /** `scheme` is lower-cased, because schemes compare case-insensitively. */
  | { kind: 'credentials'; scheme: string; credential: string }
  | { kind: 'invalid'; reason: 'authorization_malformed' | 'authorization_repeated' };

/** Longest Authorization value parsed; hawkBit tokens are at most 128 characters. */
export const AUTHORIZATION_MAX_LENGTH = 4096;

/** RFC 9110 `tchar`, the characters of a scheme. */
const SCHEME_CHARACTERS = characterTable("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz");
/** The characters of a `token68` before its trailing `=` padding. */
const TOKEN68_CHARACTERS = characterTable('-._~+/0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz');
const EQUALS = 0x3d;

const ABSENT: AuthorizationHeader = Object.freeze({ kind: 'absent' });

export function parseAuthorization(headers: RequestHeaders): AuthorizationHeader {
  const value = headers.single('authorization');
  if (value === undefined) {
    return ABSENT;
  }
  if (value === null) {
    return { kind: 'invalid', reason: 'authorization_repeated' };
  }
  if (value.length > AUTHORIZATION_MAX_LENGTH) {
    return { kind: 'invalid', reason: 'authorization_malformed' };
  }
  // token68 has no comma, so a comma means Envoy joined two Authorization headers.
  if (value.includes(',')) {
    return { kind: 'invalid', reason: 'authorization_repeated' };
  }
  // Optional whitespace (space or tab) around the value is not part of it.
  let start = 0;
  let end = value.length;
  while (start < end && isOptionalWhitespace(value.charCodeAt(start))) {
    start++;
  }
  while (end > start && isOptionalWhitespace(value.charCodeAt(end - 1))) {
    end--;
  }
  const separator = value.indexOf(' ', start);
  if (separator <= start || separator >= end) {
    return { kind: 'invalid', reason: 'authorization_malformed' };
  }
  let credentialStart = separator + 1;
  while (credentialStart < end && value.charCodeAt(credentialStart) === SPACE) {
    credentialStart++;
  }
  const scheme = value.slice(start, separator);
  const credential = value.slice(credentialStart, end);
  if (!isScheme(scheme) || !isToken68(credential)) {
    return { kind: 'invalid', reason: 'authorization_malformed' };
  }
  return { kind: 'credentials', scheme: scheme.toLowerCase(), credential };
}

const SPACE = 0x20;
const TAB = 0x09;

function isOptionalWhitespace(code: number): boolean {
  return code === SPACE || code === TAB;
}

/** Returns a table of the ASCII codes in `characters`, so a check costs one read per character instead of a regular expression test. */
function characterTable(characters: string): Uint8Array {
  const table = new Uint8Array(128);
  for (let index = 0; index < characters.length; index++) {
    table[characters.charCodeAt(index)] = 1;
  }
  return table;
}

/** Returns whether a table has this code; codes outside ASCII are in none. */
function inTable(table: Uint8Array, code: number): boolean {
  return code < 128 && table[code] === 1;
}

/** `1*tchar` */
function isScheme(text: string): boolean {
  if (text.length === 0) {
    return false;
  }
  for (let index = 0; index < text.length; index++) {
    if (!inTable(SCHEME_CHARACTERS, text.charCodeAt(index))) {
      return false;
    }
  }
  return true;
}

/** `token68 = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="` */
function isToken68(text: string): boolean {
  let index = 0;
  while (index < text.length && inTable(TOKEN68_CHARACTERS, text.charCodeAt(index))) {
    index++;
  }
  if (index === 0) {
    return false;
  }
  while (index < text.length && text.charCodeAt(index) === EQUALS) {
    index++;
  }
  return index === text.length;
}
