/**
 * Maximum length, in UTF-16 units, of a text that a TextCache keeps. A device certificate
 * takes about 1,000 (an estimate for a 2048-bit RSA or a P-256 key) and an XFCC value with
 * a chain of three about 3,500. A longer text is not cached.
 */
export const TEXT_CACHE_MAX_CHARS = 8 * 1024;

/**
 * Characters taken from each end of a text for its sampled key. A PEM starts with the
 * certificate's serial number, unique per issuer, and ends with its signature, so two
 * certificates or chains almost never share both ends.
 */
const SAMPLE_CHARS = 160;

/**
 * Returns the sampled key of a text: the tag, the length, and SAMPLE_CHARS characters from
 * each end. Texts that differ only in the middle share a key, so a lookup by this key must
 * compare the whole text before it counts as a hit.
 */
export function sampledKey(tag: string, text: string): string {
  return `${tag}${text.length}:${text.slice(0, SAMPLE_CHARS)}:${text.slice(-SAMPLE_CHARS)}`;
}

interface TextCacheEntry<V> {
  text: string;
  value: V;
}

/**
 * Least-recently-used cache of values derived from texts of at most TEXT_CACHE_MAX_CHARS,
 * such as a device's certificate or XFCC value, which arrive unchanged on every request.
 * An entry is found by its sampled key and then compared with the whole text, which costs
 * far less than hashing all of it. Only values worth keeping belong here: a caller stores
 * successes, so junk input cannot fill it with its text.
 */
export class TextCache<V> {
  readonly #entries = new Map<string, TextCacheEntry<V>>();
  /** Counts of lookups that found their text and of lookups that did not, since construction. */
  readonly stats = { hits: 0, misses: 0 };

  constructor(readonly maxEntries: number) {
    if (!Number.isInteger(maxEntries) || maxEntries < 1) {
      throw new RangeError(`TextCache maxEntries must be a positive integer, got ${maxEntries}`);
    }
  }

  get size(): number {
    return this.#entries.size;
  }

  /** Returns the value stored for exactly this text and marks it most recently used, or undefined. */
  get(text: string): V | undefined {
    if (text.length > TEXT_CACHE_MAX_CHARS) {
      return undefined;
    }
    const key = sampledKey('', text);
    const entry = this.#entries.get(key);
    if (entry === undefined || entry.text !== text) {
      this.stats.misses++;
      return undefined;
    }
    this.stats.hits++;
    // Re-inserted, so that Map iteration order is least recently used first.
    this.#entries.delete(key);
    this.#entries.set(key, entry);
    return entry.value;
  }

  /** Stores a value for a text, evicting the least recently used entry when full. A longer text is ignored. */
  set(text: string, value: V): void {
    if (text.length > TEXT_CACHE_MAX_CHARS) {
      return;
    }
    const key = sampledKey('', text);
    this.#entries.delete(key);
    if (this.#entries.size >= this.maxEntries) {
      this.#entries.delete(this.#entries.keys().next().value as string);
    }
    this.#entries.set(key, { text, value });
  }

  clear(): void {
    this.#entries.clear();
  }
}
