import type { ServiceConfig } from '../config/schema.js';
import { TENANT_CONFIG_KEYS } from '../config/load.js';
import type { StoreHealth, TargetCredentials, TenantSettings, TenantStore } from './store.js';
import { tenantKey } from './store.js';
import { tenantSettingsFrom } from './tenant-settings.js';
import { DIGEST_BYTES, type TokenDigester } from './token-digest.js';

/**
 * The embedded store: tenants and targets from the configuration file, held
 * in memory as digests. Always serving.
 */
export class MemoryStore implements TenantStore {
  readonly #tenants = new Map<string, TenantSettings>();
  readonly #targets = new Map<string, Map<string, TargetCredentials>>();

  constructor(tenants: ServiceConfig['tenants'], digester: TokenDigester) {
    for (const [name, entry] of Object.entries(tenants)) {
      const key = tenantKey(name);
      const gatewayKey = entry.config[TENANT_CONFIG_KEYS.gatewayTokenKey];
      const gatewayKeyDigest = typeof gatewayKey === 'string' && gatewayKey !== '' ? digester.digest(gatewayKey) : undefined;
      this.#tenants.set(
        key,
        tenantSettingsFrom(name, entry.config, gatewayKeyDigest, { pinnedCaPems: entry.caCertificates, revoked: entry.revokedCertificates }),
      );

      const targets = new Map<string, TargetCredentials>();
      // One buffer for the tenant's digests: a Buffer of its own per target costs start-up time and memory with many targets.
      const digests = Buffer.allocUnsafe(entry.targets.size * DIGEST_BYTES);
      let slot = 0;
      for (const [controllerId, target] of entry.targets) {
        let securityTokenDigest: Buffer | undefined;
        if (target.securityToken) {
          digester.digestInto(target.securityToken, digests, slot);
          securityTokenDigest = digests.subarray(slot, slot + DIGEST_BYTES);
        } else if (target.securityTokenSha256) {
          digests.write(target.securityTokenSha256, slot, DIGEST_BYTES, 'hex');
          securityTokenDigest = digests.subarray(slot, slot + DIGEST_BYTES);
        }
        targets.set(controllerId, { securityTokenDigest });
        slot += DIGEST_BYTES;
      }
      this.#targets.set(key, targets);
    }
  }

  get tenantCount(): number {
    return this.#tenants.size;
  }

  getTenant(key: string): TenantSettings | undefined {
    return this.#tenants.get(key);
  }

  getTarget(key: string, controllerId: string): TargetCredentials | undefined {
    return this.#targets.get(key)?.get(controllerId);
  }

  health(): StoreHealth {
    return 'serving';
  }

  onHealthChange(): void {
    // The embedded store never changes health.
  }

  async close(): Promise<void> {}
}
