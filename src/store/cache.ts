/** A cached value and the monotonic time (ms) at which it was stored. */
export interface CacheEntry<V> {
  value: V;
  storedAt: number;
}

/**
 * In-process cache bounded in entries and in age. A hit moves the entry to the
 * end of the eviction order, so the least recently used entry goes first when
 * the cache is full. Times come from a monotonic clock in milliseconds.
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
    this.#entries.delete(key);
    if (this.#now() - entry.storedAt >= this.#ttlMs) {
      return undefined;
    }
    this.#entries.set(key, entry);
    return entry;
  }

  set(key: string, value: V): void {
    if (this.#ttlMs === 0) {
      return;
    }
    this.#entries.delete(key);
    this.#entries.set(key, { value, storedAt: this.#now() });
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
