import { TENANT_CONFIG_KEYS } from '../config/load.js';
import type { TokenDigester } from './token-digest.js';

/**
 * Key names, value encodings and the layout check of the Redis store.
 * docs/redis-store.md describes the same layout for operators.
 */

/** Version of the key layout below; stored at `<prefix>layout`. */
export const LAYOUT_VERSION = 1;

/** Field of a tenant hash that stores the tenant's name as it was first written (keys are upper-case). */
export const TENANT_NAME_FIELD = 'name';

/**
 * Field of a tenant hash that stores the hex digest of `authentication.gatewaytoken.key`.
 * The plain key is never stored.
 */
export const GATEWAY_KEY_DIGEST_FIELD = `${TENANT_CONFIG_KEYS.gatewayTokenKey}.digest`;

/** Prefix of tenant hash fields `ca:<sha256>` whose value is a pinned CA certificate, PEM. */
export const PINNED_CA_FIELD_PREFIX = 'ca:';

/** Prefix of tenant hash fields `revoked:<sha256>` whose value is the time of revocation (ISO 8601). */
export const REVOKED_FIELD_PREFIX = 'revoked:';

/** hawkBit keys stored in a tenant hash as they are, with "true"/"false" for flags. */
export const PLAIN_TENANT_FIELDS: readonly string[] = [
  TENANT_CONFIG_KEYS.targetTokenEnabled,
  TENANT_CONFIG_KEYS.gatewayTokenEnabled,
  TENANT_CONFIG_KEYS.headerEnabled,
  TENANT_CONFIG_KEYS.headerAuthority,
];

/**
 * Fixed input whose digest is stored at `<prefix>digest`. Comparing the
 * digests shows whether the reader uses the same algorithm and HMAC key as
 * the writer, without storing the key.
 */
const DIGEST_CHECK_INPUT = 'hawkbit-ext-authz digest check';

/** Key and channel names under one prefix. */
export class RedisKeys {
  constructor(readonly prefix: string) {}

  /** String key with the layout version. */
  get layout(): string {
    return `${this.prefix}layout`;
  }

  /** String key `ALGORITHM:HEX`: the digest algorithm and the digest of a fixed input. */
  get digest(): string {
    return `${this.prefix}digest`;
  }

  /** Set of all tenant keys. */
  get tenants(): string {
    return `${this.prefix}tenants`;
  }

  /** Hash of one tenant's configuration. */
  tenant(tenantKey: string): string {
    return `${this.prefix}tenant:${tenantKey}`;
  }

  /** Hash of one tenant's targets: controller id to hex token digest, "" for a target without a token. */
  targets(tenantKey: string): string {
    return `${this.prefix}targets:${tenantKey}`;
  }

  /** Stream of admin writes. */
  get audit(): string {
    return `${this.prefix}audit`;
  }

  /** Pub/sub channel on which every admin write announces what it changed. */
  get invalidationChannel(): string {
    return `${this.prefix}invalidate`;
  }

  /** Pub/sub channel on which one store instance checks that its own subscription still delivers. */
  heartbeatChannel(instanceId: string): string {
    return `${this.prefix}heartbeat:${instanceId}`;
  }
}

/** Scope of an admin write: every store instance drops the cache entries in it. */
export type Invalidation =
  | { scope: 'all' }
  | { scope: 'tenant'; tenant: string }
  | { scope: 'target'; tenant: string; controllerId: string };

export function encodeInvalidation(invalidation: Invalidation): string {
  return JSON.stringify(invalidation);
}

/** Parses an invalidation message; anything unreadable means "everything", so no stale entry survives. */
export function decodeInvalidation(message: string): Invalidation {
  let value: unknown;
  try {
    value = JSON.parse(message);
  } catch {
    return { scope: 'all' };
  }
  if (typeof value !== 'object' || value === null) {
    return { scope: 'all' };
  }
  const record = value as Record<string, unknown>;
  if (record.scope === 'tenant' && typeof record.tenant === 'string') {
    return { scope: 'tenant', tenant: record.tenant };
  }
  if (record.scope === 'target' && typeof record.tenant === 'string' && typeof record.controllerId === 'string') {
    return { scope: 'target', tenant: record.tenant, controllerId: record.controllerId };
  }
  return { scope: 'all' };
}

/** Value stored at `<prefix>digest` for this digester. */
export function digestMarker(digester: TokenDigester): string {
  return `${digester.algorithm}:${digester.digest(DIGEST_CHECK_INPUT).toString('hex')}`;
}

/** The store was written with another layout version or another digest algorithm or key. */
export class LayoutMismatchError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LayoutMismatchError';
  }
}

/**
 * Returns why the stored layout marker and digest marker do not fit this
 * version and digester, or undefined when they fit. A missing marker fits,
 * because an empty store has none until the first admin write.
 */
export function layoutProblem(
  keys: RedisKeys,
  storedLayout: string | null,
  storedDigest: string | null,
  digester: TokenDigester,
): string | undefined {
  if (storedLayout !== null && storedLayout !== String(LAYOUT_VERSION)) {
    if (/^\d+$/.test(storedLayout) && Number(storedLayout) > LAYOUT_VERSION) {
      return `Redis key ${keys.layout} is ${storedLayout}, a newer layout than this version reads (${LAYOUT_VERSION}); upgrade hawkbit-ext-authz`;
    }
    return `Redis key ${keys.layout} is "${storedLayout.slice(0, 40)}", not a layout this version reads (${LAYOUT_VERSION}); check store.redis.keyPrefix`;
  }
  if (storedDigest === null) {
    return undefined;
  }
  const expected = digestMarker(digester);
  if (storedDigest === expected) {
    return undefined;
  }
  const storedAlgorithm = storedDigest.split(':')[0];
  if (storedAlgorithm !== digester.algorithm) {
    return `the store under ${keys.prefix} holds ${storedAlgorithm} digests, but this configuration computes ${digester.algorithm}; ` +
      (digester.algorithm === 'sha256' ? 'set tokenDigestKey to the key the store was written with' : 'remove tokenDigestKey or use another store.redis.keyPrefix');
  }
  return `the store under ${keys.prefix} was written with a different tokenDigestKey; set the key it was written with or use another store.redis.keyPrefix`;
}
