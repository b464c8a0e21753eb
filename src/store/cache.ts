/** A cached value and the monotonic times (ms) at which it was stored and last moved in the eviction order. */
export interface CacheEntry<V> {
  value: V;
  storedAt: number;
  touchedAt: number;
}

/**
 * Minimum time between two moves of an entry to the end of the eviction order,
 * in milliseconds. An entry read many times a second then costs one clock read
 * per hit, not a Map deletion and insertion, and the order stays right to
 * within this time.
 */
const TOUCH_INTERVAL_MS = 1_000;

/**
 * In-process cache bounded in entries and in age. A hit moves the entry to the
 * end of the eviction order (at most once per TOUCH_INTERVAL_MS), so the least
 * recently used entry goes first when the cache is full. Times come from a monotonic clock in milliseconds.
 */
export class BoundedTtlCache<V> {
  readonly #entries = new Map<string, CacheEntry<V>>();
  readonly #maxEntries: number;
  readonly #ttlMs: number;
  readonly #now: () => number;

  /** `ttlMs` 0 disables the cache: nothing is stored. */
  constructor(maxEntries: number, ttlMs: number, now: () => number = () => performance.now()) {
    if (!Number.isInteger(maxEntries) || maxEntries < 1) {
      throw new RangeError(`maxEntries must be an integer of at least 1, got ${maxEntries}`);
    }
    if (!Number.isInteger(ttlMs) || ttlMs < 0) {
      throw new RangeError(`ttlMs must be a non-negative integer, got ${ttlMs}`);
    }
    this.#maxEntries = maxEntries;
    this.#ttlMs = ttlMs;
    this.#now = now;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** Returns the entry when it is younger than the TTL; drops it when it is not. */
  get(key: string): CacheEntry<V> | undefined {
    const entry = this.#entries.get(key);
    if (entry === undefined) {
      return undefined;
    }
    const now = this.#now();
    if (now - entry.storedAt >= this.#ttlMs) {
      this.#entries.delete(key);
      return undefined;
    }
    if (now - entry.touchedAt >= TOUCH_INTERVAL_MS) {
      entry.touchedAt = now;
      this.#entries.delete(key);
      this.#entries.set(key, entry);
    }
    return entry;
  }

  set(key: string, value: V): void {
    if (this.#ttlMs === 0) {
      return;
    }
    this.#entries.delete(key);
    const now = this.#now();
    this.#entries.set(key, { value, storedAt: now, touchedAt: now });
    while (this.#entries.size > this.#maxEntries) {
      const oldest = this.#entries.keys().next().value as string;
      this.#entries.delete(oldest);
    }
  }

  delete(key: string): void {
    this.#entries.delete(key);
  }

  clear(): void {
    this.#entries.clear();
  }
}
