import { createHash } from 'node:crypto';
import { parseCertificate } from '../x509/index.js';

/** A tenant's trust settings for the certificate method. */
export interface TenantTrust {
  name: string;
  /** Entries of `authentication.header.authority`, normalised. */
  headerAuthority: readonly string[];
  pinnedCaPems: readonly string[];
}

export interface IssuerHashConflict {
  issuerHash: string;
  tenants: [string, string];
  /** Both tenants pin CAs for the hash, with different keys; false when one or both do not pin. */
  pinned: boolean;
}

/**
 * Finds pairs of tenants that both list one issuer hash in their authority
 * lists, unless both pin CAs with that subject hash and the same keys. hawkBit
 * trusts the name hash alone, so in every other case a device certificate of
 * one tenant could pass as a device of the other when the CN matches.
 */
export function findIssuerHashConflicts(tenants: readonly TenantTrust[]): IssuerHashConflict[] {
  // issuer hash -> tenant -> fingerprints of the public keys pinned for it (empty: not pinned)
  const keysByHash = new Map<string, Map<string, Set<string>>>();
  for (const tenant of tenants) {
    const pinnedKeys = new Map<string, Set<string>>();
    for (const pem of tenant.pinnedCaPems) {
      const ca = parseCertificate(pem);
      const spki = ca.x509.publicKey.export({ type: 'spki', format: 'der' });
      const keys = pinnedKeys.get(ca.subjectHash) ?? new Set<string>();
      keys.add(createHash('sha256').update(spki).digest('hex'));
      pinnedKeys.set(ca.subjectHash, keys);
    }
    for (const entry of tenant.headerAuthority) {
      // Only 8-hex entries are name hashes; fingerprints name one CA certificate exactly.
      if (!/^[0-9a-f]{8}$/.test(entry)) {
        continue;
      }
      const byTenant = keysByHash.get(entry) ?? new Map<string, Set<string>>();
      byTenant.set(tenant.name, pinnedKeys.get(entry) ?? new Set<string>());
      keysByHash.set(entry, byTenant);
    }
  }

  const conflicts: IssuerHashConflict[] = [];
  for (const [issuerHash, byTenant] of keysByHash) {
    const entries = [...byTenant.entries()].sort(([a], [b]) => a.localeCompare(b));
    for (let i = 0; i < entries.length; i++) {
      for (let j = i + 1; j < entries.length; j++) {
        const [first, firstKeys] = entries[i];
        const [second, secondKeys] = entries[j];
        const samePinnedKeys = firstKeys.size > 0 && firstKeys.size === secondKeys.size && [...firstKeys].every((key) => secondKeys.has(key));
        if (!samePinnedKeys) {
          conflicts.push({ issuerHash, tenants: [first, second], pinned: firstKeys.size > 0 && secondKeys.size > 0 });
        }
      }
    }
  }
  return conflicts;
}
