import type { RedisStoreConfig } from '../../config/schema.js';
import type { Logger } from '../../observability/logger.js';
import {
  closeConnections,
  createRedisConnections,
  redactRedisUrl,
  withTimeout,
  type RedisCommands,
  type RedisConnections,
} from '../../store/redis-client.js';
import {
  LAYOUT_VERSION,
  LayoutMismatchError,
  RedisKeys,
  TENANT_NAME_FIELD,
  digestMarker,
  encodeInvalidation,
  layoutProblem,
  type Invalidation,
} from '../../store/redis-layout.js';
import type { TokenDigester } from '../../store/token-digest.js';
import { AuditLog, type AuditEntry } from './audit.js';

/** Time limit for the admin connection to reach Redis, in milliseconds. */
export const ADMIN_CONNECT_TIMEOUT_MS = 10_000;

/** Sets a target's digest only when the target exists, so a rotate cannot bring back a target removed meanwhile. */
const REPLACE_IF_EXISTS_SCRIPT = `
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  return 1
end
return 0`;

/** One page of `HSCAN` over a tenant's targets. */
export interface TargetPage {
  controllerIds: string[];
  /** Cursor for the next page; "0" when the scan is complete. */
  cursor: string;
}

/**
 * Write access to the Redis store for the admin commands. Every write
 * publishes an invalidation and is recorded in the audit stream and the log.
 */
export class AdminStore {
  readonly keys: RedisKeys;
  readonly digester: TokenDigester;
  readonly #connections: RedisConnections;
  readonly #audit: AuditLog;
  #layoutEnsured = false;

  private constructor(connections: RedisConnections, keys: RedisKeys, digester: TokenDigester, audit: AuditLog) {
    this.#connections = connections;
    this.keys = keys;
    this.digester = digester;
    this.#audit = audit;
  }

  /** Connects to Redis and checks the layout marker; throws an Error naming the URL when Redis cannot be reached. */
  static async open(config: RedisStoreConfig, digester: TokenDigester, logger: Logger): Promise<AdminStore> {
    const connections = createRedisConnections(config, { subscriber: false, reconnect: false });
    let reported = false;
    // node-redis throws an unhandled 'error' event without a listener; connect() below reports the failure.
    connections.command.on('error', (error: unknown) => {
      if (!reported) {
        reported = true;
        logger.debug({ err: error }, 'Redis connection error');
      }
    });
    const url = redactRedisUrl(config.url);
    try {
      await withTimeout(connections.command.connect(), ADMIN_CONNECT_TIMEOUT_MS, `connecting to Redis at ${url}`);
    } catch (error) {
      await closeConnections(connections);
      throw new Error(`cannot connect to Redis at ${url}: ${(error as Error).message}; check store.redis in the configuration and that Redis is running`, { cause: error });
    }
    const keys = new RedisKeys(config.keyPrefix);
    const store = new AdminStore(connections, keys, digester, new AuditLog(connections.command, keys, logger));
    try {
      await store.#checkLayout();
    } catch (error) {
      await store.close();
      throw error;
    }
    return store;
  }

  get commands(): RedisCommands {
    return this.#connections.command;
  }

  /** Writes the layout and digest markers if missing, then checks them; every write command calls this first. */
  async ensureLayout(): Promise<void> {
    if (this.#layoutEnsured) {
      return;
    }
    await this.commands.set(this.keys.layout, String(LAYOUT_VERSION), { condition: 'NX' });
    await this.commands.set(this.keys.digest, digestMarker(this.digester), { condition: 'NX' });
    await this.#checkLayout();
    this.#layoutEnsured = true;
  }

  async #checkLayout(): Promise<void> {
    const [layout, digest] = await Promise.all([this.commands.get(this.keys.layout), this.commands.get(this.keys.digest)]);
    const problem = layoutProblem(this.keys, layout, digest, this.digester);
    if (problem !== undefined) {
      throw new LayoutMismatchError(problem);
    }
  }

  /** Returns the tenant hash, empty when the tenant does not exist. */
  async tenantHash(tenantKey: string): Promise<Record<string, string>> {
    return this.commands.hGetAll(this.keys.tenant(tenantKey));
  }

  /**
   * Sets and removes fields of a tenant hash and adds the tenant to the
   * tenant set. `name` is stored only when the tenant is new.
   */
  async writeTenant(tenantKey: string, name: string, set: Record<string, string>, remove: readonly string[]): Promise<void> {
    await this.ensureLayout();
    const key = this.keys.tenant(tenantKey);
    await this.commands.hSetNX(key, TENANT_NAME_FIELD, name);
    if (Object.keys(set).length > 0) {
      await this.commands.hSet(key, set);
    }
    if (remove.length > 0) {
      await this.commands.hDel(key, [...remove]);
    }
    await this.commands.sAdd(this.keys.tenants, tenantKey);
  }

  /** Removes a tenant and all its targets; returns how many targets it had. */
  async removeTenant(tenantKey: string): Promise<number> {
    await this.ensureLayout();
    const targets = await this.commands.hLen(this.keys.targets(tenantKey));
    // The tenant hash goes first: without it every Check for the tenant is denied, whatever is left.
    await this.commands.unlink(this.keys.tenant(tenantKey));
    await this.commands.unlink(this.keys.targets(tenantKey));
    await this.commands.sRem(this.keys.tenants, tenantKey);
    return targets;
  }

  /** Returns tenant keys in sorted order. */
  async tenantKeys(): Promise<string[]> {
    const members = await this.commands.sMembers(this.keys.tenants);
    return members.sort();
  }

  async targetCount(tenantKey: string): Promise<number> {
    return this.commands.hLen(this.keys.targets(tenantKey));
  }

  /** Adds a target unless it exists; returns whether it was added. */
  async addTarget(tenantKey: string, controllerId: string, digestHex: string): Promise<boolean> {
    await this.ensureLayout();
    return (await this.commands.hSetNX(this.keys.targets(tenantKey), controllerId, digestHex)) === 1;
  }

  /** Replaces an existing target's digest; returns false when the target does not exist. */
  async replaceTarget(tenantKey: string, controllerId: string, digestHex: string): Promise<boolean> {
    await this.ensureLayout();
    const result = await this.commands.eval(REPLACE_IF_EXISTS_SCRIPT, {
      keys: [this.keys.targets(tenantKey)],
      arguments: [controllerId, digestHex],
    });
    return result === 1;
  }

  /** Removes a target; returns whether it existed. */
  async removeTarget(tenantKey: string, controllerId: string): Promise<boolean> {
    await this.ensureLayout();
    return (await this.commands.hDel(this.keys.targets(tenantKey), controllerId)) === 1;
  }

  /** Returns the stored digests (or null) of the given targets, in order. */
  async targetDigests(tenantKey: string, controllerIds: string[]): Promise<Array<string | null>> {
    return this.commands.hmGet(this.keys.targets(tenantKey), controllerIds);
  }

  /** Writes many target digests in one command. */
  async writeTargets(tenantKey: string, digests: Record<string, string>): Promise<void> {
    await this.commands.hSet(this.keys.targets(tenantKey), digests);
  }

  /**
   * Returns one page of targets. `count` is Redis' COUNT hint: HSCAN returns
   * small hashes whole and may return more or fewer entries than asked.
   */
  async scanTargets(tenantKey: string, cursor: string, count: number): Promise<TargetPage> {
    const page = await this.commands.hScan(this.keys.targets(tenantKey), cursor, { COUNT: count });
    return { controllerIds: page.entries.map((entry) => entry.field), cursor: page.cursor };
  }

  /** Tells every store instance to drop the cache entries the write changed. */
  async publishInvalidation(invalidation: Invalidation): Promise<void> {
    await this.commands.publish(this.keys.invalidationChannel, encodeInvalidation(invalidation));
  }

  async recordAudit(entry: AuditEntry): Promise<void> {
    await this.#audit.record(entry);
  }

  async close(): Promise<void> {
    await closeConnections(this.#connections);
  }
}
