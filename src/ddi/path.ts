/**
 * Parses the request target of a DDI call, `/{tenant}/controller/v1/{controllerId}[/...]`,
 * the way hawkBit matches it, and rejects every form that hawkBit's request
 * firewall (Spring Security's StrictHttpFirewall) rejects or that an upstream
 * could read differently.
 */

import { tenantKey } from '../store/store.js';

/** Tenant and controller id of a DDI request. */
export interface DdiTarget {
  /** Tenant, percent-decoded, as written in the path. */
  tenant: string;
  /** Upper-case tenant, the key hawkBit stores and looks tenants up by. */
  tenantKey: string;
  /** Controller id, percent-decoded; compared exactly. */
  controllerId: string;
}

export type DdiPathResult =
  | { ok: true; target: DdiTarget }
  | { ok: false; reason: 'path_not_ddi' | 'path_not_canonical' | 'controller_id_invalid' | 'tenant_invalid' };

/** hawkBit's `sp_tenant.tenant` column length. */
export const TENANT_MAX_LENGTH = 40;
/** hawkBit's `Target.CONTROLLER_ID_MAX_SIZE`. */
export const CONTROLLER_ID_MAX_LENGTH = 256;
/** Maximum length of a request target this parser reads; longer ones are denied without parsing. */
export const PATH_MAX_BYTES = 8192;

// Encoded characters that StrictHttpFirewall rejects: `/`, `\`, `%`, `.`, `;` and NUL.
const FORBIDDEN_ENCODINGS = /%(2f|5c|25|2e|3b|00)/i;
const PERCENT_TRIPLET = /%[0-9a-f]{2}/gi;
// Whitespace as Java's `\s` (hawkBit's `[\S]*` rule), plus every control character.
const WHITESPACE_OR_CONTROL = /[\u0000-\u0020\u007f-\u009f]/;
const UTF8 = new TextDecoder('utf-8', { fatal: true });
const BACKSLASH = 0x5c;
const SEMICOLON = 0x3b;
const NUMBER_SIGN = 0x23;
const PERCENT_SIGN = 0x25;

/**
 * Parses a request target. Turning `literalShortcut` off makes it read every
 * path segment by segment, the reference reading that the tests compare the
 * shortcut for paths without percent-encoding with.
 */
export function parseDdiPath(rawTarget: string, literalShortcut = true): DdiPathResult {
  if (rawTarget.length > PATH_MAX_BYTES) {
    return { ok: false, reason: 'path_not_canonical' };
  }
  const queryStart = rawTarget.indexOf('?');
  const path = queryStart === -1 ? rawTarget : rawTarget.slice(0, queryStart);
  if (!path.startsWith('/')) {
    return { ok: false, reason: 'path_not_ddi' };
  }

  // Firewall rules that apply to the raw, undecoded path, in one pass: only printable ASCII may appear
  // literally (everything else must be percent-encoded), and `\`, `;` and `#` not at all.
  let percentEncoded = false;
  for (let i = 0; i < path.length; i++) {
    const code = path.charCodeAt(i);
    if (code < 0x21 || code > 0x7e || code === BACKSLASH || code === SEMICOLON || code === NUMBER_SIGN) {
      return { ok: false, reason: 'path_not_canonical' };
    }
    if (code === PERCENT_SIGN) {
      percentEncoded = true;
    }
  }
  if (percentEncoded && FORBIDDEN_ENCODINGS.test(path)) {
    return { ok: false, reason: 'path_not_canonical' };
  }
  if (!percentEncoded && literalShortcut) {
    const result = literalDdiPath(path);
    if (result !== undefined) {
      return result;
    }
  }

  const segments = pathSegments(path);
  // A single trailing slash is accepted and dropped.
  if (segments.length > 1 && segments[segments.length - 1] === '') {
    segments.pop();
  }
  if (segments.length < 4) {
    return { ok: false, reason: 'path_not_ddi' };
  }

  for (const segment of segments) {
    if (segment === '' || segment === '.' || segment === '..') {
      return { ok: false, reason: 'path_not_canonical' };
    }
  }
  // Without a percent sign every segment is its own decoding.
  let decoded = segments;
  if (percentEncoded) {
    decoded = [];
    for (const segment of segments) {
      const value = decodeSegment(segment);
      if (value === undefined) {
        return { ok: false, reason: 'path_not_canonical' };
      }
      decoded.push(value);
    }
  }

  // Literals match exactly, as in hawkBit's case-sensitive AntPathMatcher, and must
  // not be percent-encoded: `/%63ontroller/` would be another resource upstream.
  if (segments[1] !== 'controller' || segments[2] !== 'v1') {
    if (decoded[1].toLowerCase() === 'controller' && decoded[2].toLowerCase() === 'v1') {
      return { ok: false, reason: 'path_not_canonical' };
    }
    return { ok: false, reason: 'path_not_ddi' };
  }

  return identifiersResult(decoded[0], decoded[3], percentEncoded);
}

/** Checks the decoded tenant and controller id against hawkBit's rules and returns the target they name. */
function identifiersResult(tenant: string, controllerId: string, percentEncoded: boolean): DdiPathResult {
  // Literal characters are printable ASCII (checked before), so only decoded ones can be whitespace or control.
  if (exceedsCodePoints(tenant, TENANT_MAX_LENGTH) || (percentEncoded && WHITESPACE_OR_CONTROL.test(tenant))) {
    return { ok: false, reason: 'tenant_invalid' };
  }
  if (exceedsCodePoints(controllerId, CONTROLLER_ID_MAX_LENGTH) || (percentEncoded && WHITESPACE_OR_CONTROL.test(controllerId))) {
    return { ok: false, reason: 'controller_id_invalid' };
  }
  return { ok: true, target: { tenant, tenantKey: tenantKey(tenant), controllerId } };
}

/** The literal segments between tenant and controller id, with their slashes. */
const DDI_LITERALS = 'controller/v1/';

/**
 * Reads the usual DDI path, `/{tenant}/controller/v1/{controllerId}` with
 * literal characters only, without splitting it into segments: a device's
 * poll then costs no array and no slice per segment. Returns undefined for
 * every other form, which the segment-by-segment reading decides, so that
 * each reason keeps its precedence. `path` passed the raw-character rules.
 */
function literalDdiPath(path: string): DdiPathResult | undefined {
  const tenantEnd = path.indexOf('/', 1);
  if (tenantEnd === -1 || !path.startsWith(DDI_LITERALS, tenantEnd + 1)) {
    return undefined;
  }
  const idStart = tenantEnd + 1 + DDI_LITERALS.length;
  const idEnd = path.indexOf('/', idStart);
  const tenant = path.slice(1, tenantEnd);
  const controllerId = idEnd === -1 ? path.slice(idStart) : path.slice(idStart, idEnd);
  if (isEmptyOrDots(tenant) || isEmptyOrDots(controllerId)) {
    return undefined;
  }
  // After the controller id, only a single trailing `/` or segments that are neither empty nor dots.
  if (idEnd !== -1 && idEnd !== path.length - 1) {
    if (path.includes('//', idEnd) || path.includes('/./', idEnd) || path.includes('/../', idEnd) || path.endsWith('/.') || path.endsWith('/..')) {
      return undefined;
    }
  }
  return identifiersResult(tenant, controllerId, false);
}

function isEmptyOrDots(segment: string): boolean {
  return segment === '' || segment === '.' || segment === '..';
}

/**
 * Splits a path after its leading `/` at every `/`. A loop over indexOf, because
 * `slice(1).split('/')` took more than twice as long in a micro-benchmark on Node.js 20.
 */
function pathSegments(path: string): string[] {
  const segments: string[] = [];
  let start = 1;
  for (;;) {
    const end = path.indexOf('/', start);
    if (end === -1) {
      segments.push(path.slice(start));
      return segments;
    }
    segments.push(path.slice(start, end));
    start = end + 1;
  }
}

/**
 * Checks whether a string has more than `max` code points. A string never has more code points than UTF-16
 * units, so the count, which walks the string, runs only for strings longer than `max` units.
 */
function exceedsCodePoints(value: string, max: number): boolean {
  if (value.length <= max) {
    return false;
  }
  let count = 0;
  for (const _codePoint of value) {
    if (++count > max) {
      return true;
    }
  }
  return false;
}

/**
 * Percent-decodes one segment once, as UTF-8, like Spring's `UriUtils.decode`:
 * `+` stays `+`. Returns undefined for a stray `%` or bytes that are not UTF-8.
 */
function decodeSegment(segment: string): string | undefined {
  if (!segment.includes('%')) {
    return segment;
  }
  const stripped = segment.replace(PERCENT_TRIPLET, '');
  if (stripped.includes('%')) {
    return undefined;
  }
  const bytes: number[] = [];
  for (let i = 0; i < segment.length; i++) {
    if (segment[i] === '%') {
      bytes.push(parseInt(segment.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      bytes.push(segment.charCodeAt(i));
    }
  }
  try {
    return UTF8.decode(Uint8Array.from(bytes));
  } catch {
    return undefined;
  }
}
