import type { DenyReason } from './decision.js';
import { isIssuerOf, type ParsedCertificate } from '../x509/index.js';

/** extendedKeyUsage OIDs that allow TLS client authentication. */
const CLIENT_AUTH_OID = '1.3.6.1.5.5.7.3.2';
const ANY_EXTENDED_KEY_USAGE_OID = '2.5.29.37.0';

/**
 * Checks a device certificate against a tenant's pinned CAs. `path` starts
 * with the leaf and continues with the CAs whose signatures were verified.
 * The certificate is accepted when some certificate on the path is pinned, or
 * was issued by a pinned CA: the OpenSSL name hash selects candidates and the
 * signature decides. Every certificate up to that point, the pinned CA
 * included, must be inside its validity period. The leaf's extendedKeyUsage,
 * if present, must allow client authentication. Returns the reason to deny,
 * or undefined.
 */
export function pinnedPathProblem(
  leaf: ParsedCertificate,
  path: readonly ParsedCertificate[],
  pinned: readonly ParsedCertificate[],
  nowMs: number,
): DenyReason | undefined {
  const usage = leaf.x509.keyUsage;
  if (usage !== undefined && !usage.includes(CLIENT_AUTH_OID) && !usage.includes(ANY_EXTENDED_KEY_USAGE_OID)) {
    return 'certificate_usage_invalid';
  }

  for (const certificate of path) {
    const validity = validityProblem(certificate, nowMs);
    if (validity) {
      return validity;
    }
    if (pinned.some((ca) => ca.sha256 === certificate.sha256)) {
      return undefined;
    }
    const issuers = pinned.filter((ca) => ca.subjectHash === certificate.issuerHash && isIssuerOf(ca, certificate));
    if (issuers.length > 0) {
      return issuers.some((ca) => validityProblem(ca, nowMs) === undefined) ? undefined : validityProblem(issuers[0], nowMs);
    }
  }
  return 'ca_not_pinned';
}

function validityProblem(certificate: ParsedCertificate, nowMs: number): DenyReason | undefined {
  if (nowMs < Date.parse(certificate.x509.validFrom)) {
    return 'certificate_not_yet_valid';
  }
  if (nowMs > Date.parse(certificate.x509.validTo)) {
    return 'certificate_expired';
  }
  return undefined;
}
