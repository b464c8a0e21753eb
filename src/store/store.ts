/**
 * The tenant store interface of the Check path. Implementations: the embedded
 * store (tenants from the configuration file) and the Redis store. Nothing on
 * the Check path sees a store's own types.
 */

/** One tenant's authentication settings, read from hawkBit's tenant configuration keys. */
export interface TenantSettings {
  /** Tenant name as configured (hawkBit stores tenants upper-case). */
  name: string;
  /** `authentication.targettoken.enabled` */
  targetTokenEnabled: boolean;
  /** `authentication.gatewaytoken.enabled` */
  gatewayTokenEnabled: boolean;
  /** Digest of `authentication.gatewaytoken.key`; undefined when the key is missing or empty. */
  gatewayKeyDigest: Buffer | undefined;
  /** `authentication.header.enabled` */
  headerEnabled: boolean;
  /**
   * `authentication.header.authority` split on `,` or `;`, each entry trimmed,
   * lower-cased and stripped of colons; empty entries dropped.
   */
  headerAuthority: readonly string[];
  /**
   * PEM certificates of the CAs the tenant pins. When any are set, a device
   * certificate must also verify up to one of them by signature.
   */
  pinnedCaPems: readonly string[];
  /** Lower-case hex SHA-256 fingerprints of revoked device certificates. */
  revokedCertificates: ReadonlySet<string>;
}

export interface TargetCredentials {
  /** Digest of the target's security token; undefined when the target has none. */
  securityTokenDigest: Buffer | undefined;
}

export type StoreHealth = 'serving' | 'not_serving';

/**
 * A value, or a native Promise of it when producing it had to wait, for
 * example for Redis. Callers tell the two apart with `instanceof Promise`.
 */
export type MaybePromise<T> = T | Promise<T>;

/**
 * Applies `next` to a value now, or once its promise fulfils. (A module that
 * exported a function named `then` would itself be awaitable, hence the name.)
 */
export function whenSettled<T, R>(value: MaybePromise<T>, next: (settled: T) => MaybePromise<R>): MaybePromise<R> {
  return value instanceof Promise ? value.then(next) : next(value);
}

export interface TenantStore {
  /**
   * Looks a tenant up by its upper-case key, returning the value itself when it
   * is in memory. Throws or rejects with StoreUnavailableError when it cannot tell.
   */
  getTenant(tenantKey: string): MaybePromise<TenantSettings | undefined>;
  /**
   * Looks a target up by upper-case tenant key and exact controller id,
   * returning the value itself when it is in memory. Throws or rejects with
   * StoreUnavailableError when it cannot tell.
   */
  getTarget(tenantKey: string, controllerId: string): MaybePromise<TargetCredentials | undefined>;
  /** Current health; the service reports NOT_SERVING while this is `not_serving`. */
  health(): StoreHealth;
  /**
   * Lists every tenant with its certificate-method trust settings, for the
   * issuer-hash conflict check. Absent when the configuration file is the
   * source of tenants.
   */
  listTenantTrust?(): Promise<{ name: string; headerAuthority: readonly string[]; pinnedCaPems: readonly string[] }[]>;
  /** Registers a listener called after an admin write changed one tenant or all of them. */
  onTenantsChanged?(listener: () => void): void;
  /** Hits and misses of each in-process cache, by cache name; absent when the store has no cache. */
  cacheStats?(): Record<string, { hits: number; misses: number }>;
  /** Registers a listener for health changes. */
  onHealthChange(listener: (health: StoreHealth) => void): void;
  close(): Promise<void>;
}

/** The store could not complete a lookup, so the Check becomes a 503 deny (fail closed). */
export class StoreUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreUnavailableError';
  }
}

/**
 * Upper-case key under which a tenant is stored and looked up, as hawkBit does. A name
 * that is all ASCII without a lower-case letter, as tenant names mostly are, is returned
 * as it is, because toUpperCase makes a new string on every Check.
 */
export function tenantKey(tenant: string): string {
  for (let index = 0; index < tenant.length; index++) {
    const code = tenant.charCodeAt(index);
    if ((code >= 0x61 && code <= 0x7a) || code > 0x7f) {
      return tenant.toUpperCase();
    }
  }
  return tenant;
}
