import { TENANT_CONFIG_KEYS } from '../config/load.js';
import type { TenantSettings } from './store.js';

/**
 * Splits `authentication.header.authority` into trusted entries: split on `,`
 * or `;`, trimmed, lower-cased, colons removed (so `AE:11:F5` fingerprints
 * match), empty entries dropped.
 */
export function parseAuthorityList(value: string): string[] {
  return value
    .split(/[;,]/)
    .map((entry) => entry.trim().toLowerCase().replace(/:/g, ''))
    .filter((entry) => entry !== '');
}

/** Lower-case hex without colons, the form fingerprints are compared in. */
export function normalizeFingerprint(fingerprint: string): string {
  return fingerprint.trim().toLowerCase().replace(/:/g, '');
}

function flag(value: string | boolean | undefined): boolean {
  return value === true || (typeof value === 'string' && value.toLowerCase() === 'true');
}

/**
 * Builds tenant settings from hawkBit's tenant configuration keys. The gateway
 * key arrives already digested, so no plain secret is kept in memory longer
 * than the loader needs it.
 */
export function tenantSettingsFrom(
  name: string,
  config: Readonly<Record<string, string | boolean | undefined>>,
  gatewayKeyDigest: Buffer | undefined,
  certificates: { pinnedCaPems?: readonly string[]; revoked?: Iterable<string> } = {},
): TenantSettings {
  const authority = config[TENANT_CONFIG_KEYS.headerAuthority];
  return {
    pinnedCaPems: certificates.pinnedCaPems ?? [],
    revokedCertificates: new Set([...(certificates.revoked ?? [])].map((fingerprint) => normalizeFingerprint(fingerprint))),
    name,
    targetTokenEnabled: flag(config[TENANT_CONFIG_KEYS.targetTokenEnabled]),
    gatewayTokenEnabled: flag(config[TENANT_CONFIG_KEYS.gatewayTokenEnabled]),
    gatewayKeyDigest,
    headerEnabled: flag(config[TENANT_CONFIG_KEYS.headerEnabled]),
    headerAuthority: typeof authority === 'string' ? parseAuthorityList(authority) : [],
  };
}
