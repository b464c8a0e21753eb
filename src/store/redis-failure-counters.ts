import type {
  FailureCountStore,
  FailureIncrement,
  KnownSourceEntry,
  SharedLimit,
  WindowTotals,
} from '../auth/failure-limiter.js';
import type { RedisStoreConfig } from '../config/schema.js';
import type { Logger } from '../observability/logger.js';
import { closeConnections, createRedisConnections, redactRedisUrl, withTimeout, type RedisConnections } from './redis-client.js';

/**
 * The failure limiter's shared counts in Redis, on a connection of their own,
 * under `P ratelimit:` (docs/redis-store.md lists the keys). Every command
 * names one key, so the keys may sit on different cluster nodes.
 */

/** Time limit of one batch of commands, in milliseconds. */
export const FAILURE_COUNTS_TIMEOUT_MS = 1_000;
/** How long connect() waits for the first connection, in milliseconds, before it lets the connection finish in the background. */
export const FAILURE_COUNTS_CONNECT_WAIT_MS = 5_000;
/** Minimum time between two logged connection errors, in milliseconds; the rest are counted. */
const ERROR_LOG_INTERVAL_MS = 10_000;

/** node-redis v5 commands used here, with their argument and reply shapes. */
interface CounterCommands {
  get(key: string): Promise<string | null>;
  incrBy(key: string, increment: number): Promise<number>;
  pExpire(key: string, milliseconds: number): Promise<number>;
  zAdd(key: string, members: Array<{ score: number; value: string }>): Promise<number>;
  zRangeByScoreWithScores(
    key: string,
    min: string | number,
    max: string | number,
    options?: { LIMIT: { offset: number; count: number } },
  ): Promise<Array<{ value: string; score: number }>>;
  zRemRangeByScore(key: string, min: string | number, max: string | number): Promise<number>;
  zRemRangeByRank(key: string, start: number, stop: number): Promise<number>;
}

/** Redis keys of the shared counts under a key prefix. */
export class FailureCountKeys {
  constructor(private readonly prefix: string) {}

  /** String: failures of one counter in one window. */
  count(counter: string, windowMs: number, window: number): string {
    return `${this.prefix}ratelimit:count:${windowMs}:${window}:${counter}`;
  }

  /** Sorted set: counters over their limit, scored by the end of the limit (epoch ms). */
  get limits(): string {
    return `${this.prefix}ratelimit:limited`;
  }

  /** Sorted set: sources that authenticated a target or tenant gateway, scored by when (epoch ms). */
  known(counter: string): string {
    return `${this.prefix}ratelimit:known:${counter}`;
  }
}

/**
 * FailureCountStore on Redis. The connection reconnects with backoff; while it
 * is down, every method rejects at once, so the limiter keeps counting locally.
 */
export class RedisFailureCounts implements FailureCountStore {
  readonly #connections: RedisConnections;
  readonly #keys: FailureCountKeys;
  readonly #logger: Logger;
  readonly #timeoutMs: number;
  readonly #url: string;
  #connecting: Promise<unknown> | undefined;
  #lastErrorLog: { loggedAt: number; suppressed: number } | undefined;
  #closed = false;

  constructor(config: RedisStoreConfig, logger: Logger, options: { timeoutMs?: number } = {}) {
    this.#keys = new FailureCountKeys(config.keyPrefix);
    this.#logger = logger.child({ component: 'redis-failure-counts' });
    this.#timeoutMs = options.timeoutMs ?? FAILURE_COUNTS_TIMEOUT_MS;
    this.#url = redactRedisUrl(config.url);
    this.#connections = createRedisConnections(config, { subscriber: false });
    // node-redis throws an unhandled 'error' event without a listener, which would end the process.
    this.#connections.command.on('error', (error: unknown) => this.#logConnectionError(error));
  }

  /**
   * Opens the connection and waits up to `waitMs` for it. Returns whether it
   * is up; when it is not, it keeps trying in the background and the methods
   * reject until it is.
   */
  async connect(waitMs = FAILURE_COUNTS_CONNECT_WAIT_MS): Promise<boolean> {
    this.#connecting ??= this.#connections.command.connect().then(
      () => this.#logger.info({ url: this.#url }, 'failure counts connected to Redis'),
      (error: unknown) => {
        if (!this.#closed) {
          this.#logConnectionError(error);
        }
      },
    );
    try {
      await withTimeout(this.#connecting, waitMs, `connecting to Redis at ${this.#url} for the failure counts`);
      return this.#connections.isCommandReady();
    } catch (error) {
      this.#logger.warn({ err: error }, 'failure counts not connected to Redis yet; counting locally until the connection is up');
      return false;
    }
  }

  async addFailures(increments: readonly FailureIncrement[]): Promise<WindowTotals[]> {
    const commands = this.#commands();
    const work = increments.map(async (entry): Promise<WindowTotals> => {
      const key = this.#keys.count(entry.counter, entry.windowMs, entry.window);
      const [total, , previous] = await Promise.all([
        commands.incrBy(key, entry.count),
        // Two windows: the sliding estimate still reads a window during the one after it.
        commands.pExpire(key, 2 * entry.windowMs),
        commands.get(this.#keys.count(entry.counter, entry.windowMs, entry.window - 1)),
      ]);
      return { counter: entry.counter, windowMs: entry.windowMs, window: entry.window, total, previousTotal: Number(previous ?? 0) || 0 };
    });
    return withTimeout(Promise.all(work), this.#timeoutMs, `adding ${increments.length} failure counts`);
  }

  async publishLimits(limits: readonly SharedLimit[], keepMs: number): Promise<void> {
    const commands = this.#commands();
    const members = limits.map((limit) => ({ score: limit.until, value: limit.counter }));
    await withTimeout(
      Promise.all([commands.zAdd(this.#keys.limits, members), commands.pExpire(this.#keys.limits, keepMs)]),
      this.#timeoutMs,
      `announcing ${limits.length} failure limits`,
    );
  }

  async readLimits(now: number, maxEntries: number): Promise<SharedLimit[]> {
    const commands = this.#commands();
    const [, entries] = await withTimeout(
      Promise.all([
        commands.zRemRangeByScore(this.#keys.limits, '-inf', now),
        commands.zRangeByScoreWithScores(this.#keys.limits, `(${now}`, '+inf', { LIMIT: { offset: 0, count: maxEntries } }),
      ]),
      this.#timeoutMs,
      'reading failure limits',
    );
    return entries.map((entry) => ({ counter: entry.value, until: entry.score }));
  }

  async addKnownSources(entries: readonly KnownSourceEntry[], keepMs: number, maxPerCounter: number): Promise<void> {
    const commands = this.#commands();
    const byCounter = new Map<string, KnownSourceEntry[]>();
    for (const entry of entries) {
      byCounter.set(entry.counter, [...(byCounter.get(entry.counter) ?? []), entry]);
    }
    const work = [...byCounter].map(async ([counter, counterEntries]) => {
      const key = this.#keys.known(counter);
      const newest = Math.max(...counterEntries.map((entry) => entry.at));
      await Promise.all([
        commands.zAdd(key, counterEntries.map((entry) => ({ score: entry.at, value: entry.source }))),
        commands.zRemRangeByScore(key, '-inf', `(${newest - keepMs}`),
        // Keeps the newest maxPerCounter sources.
        commands.zRemRangeByRank(key, 0, -(maxPerCounter + 1)),
        commands.pExpire(key, keepMs),
      ]);
    });
    await withTimeout(Promise.all(work), this.#timeoutMs, `writing ${entries.length} known sources`);
  }

  async readKnownSources(counters: readonly string[], since: number, maxPerCounter: number): Promise<KnownSourceEntry[]> {
    const commands = this.#commands();
    const work = counters.map(async (counter) => {
      const entries = await commands.zRangeByScoreWithScores(this.#keys.known(counter), since, '+inf', { LIMIT: { offset: 0, count: maxPerCounter } });
      return entries.map((entry) => ({ counter, source: entry.value, at: entry.score }));
    });
    const results = await withTimeout(Promise.all(work), this.#timeoutMs, `reading known sources of ${counters.length} counters`);
    return results.flat();
  }

  async close(): Promise<void> {
    if (this.#closed) {
      return;
    }
    this.#closed = true;
    await closeConnections(this.#connections);
  }

  /** Returns the command interface, or throws at once while the connection is down, instead of queueing. */
  #commands(): CounterCommands {
    if (this.#closed || !this.#connections.isCommandReady()) {
      throw new Error(this.#closed ? 'the failure-count connection is closed' : 'the failure-count connection to Redis is not ready');
    }
    // node-redis types its commands with RESP generics; these methods have the runtime shapes declared above.
    return this.#connections.command as unknown as CounterCommands;
  }

  #logConnectionError(error: unknown): void {
    const now = performance.now();
    const last = this.#lastErrorLog;
    if (last !== undefined && now - last.loggedAt < ERROR_LOG_INTERVAL_MS) {
      last.suppressed += 1;
      return;
    }
    const suppressed = last?.suppressed ?? 0;
    this.#lastErrorLog = { loggedAt: now, suppressed: 0 };
    const err = error instanceof Error ? error : new Error(String(error));
    this.#logger.warn(suppressed > 0 ? { err, suppressed } : { err }, 'Redis connection error of the failure counts');
  }
}
