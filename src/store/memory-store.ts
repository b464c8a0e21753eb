import type { ServiceConfig } from '../config/schema.js';
import { TENANT_CONFIG_KEYS } from '../config/load.js';
import type { StoreHealth, TargetCredentials, TenantSettings, TenantStore } from './store.js';
import { tenantKey } from './store.js';
import { tenantSettingsFrom } from './tenant-settings.js';
import type { TokenDigester } from './token-digest.js';

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
      for (const [controllerId, target] of Object.entries(entry.targets)) {
        let securityTokenDigest: Buffer | undefined;
        if (target.securityToken) {
          securityTokenDigest = digester.digest(target.securityToken);
        } else if (target.securityTokenSha256) {
          securityTokenDigest = Buffer.from(target.securityTokenSha256, 'hex');
        }
        targets.set(controllerId, { securityTokenDigest });
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
