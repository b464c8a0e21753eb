import { randomBytes } from 'node:crypto';

import { ClockMap } from './clock-map.js';

/**
 * Maximum length, in UTF-16 units, of a text that a TextCache keeps. A device certificate
 * takes about 1,000 (an estimate for a 2048-bit RSA or a P-256 key) and an XFCC value with
 * a chain of three about 3,500. A longer text is not cached.
 */
export const TEXT_CACHE_MAX_CHARS = 8 * 1024;

/** Characters of a text that its sampled key reads, spread evenly from its first to its last. */
const SAMPLE_COUNT = 128;
/** The 32-bit FNV offset basis and prime. */
const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;
/**
 * A random value in every sampled key of this process. V8 hashes number keys of a Map
 * without a secret seed, so predictable keys could be chosen to share one bucket: 8,000
 * such keys made a lookup about 200 times slower in a test on Node.js 20.
 */
const PROCESS_SEED = randomBytes(4).readUInt32LE(0);

/**
 * Returns the sampled key of a text: a 32-bit hash, in the manner of FNV-1a, of
 * PROCESS_SEED, `seed`, the length and SAMPLE_COUNT characters spread evenly over the text,
 * or of every character of a shorter one. A certificate or XFCC value differs from another
 * in its serial number, key and signature, which fill most of the text, so different
 * devices almost never share a key.
 * Texts that differ only between samples do, so a lookup by this key must compare the whole
 * text before it counts as a hit. A number key costs far less than a string key, whose every
 * character V8 hashes: a Map lookup by a 320-character key took about 500 ns in a
 * micro-benchmark on Node.js 20.
 */
export function sampledKey(seed: number, text: string): number {
  const length = text.length;
  let hash = Math.imul(FNV_OFFSET ^ PROCESS_SEED ^ seed, FNV_PRIME);
  hash = Math.imul(hash ^ length, FNV_PRIME);
  if (length <= SAMPLE_COUNT) {
    for (let index = 0; index < length; index++) {
      hash = Math.imul(hash ^ text.charCodeAt(index), FNV_PRIME);
    }
    return hash >>> 0;
  }
  const step = (length - 1) / (SAMPLE_COUNT - 1);
  for (let sample = 0; sample < SAMPLE_COUNT; sample++) {
    hash = Math.imul(hash ^ text.charCodeAt(Math.round(sample * step)), FNV_PRIME);
  }
  return hash >>> 0;
}

interface TextCacheEntry<V> {
  text: string;
  value: V;
}

/**
 * Cache of values derived from texts of at most TEXT_CACHE_MAX_CHARS, such as a device's
 * certificate or XFCC value, which arrive unchanged on every request. It evicts by
 * ClockMap's second-chance rule. An entry is found by its sampled key and then compared with the whole text, which costs
 * far less than hashing all of it. Two texts with one key take turns in one entry. Only
 * values worth keeping belong here: a caller stores successes, so junk input cannot fill it
 * with its text.
 */
export class TextCache<V> {
  readonly #entries: ClockMap<number, TextCacheEntry<V>>;
  /** Counts of lookups that found their text and of lookups that did not, since construction. */
  readonly stats = { hits: 0, misses: 0 };

  constructor(readonly maxEntries: number) {
    if (!Number.isInteger(maxEntries) || maxEntries < 1) {
      throw new RangeError(`TextCache maxEntries must be a positive integer, got ${maxEntries}`);
    }
    this.#entries = new ClockMap(maxEntries);
  }

  get size(): number {
    return this.#entries.size;
  }

  /** Returns the value stored for exactly this text and marks it as used, or undefined. */
  get(text: string): V | undefined {
    if (text.length > TEXT_CACHE_MAX_CHARS) {
      return undefined;
    }
    const key = sampledKey(0, text);
    const entry = this.#entries.get(key);
    if (entry === undefined || entry.text !== text) {
      this.stats.misses++;
      return undefined;
    }
    this.stats.hits++;
    return entry.value;
  }

  /** Stores a value for a text, evicting an unused entry when full. A longer text is ignored. */
  set(text: string, value: V): void {
    if (text.length > TEXT_CACHE_MAX_CHARS) {
      return;
    }
    this.#entries.set(sampledKey(0, text), { text, value });
  }

  clear(): void {
    this.#entries.clear();
  }
}
