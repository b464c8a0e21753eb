import type { ParsedCertificate } from './certificate.js';

/** Maximum number of CA certificates `buildIssuingPath` returns. Device PKIs usually have one to three. */
export const MAX_ISSUING_PATH_LENGTH = 10;

/**
 * Returns true if `ca` issued `certificate`: `ca` has basicConstraints cA=TRUE, its subject equals the
 * certificate's issuer under OpenSSL's canonical comparison, and its public key verifies the
 * certificate's signature.
 * NOTE: OpenSSL's verifier also accepts a self-signed X.509 v1 root without basicConstraints as a
 * CA. This check does not, so such a root never joins a path.
 */
export function isIssuerOf(ca: ParsedCertificate, certificate: ParsedCertificate): boolean {
  if (!ca.isCa || !ca.subjectNameCanonical.equals(certificate.issuerNameCanonical)) {
    return false;
  }
  try {
    return certificate.x509.verify(ca.x509.publicKey);
  } catch {
    // A key type that cannot check this signature algorithm means the CA did not issue it.
    return false;
  }
}

/**
 * Returns the CA certificates above `leaf`, nearest first, taken from `chain` in its order.
 * Each one counts only if it issued the previous certificate (see `isIssuerOf`), and the walk
 * stops at the first that did not, because a client may append any CA certificate to its
 * chain. Copies of the leaf at the start of `chain` are skipped, as TLS and XFCC `Chain`
 * both start with the leaf. The leaf is never part of the result. The walk also stops at a
 * certificate already on the path (a self-signed root reached twice) and after
 * `MAX_ISSUING_PATH_LENGTH` certificates.
 */
export function buildIssuingPath(leaf: ParsedCertificate, chain: readonly ParsedCertificate[]): ParsedCertificate[] {
  const path: ParsedCertificate[] = [];
  const seen = new Set<string>([leaf.sha256]);

  let index = 0;
  while (index < chain.length && chain[index]!.sha256 === leaf.sha256) {
    index++;
  }

  let current = leaf;
  for (; index < chain.length && path.length < MAX_ISSUING_PATH_LENGTH; index++) {
    const candidate = chain[index]!;
    if (seen.has(candidate.sha256) || !isIssuerOf(candidate, current)) {
      break;
    }
    path.push(candidate);
    seen.add(candidate.sha256);
    current = candidate;
  }
  return path;
}
