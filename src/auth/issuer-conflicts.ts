import { createHash } from 'node:crypto';
import { parseCertificate } from '../x509/index.js';

/** What a tenant trusts for the certificate method. */
export interface TenantTrust {
  name: string;
  /** Entries of `authentication.header.authority`, normalised. */
  headerAuthority: readonly string[];
  pinnedCaPems: readonly string[];
}

export interface IssuerHashConflict {
  issuerHash: string;
  tenants: [string, string];
}

/**
 * Finds pairs of tenants that both trust an issuer hash while pinning CAs
 * with that subject hash but different keys. hawkBit's rule trusts the name
 * hash alone, so without pinning a device of one tenant could pass as a
 * device of the other; such pairs deserve an operator's look.
 */
export function findIssuerHashConflicts(tenants: readonly TenantTrust[]): IssuerHashConflict[] {
  // issuer hash -> tenant -> fingerprints of the public keys pinned for it
  const keysByHash = new Map<string, Map<string, Set<string>>>();
  for (const tenant of tenants) {
    for (const pem of tenant.pinnedCaPems) {
      const ca = parseCertificate(pem);
      if (!tenant.headerAuthority.includes(ca.subjectHash)) {
        continue;
      }
      const spki = ca.x509.publicKey.export({ type: 'spki', format: 'der' });
      const keyId = createHash('sha256').update(spki).digest('hex');
      const byTenant = keysByHash.get(ca.subjectHash) ?? new Map<string, Set<string>>();
      const keys = byTenant.get(tenant.name) ?? new Set<string>();
      keys.add(keyId);
      byTenant.set(tenant.name, keys);
      keysByHash.set(ca.subjectHash, byTenant);
    }
  }

  const conflicts: IssuerHashConflict[] = [];
  for (const [issuerHash, byTenant] of keysByHash) {
    const entries = [...byTenant.entries()].sort(([a], [b]) => a.localeCompare(b));
    for (let i = 0; i < entries.length; i++) {
      for (let j = i + 1; j < entries.length; j++) {
        const [first, firstKeys] = entries[i];
        const [second, secondKeys] = entries[j];
        const same = firstKeys.size === secondKeys.size && [...firstKeys].every((key) => secondKeys.has(key));
        if (!same) {
          conflicts.push({ issuerHash, tenants: [first, second] });
        }
      }
    }
  }
  return conflicts;
}
