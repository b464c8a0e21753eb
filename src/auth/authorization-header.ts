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

export function parseAuthorization(headers: RequestHeaders): AuthorizationHeader {
  const values = headers.all('authorization');
  if (values.length === 0) {
    return { kind: 'absent' };
  }
  if (values.length > 1) {
    return { kind: 'invalid', reason: 'authorization_repeated' };
  }
  const value = values[0];
  if (value.length > AUTHORIZATION_MAX_LENGTH) {
    return { kind: 'invalid', reason: 'authorization_malformed' };
  }
  // token68 has no comma, so a comma means Envoy joined two Authorization headers.
  if (value.includes(',')) {
    return { kind: 'invalid', reason: 'authorization_repeated' };
  }
  const trimmed = value.replace(/^[ \t]+|[ \t]+$/g, '');
  const separator = trimmed.indexOf(' ');
  if (separator <= 0) {
    return { kind: 'invalid', reason: 'authorization_malformed' };
  }
  const scheme = trimmed.slice(0, separator);
  const credential = trimmed.slice(separator).replace(/^ +/, '');
  if (!SCHEME.test(scheme) || !TOKEN68.test(credential)) {
    return { kind: 'invalid', reason: 'authorization_malformed' };
  }
  return { kind: 'credentials', scheme: scheme.toLowerCase(), credential };
}
