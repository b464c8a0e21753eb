import type { RequestHeaders } from './request.js';

/** The `Authorization` header of a request, parsed as RFC 9110 section 11.4 describes. */
export type AuthorizationHeader =
  | { kind: 'absent' }
  /** `scheme` is lower-cased, because schemes compare case-insensitively. */
  | { kind: 'credentials'; scheme: string; credential: string }
  | { kind: 'invalid'; reason: 'authorization_malformed' | 'authorization_repeated' };

/** Longest Authorization value parsed; hawkBit tokens are at most 128 characters. */
export const AUTHORIZATION_MAX_LENGTH = 4096;

const SCHEME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const TOKEN68 = /^[A-Za-z0-9\-._~+/]+=*$/;

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
  if (!SCHEME.test(scheme) || !TOKEN68.test(credential)) {
    return { kind: 'invalid', reason: 'authorization_malformed' };
  }
  return { kind: 'credentials', scheme: lowerCaseScheme(scheme), credential };
}

/**
 * Returns the scheme in lower case. The two spellings in hawkBit's documentation
 * return constants, because toLowerCase makes a new string on every Check. Comparing
 * with them cost less than a map lookup (Node.js 20).
 */
function lowerCaseScheme(scheme: string): string {
  if (scheme === 'TargetToken') {
    return 'targettoken';
  }
  return scheme === 'GatewayToken' ? 'gatewaytoken' : scheme.toLowerCase();
}

const SPACE = 0x20;
const TAB = 0x09;

function isOptionalWhitespace(code: number): boolean {
  return code === SPACE || code === TAB;
}
