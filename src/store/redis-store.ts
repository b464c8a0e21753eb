import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { CacheConfig, RedisStoreConfig } from '../config/schema.js';
import type { Logger } from '../observability/logger.js';
import { BoundedTtlCache } from './cache.js';
import {
  closeConnections,
  createRedisConnections,
  redactRedisUrl,
  withTimeout,
  type RedisConnections,
  type RedisHandle,
} from './redis-client.js';
import {
  GATEWAY_KEY_DIGEST_FIELD,
  LayoutMismatchError,
  RedisKeys,
  TENANT_NAME_FIELD,
  decodeInvalidation,
  layoutProblem,
  type Invalidation,
} from './redis-layout.js';
import { StoreUnavailableError } from './store.js';
import type { MaybePromise, StoreHealth, TargetCredentials, TenantSettings, TenantStore } from './store.js';
import { tenantSettingsFrom } from './tenant-settings.js';
import { PINNED_CA_FIELD_PREFIX, REVOKED_FIELD_PREFIX } from './redis-layout.js';
import type { TokenDigester } from './token-digest.js';

/**
 * Time limit of one Redis lookup, in milliseconds. A Check may make two
 * lookups (tenant, then target), so Envoy's ext_authz `timeout` (200 ms by
 * default) should be at least 600 ms, or a slow Redis shows up as Envoy's
 * own timeout instead of this service's 503.
 */
export const REDIS_LOOKUP_TIMEOUT_MS = 250;
/** How often each store publishes a heartbeat on its own channel and rechecks the layout marker, in milliseconds. */
export const HEARTBEAT_INTERVAL_MS = 1_000;
/** Age of the last received heartbeat, in milliseconds, after which the invalidation channel counts as lost. */
export const HEARTBEAT_TIMEOUT_MS = 3_000;
/** Time limit of connect(), in milliseconds. */
export const STORE_CONNECT_TIMEOUT_MS = 10_000;
/** Minimum time between two logged connection errors of one connection, in milliseconds; the rest are counted. */
const ERROR_LOG_INTERVAL_MS = 10_000;

/** Timing overrides, for tests and for deployments that need other limits. */
export interface RedisStoreOptions {
  /** Time limit of one lookup, in milliseconds; default REDIS_LOOKUP_TIMEOUT_MS. */
  lookupTimeoutMs?: number;
  /** Heartbeat period, in milliseconds; default HEARTBEAT_INTERVAL_MS. */
  heartbeatIntervalMs?: number;
  /** Heartbeat age that counts as a lost channel, in milliseconds; default HEARTBEAT_TIMEOUT_MS. */
  heartbeatTimeoutMs?: number;
  /** Time limit of connect(), in milliseconds; default STORE_CONNECT_TIMEOUT_MS. */
  connectTimeoutMs?: number;
}

/** Counts of lookups served from the cache (hits) and from Redis (misses) since the store was created. */
export interface RedisCacheStats {
  hits: number;
  misses: number;
}

/** A cached lookup result; null means "not found". */
/** Result of a cache lookup that found no trusted value. */
const NOT_CACHED = Symbol('not cached');

interface Cached<V> {
  value: V | null;
  /** The tenant's invalidation generation when the value was read. */
  generation: number;
}

type LayoutState = 'ok' | 'empty' | 'mismatch';

/**
 * Tenant store backed by Redis, with an in-process cache that admin writes
 * invalidate through pub/sub. docs/redis-store.md describes the key layout,
 * the cache rules and the failure behaviour.
 *
 * Health is `serving` only while the command connection works, the
 * invalidation channel delivers (this instance's heartbeat came back within
 * HEARTBEAT_TIMEOUT_MS) and the layout marker fits. While the channel is
 * lost, cached entries are not trusted: lookups go to Redis, and only
 * `cache.staleAllowMs` lets cached allows stand in when Redis fails too.
 */
export class RedisStore implements TenantStore {
  readonly #config: RedisStoreConfig;
  readonly #cacheConfig: CacheConfig;
  readonly #digester: TokenDigester;
  readonly #logger: Logger;
  readonly #keys: RedisKeys;
  readonly #lookupTimeoutMs: number;
  readonly #heartbeatIntervalMs: number;
  readonly #heartbeatTimeoutMs: number;
  readonly #connectTimeoutMs: number;
  readonly #heartbeatChannel: string;

  readonly #tenantCache: BoundedTtlCache<Cached<TenantSettings>>;
  readonly #targetCache: BoundedTtlCache<Cached<TargetCredentials>>;
  readonly #tenantStats: RedisCacheStats = { hits: 0, misses: 0 };
  readonly #targetStats: RedisCacheStats = { hits: 0, misses: 0 };
  /** Per-tenant counter; raising it drops the tenant's settings and all its targets from the cache. */
  readonly #generations = new Map<string, number>();
  /** Raised by every invalidation, so a read that overlapped one does not fill the cache with what it read. */
  #invalidationCount = 0;

  #connections: RedisConnections | undefined;
  /** Set once connect() has finished; events before that are handled by connect() itself. */
  #started = false;
  #timer: NodeJS.Timeout | undefined;
  #ticking = false;
  #closed = false;
  #heartbeatSequence = 0;
  #lastHeartbeatAt = Number.NEGATIVE_INFINITY;
  #lastPublishOk = false;
  #layout: LayoutState = 'empty';
  #lastLayoutProblem: string | undefined;
  #channelUp = false;
  /** When the channel was last lost (monotonic ms); undefined while it is up or before it first came up. */
  #channelLostAt: number | undefined;
  #health: StoreHealth = 'not_serving';
  #servedBefore = false;
  readonly #listeners: Array<(health: StoreHealth) => void> = [];
  readonly #tenantListeners: Array<() => void> = [];
  readonly #errorLog = new Map<string, { loggedAt: number; suppressed: number }>();
  /** The last connection error, which a connect() that times out includes in its message. */
  #lastConnectionError: Error | undefined;

  constructor(config: RedisStoreConfig, cache: CacheConfig, digester: TokenDigester, logger: Logger, options: RedisStoreOptions = {}) {
    this.#config = config;
    this.#cacheConfig = cache;
    this.#digester = digester;
    this.#logger = logger.child({ component: 'redis-store' });
    this.#keys = new RedisKeys(config.keyPrefix);
    this.#lookupTimeoutMs = options.lookupTimeoutMs ?? REDIS_LOOKUP_TIMEOUT_MS;
    this.#heartbeatIntervalMs = options.heartbeatIntervalMs ?? HEARTBEAT_INTERVAL_MS;
    this.#heartbeatTimeoutMs = options.heartbeatTimeoutMs ?? HEARTBEAT_TIMEOUT_MS;
    this.#connectTimeoutMs = options.connectTimeoutMs ?? STORE_CONNECT_TIMEOUT_MS;
    this.#heartbeatChannel = this.#keys.heartbeatChannel(randomUUID());
    this.#tenantCache = new BoundedTtlCache(cache.maxEntries, cache.ttlMs);
    this.#targetCache = new BoundedTtlCache(cache.maxEntries, cache.ttlMs);
  }

  /**
   * Connects both connections, subscribes, checks the layout marker and waits
   * for the first heartbeat. Throws LayoutMismatchError when the store was
   * written by a newer version or with another digest key, and an Error naming
   * the URL when Redis cannot be reached within the connect time limit.
   */
  async connect(): Promise<void> {
    if (this.#connections !== undefined) {
      throw new Error('RedisStore.connect() was already called; create a new store to connect again');
    }
    const connections = createRedisConnections(this.#config, { subscriber: true });
    this.#connections = connections;
    this.#attachListeners(connections);

    const url = redactRedisUrl(this.#config.url);
    const deadline = performance.now() + this.#connectTimeoutMs;
    try {
      await withTimeout(Promise.all(connections.handles.map((handle) => handle.connect())), this.#connectTimeoutMs, `connecting to Redis at ${url}`);
      await withTimeout(
        connections.subscriber!.subscribe([this.#keys.invalidationChannel, this.#heartbeatChannel], (message, channel) => this.#onMessage(message, channel)),
        remaining(deadline),
        `subscribing to ${this.#keys.invalidationChannel}`,
      );
      await this.#checkLayout(true);
      await this.#waitForHeartbeat(deadline);
    } catch (error) {
      this.#closed = true;
      await closeConnections(connections);
      if (error instanceof LayoutMismatchError) {
        throw error;
      }
      const lastError = this.#lastConnectionError === undefined ? '' : ` (last connection error: ${this.#lastConnectionError.message})`;
      throw new Error(`cannot use the Redis store at ${url}: ${errorMessage(error)}${lastError}; check store.redis and that Redis is running`, { cause: error });
    }

    this.#started = true;
    this.#timer = setInterval(() => void this.#tick(), this.#heartbeatIntervalMs);
    this.#timer.unref();
    this.#refreshState();

    const address = connections.mode === 'sentinel' ? { sentinelName: this.#config.sentinel?.name } : { url };
    this.#logger.info({ ...address, mode: connections.mode, keyPrefix: this.#config.keyPrefix }, 'Redis store connected');
  }

  getTenant(tenantKey: string): MaybePromise<TenantSettings | undefined> {
    const cached = this.#cachedValue(this.#tenantCache, this.#tenantStats, tenantKey, tenantKey);
    if (cached !== NOT_CACHED) {
      return cached;
    }
    const readTenant = async (connections: RedisConnections): Promise<TenantSettings | undefined> => {
      const hash = await connections.command.hGetAll(this.#keys.tenant(tenantKey));
      return this.#tenantFromHash(tenantKey, hash);
    };
    return this.#lookup(this.#tenantCache, this.#tenantStats, tenantKey, tenantKey, `Redis lookup of tenant ${tenantKey}`, readTenant);
  }

  getTarget(tenantKey: string, controllerId: string): MaybePromise<TargetCredentials | undefined> {
    const cacheKey = targetCacheKey(tenantKey, controllerId);
    const cached = this.#cachedValue(this.#targetCache, this.#targetStats, tenantKey, cacheKey);
    if (cached !== NOT_CACHED) {
      return cached;
    }
    const readTarget = async (connections: RedisConnections): Promise<TargetCredentials | undefined> => {
      const stored = await connections.command.hGet(this.#keys.targets(tenantKey), controllerId);
      if (stored === null) {
        return undefined;
      }
      return { securityTokenDigest: this.#parseDigest(stored, { tenant: tenantKey, controllerId }) };
    };
    const description = `Redis lookup of target ${controllerId} in tenant ${tenantKey}`;
    return this.#lookup(this.#targetCache, this.#targetStats, tenantKey, cacheKey, description, readTarget);
  }

  health(): StoreHealth {
    return this.#health;
  }

  /** Returns cache hits and misses per cache, for the `cache_requests_total` metric. A stale allow counts as a hit. */
  cacheStats(): { tenant: RedisCacheStats; target: RedisCacheStats } {
    return { tenant: { ...this.#tenantStats }, target: { ...this.#targetStats } };
  }

  onTenantsChanged(listener: () => void): void {
    this.#tenantListeners.push(listener);
  }

  async listTenantTrust(): Promise<{ name: string; headerAuthority: readonly string[]; pinnedCaPems: readonly string[] }[]> {
    const connections = this.#connections;
    if (connections === undefined) {
      throw new StoreUnavailableError('Redis store is not connected');
    }
    const keys = await connections.command.sMembers(this.#keys.tenants);
    const result = [];
    for (const key of keys.sort()) {
      const hash = await connections.command.hGetAll(this.#keys.tenant(key));
      const settings = this.#tenantFromHash(key, hash);
      if (settings) {
        result.push({ name: settings.name, headerAuthority: settings.headerAuthority, pinnedCaPems: settings.pinnedCaPems });
      }
    }
    return result;
  }

  onHealthChange(listener: (health: StoreHealth) => void): void {
    this.#listeners.push(listener);
  }

  /** Closes both connections; later lookups throw StoreUnavailableError. Health listeners are not called. */
  async close(): Promise<void> {
    if (this.#closed && this.#timer === undefined) {
      return;
    }
    this.#closed = true;
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#health = 'not_serving';
    this.#flushCache();
    if (this.#connections) {
      await closeConnections(this.#connections);
    }
    this.#logger.info('Redis store closed');
  }

  /**
   * Returns a trusted cached value, counted as a hit, or NOT_CACHED. A hit
   * creates nothing, so the common case costs no closure and no message text.
   */
  #cachedValue<V>(cache: BoundedTtlCache<Cached<V>>, stats: RedisCacheStats, tenantKey: string, cacheKey: string): V | undefined | typeof NOT_CACHED {
    if (this.#closed || !this.#started || this.#connections === undefined || !this.#channelUp) {
      return NOT_CACHED;
    }
    const entry = cache.get(cacheKey);
    if (entry === undefined || entry.value.generation !== (this.#generations.get(tenantKey) ?? 0)) {
      return NOT_CACHED;
    }
    stats.hits += 1;
    return entry.value.value ?? undefined;
  }

  /**
   * Reads a value that the cache does not hold as trusted (see #cachedValue)
   * from Redis, and caches it unless an invalidation arrived meanwhile. Any
   * failure rejects with StoreUnavailableError, except that a cached allow may
   * stand in while `cache.staleAllowMs` permits it.
   */
  async #lookup<V>(
    cache: BoundedTtlCache<Cached<V>>,
    stats: RedisCacheStats,
    tenantKey: string,
    cacheKey: string,
    description: string,
    read: (connections: RedisConnections) => Promise<V | undefined>,
  ): Promise<V | undefined> {
    const connections = this.#connections;
    if (this.#closed || !this.#started || connections === undefined) {
      throw new StoreUnavailableError(`${description} failed: the Redis store is ${this.#closed ? 'closed' : 'not connected'}`);
    }
    const generation = this.#generations.get(tenantKey) ?? 0;
    const entry = cache.get(cacheKey);
    const cached = entry !== undefined && entry.value.generation === generation ? entry.value : undefined;

    const invalidationsBefore = this.#invalidationCount;
    let value: V | undefined;
    try {
      value = await withTimeout(read(connections), this.#lookupTimeoutMs, description);
    } catch (error) {
      if (cached !== undefined && cached.value !== null && this.#staleAllowed()) {
        stats.hits += 1;
        return cached.value;
      }
      stats.misses += 1;
      throw new StoreUnavailableError(`${description} failed: ${errorMessage(error)}`, { cause: error });
    }
    stats.misses += 1;
    if (this.#invalidationCount === invalidationsBefore && !this.#closed) {
      cache.set(cacheKey, { value: value ?? null, generation });
    }
    return value;
  }

  /** Whether cached allows may be used: the channel is lost, but for less than `cache.staleAllowMs`. */
  #staleAllowed(): boolean {
    const allowMs = this.#cacheConfig.staleAllowMs;
    return allowMs > 0 && !this.#channelUp && this.#channelLostAt !== undefined && performance.now() - this.#channelLostAt <= allowMs;
  }

  #tenantFromHash(tenantKey: string, hash: Record<string, string>): TenantSettings | undefined {
    if (Object.keys(hash).length === 0) {
      return undefined;
    }
    const name = hash[TENANT_NAME_FIELD] ?? tenantKey;
    const digestHex = hash[GATEWAY_KEY_DIGEST_FIELD];
    const gatewayKeyDigest = digestHex === undefined ? undefined : this.#parseDigest(digestHex, { tenant: tenantKey, field: GATEWAY_KEY_DIGEST_FIELD });
    // Pinned CAs and revocations live in the same hash, so one lookup and one invalidation cover them.
    const pinnedCaPems: string[] = [];
    const revoked: string[] = [];
    for (const [field, value] of Object.entries(hash)) {
      if (field.startsWith(PINNED_CA_FIELD_PREFIX)) {
        pinnedCaPems.push(value);
      } else if (field.startsWith(REVOKED_FIELD_PREFIX)) {
        revoked.push(field.slice(REVOKED_FIELD_PREFIX.length));
      }
    }
    return tenantSettingsFrom(name, hash, gatewayKeyDigest, { pinnedCaPems, revoked });
  }

  /** Turns a stored hex digest into bytes; "" means no secret, and a malformed value is logged and matches nothing. */
  #parseDigest(hex: string, context: Record<string, string>): Buffer | undefined {
    if (hex === '') {
      return undefined;
    }
    if (/^[0-9a-f]{64}$/.test(hex)) {
      return Buffer.from(hex, 'hex');
    }
    this.#logRateLimited('malformed-digest', 'warn', context, 'stored digest is not 64 lower-case hex digits, so no secret matches it; rewrite it with an admin command');
    return undefined;
  }

  #attachListeners(connections: RedisConnections): void {
    const roles: Array<[string, RedisHandle]> = [['command', connections.command]];
    if (connections.subscriber !== undefined && connections.subscriber !== connections.command) {
      roles.push(['subscriber', connections.subscriber]);
    }
    for (const [role, handle] of roles) {
      // node-redis throws an unhandled 'error' event without a listener, which would end the process.
      handle.on('error', (error: unknown) => {
        this.#lastConnectionError = asError(error);
        this.#logRateLimited(`connection-error:${role}`, 'warn', { connection: role, err: asError(error) }, 'Redis connection error');
        this.#refreshState();
      });
      for (const event of ['reconnecting', 'end']) {
        handle.on(event, () => this.#refreshState());
      }
      handle.on('ready', () => {
        this.#refreshState();
        // A fresh connection proves nothing about missed invalidations; the heartbeat and layout check run at once.
        void this.#tick();
      });
    }
    if (connections.mode === 'sentinel') {
      connections.command.on('topology-change', (event: { type?: string }) => {
        this.#logger.info({ event: event?.type }, 'Redis Sentinel topology changed');
        if (event?.type === 'MASTER_CHANGE') {
          this.#invalidate({ scope: 'all' });
        }
      });
    }
  }

  #onMessage(message: string, channel: string): void {
    if (channel === this.#heartbeatChannel) {
      this.#lastHeartbeatAt = performance.now();
      this.#refreshState();
      return;
    }
    this.#invalidate(decodeInvalidation(message));
  }

  #invalidate(invalidation: Invalidation): void {
    this.#invalidationCount += 1;
    if (invalidation.scope !== 'target') {
      for (const listener of this.#tenantListeners) {
        listener();
      }
    }
    switch (invalidation.scope) {
      case 'all':
        this.#flushCache();
        break;
      case 'tenant':
        this.#generations.set(invalidation.tenant, (this.#generations.get(invalidation.tenant) ?? 0) + 1);
        this.#tenantCache.delete(invalidation.tenant);
        break;
      case 'target':
        this.#targetCache.delete(targetCacheKey(invalidation.tenant, invalidation.controllerId));
        break;
    }
  }

  #flushCache(): void {
    this.#invalidationCount += 1;
    this.#tenantCache.clear();
    this.#targetCache.clear();
    this.#generations.clear();
  }

  /** Publishes a heartbeat and rechecks the layout marker; runs every HEARTBEAT_INTERVAL_MS and on each reconnect. */
  async #tick(): Promise<void> {
    if (this.#closed || this.#ticking || !this.#started) {
      return;
    }
    this.#ticking = true;
    try {
      await Promise.all([this.#publishHeartbeat(), this.#checkLayout(false).catch(() => undefined)]);
    } finally {
      this.#ticking = false;
      this.#refreshState();
    }
  }

  async #publishHeartbeat(): Promise<void> {
    this.#heartbeatSequence += 1;
    try {
      await withTimeout(
        this.#connections!.command.publish(this.#heartbeatChannel, String(this.#heartbeatSequence)),
        this.#heartbeatIntervalMs,
        'publishing the heartbeat',
      );
      this.#lastPublishOk = true;
    } catch {
      // The connection's own 'error' event has been logged; health shows the rest.
      this.#lastPublishOk = false;
    }
  }

  async #waitForHeartbeat(deadline: number): Promise<void> {
    const sentAt = performance.now();
    await this.#publishHeartbeat();
    while (this.#lastHeartbeatAt < sentAt) {
      if (performance.now() >= deadline) {
        throw new Error(`no message came back on ${this.#heartbeatChannel} within ${this.#connectTimeoutMs} ms, so invalidations cannot be received`);
      }
      await sleep(5);
      if (!this.#lastPublishOk) {
        await this.#publishHeartbeat();
      }
    }
  }

  /**
   * Reads the layout and digest markers. A mismatch throws at connect and
   * makes the store not_serving later; a read failure changes nothing.
   */
  async #checkLayout(throwOnMismatch: boolean): Promise<void> {
    const command = this.#connections!.command;
    const [layout, digest] = await withTimeout(
      Promise.all([command.get(this.#keys.layout), command.get(this.#keys.digest)]),
      this.#lookupTimeoutMs * 2,
      'reading the layout marker',
    );
    const problem = layoutProblem(this.#keys, layout, digest, this.#digester);
    if (problem !== undefined) {
      if (throwOnMismatch) {
        throw new LayoutMismatchError(problem);
      }
      if (problem !== this.#lastLayoutProblem) {
        this.#logger.error({ keyPrefix: this.#config.keyPrefix }, `Redis store cannot be read: ${problem}`);
      }
      this.#lastLayoutProblem = problem;
      this.#layout = 'mismatch';
      return;
    }
    this.#lastLayoutProblem = undefined;
    this.#layout = layout === null ? 'empty' : 'ok';
  }

  /** Recomputes channel state and health from the connections, and reports every change. */
  #refreshState(): void {
    const connections = this.#connections;
    if (this.#closed || !this.#started || connections === undefined) {
      return;
    }
    const now = performance.now();
    const commandUp = connections.isCommandReady() && this.#lastPublishOk;
    const channelUp = connections.isSubscriberReady() && now - this.#lastHeartbeatAt <= this.#heartbeatTimeoutMs;

    if (channelUp !== this.#channelUp) {
      this.#channelUp = channelUp;
      if (channelUp) {
        // Invalidations sent while the channel was down are lost, so nothing cached before may be trusted.
        this.#flushCache();
        this.#channelLostAt = undefined;
      } else {
        this.#invalidationCount += 1;
        this.#channelLostAt = now;
      }
    }

    const health: StoreHealth = commandUp && channelUp && this.#layout !== 'mismatch' ? 'serving' : 'not_serving';
    if (health === this.#health) {
      return;
    }
    this.#health = health;
    const state = { command: commandUp ? 'up' : 'down', invalidationChannel: channelUp ? 'up' : 'down', layout: this.#layout };
    if (health === 'serving') {
      this.#logger.info(state, this.#servedBefore ? 'Redis store serving again; cache flushed' : 'Redis store serving');
      this.#servedBefore = true;
    } else {
      this.#logger.warn(
        { ...state, staleAllowMs: this.#cacheConfig.staleAllowMs },
        'Redis store not serving',
      );
    }
    for (const listener of this.#listeners) {
      try {
        listener(health);
      } catch (error) {
        this.#logger.error({ err: asError(error) }, 'health listener threw');
      }
    }
  }

  /** Logs at most one line per `kind` every ERROR_LOG_INTERVAL_MS, with the number of lines left out since the last one. */
  #logRateLimited(kind: string, level: 'warn' | 'error', fields: Record<string, unknown>, message: string): void {
    const now = performance.now();
    const entry = this.#errorLog.get(kind);
    if (entry !== undefined && now - entry.loggedAt < ERROR_LOG_INTERVAL_MS) {
      entry.suppressed += 1;
      return;
    }
    const suppressed = entry?.suppressed ?? 0;
    this.#errorLog.set(kind, { loggedAt: now, suppressed: 0 });
    this.#logger[level](suppressed > 0 ? { ...fields, suppressed } : fields, message);
  }
}

/** Cache key of a target; the length prefix keeps every (tenant, controller id) pair distinct whatever characters they hold. */
function targetCacheKey(tenantKey: string, controllerId: string): string {
  return `${tenantKey.length}:${tenantKey}:${controllerId}`;
}

function remaining(deadline: number): number {
  return Math.max(1, Math.ceil(deadline - performance.now()));
}

function asError(value: unknown): Error {
  return value instanceof Error ? value : new Error(String(value));
}

function errorMessage(value: unknown): string {
  return value instanceof Error ? value.message : String(value);
}
