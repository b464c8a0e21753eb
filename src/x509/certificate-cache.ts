import { createHash } from 'node:crypto';

import { parseCertificate, type ParsedCertificate } from './certificate.js';
import { CertificateError, invalidCertificate } from './errors.js';
import { decodeEnvoyPem, MAX_ENCODED_PEM_CHARS, splitPemChain } from './pem.js';
import { ClockMap } from './clock-map.js';
import { sampledKey, TEXT_CACHE_MAX_CHARS } from './text-cache.js';

/** Default number of cached entries. An entry is a parsed certificate of a few KiB (an estimate), so the default needs a few MiB. */
export const DEFAULT_CERTIFICATE_CACHE_ENTRIES = 1000;

/** Maximum number of certificates accepted in one chain. Clients send the leaf and a few CAs. */
export const MAX_CHAIN_CERTIFICATES = 16;

/** Seeds that keep the sampled keys of certificates and chains apart. */
const KEY_SEEDS = { certificate: 1, chain: 2 } as const;

/** A character that latin1 cannot encode one to one. */
const BEYOND_LATIN1 = /[^\u0000-\u00ff]/;

type CacheEntry = (
  | { ok: true; value: ParsedCertificate | ParsedCertificate[] }
  | { ok: false; error: CertificateError }
) & {
  /** The kind and text the entry was parsed from, when its key is only a sample of that text. */
  kind?: 'certificate' | 'chain';
  encoded?: string;
};

/**
 * Cache of parsed certificates, keyed by the percent-encoded PEM as Envoy sends it, so one
 * device's certificate is decoded, parsed and hashed once. It evicts by ClockMap's
 * second-chance rule. A text of up to TEXT_CACHE_MAX_CHARS that parsed is found by its
 * sampled key and then compared in full, which costs far less than hashing all of it.
 * Longer texts and failures are found by their SHA-256, which bounds the memory their
 * entries take.
 * Failures are cached too, as the same `CertificateError`, so repeated junk costs one hash.
 * Entries never expire, because a key is an exact encoding whose parse result cannot change.
 * Validity dates are not checked here.
 */
export class CertificateCache {
  readonly maxEntries: number;
  /** Entries by sampled key (a number) or, for long texts and failures, by SHA-256 key (a string). */
  readonly #entries: ClockMap<number | string, CacheEntry>;
  /** Counts of lookups served from the cache and of lookups that parsed, since construction. */
  readonly stats = { hits: 0, misses: 0 };

  constructor(maxEntries: number = DEFAULT_CERTIFICATE_CACHE_ENTRIES) {
    if (!Number.isInteger(maxEntries) || maxEntries < 1) {
      throw new RangeError(`CertificateCache maxEntries must be a positive integer, got ${maxEntries}`);
    }
    this.maxEntries = maxEntries;
    this.#entries = new ClockMap(maxEntries);
  }

  get size(): number {
    return this.#entries.size;
  }

  /**
   * Decodes and parses one percent-encoded PEM certificate (`source.certificate` or XFCC `Cert`).
   * Throws `CertificateError`.
   */
  parseEnvoyCertificate(encoded: string): ParsedCertificate {
    return this.#lookup('certificate', encoded, () => parseCertificate(decodeEnvoyPem(encoded))) as ParsedCertificate;
  }

  /**
   * Decodes and parses a percent-encoded PEM chain (XFCC `Chain`), every certificate in order.
   * Throws `CertificateError` if any certificate is invalid, the chain is empty, it contains
   * text outside its PEM blocks (Envoy writes none), or it has more than
   * `MAX_CHAIN_CERTIFICATES` certificates.
   */
  parseEnvoyChain(encoded: string): ParsedCertificate[] {
    const chain = this.#lookup('chain', encoded, () => {
      const pem = decodeEnvoyPem(encoded);
      const blocks = splitPemChain(pem);
      if (blocks.length === 0) {
        throw invalidCertificate("chain contains no '-----BEGIN CERTIFICATE-----' block");
      }
      if (blocks.reduce((rest, block) => rest.replace(block, ''), pem).trim() !== '') {
        throw invalidCertificate('chain contains text outside its PEM certificate blocks');
      }
      if (blocks.length > MAX_CHAIN_CERTIFICATES) {
        throw invalidCertificate(`chain has ${blocks.length} certificates, more than the limit of ${MAX_CHAIN_CERTIFICATES}`);
      }
      return blocks.map((block) => parseCertificate(block));
    }) as ParsedCertificate[];
    // A copy, so a caller that reorders or trims its chain cannot change the cached one.
    return [...chain];
  }

  clear(): void {
    this.#entries.clear();
  }

  #lookup(
    kind: 'certificate' | 'chain',
    encoded: string,
    parse: () => ParsedCertificate | ParsedCertificate[],
  ): ParsedCertificate | ParsedCertificate[] {
    // Checked before hashing so that oversized input costs nothing and is not cached.
    if (encoded.length > MAX_ENCODED_PEM_CHARS) {
      throw invalidCertificate(`encoded PEM has ${encoded.length} characters, more than the limit of ${MAX_ENCODED_PEM_CHARS}`);
    }

    const entry = this.#cached(kind, encoded) ?? this.#parseAndStore(kind, encoded, parse);
    if (!entry.ok) {
      throw entry.error;
    }
    return entry.value;
  }

  /** Returns the entry of exactly this text and marks it as used, or undefined. */
  #cached(kind: 'certificate' | 'chain', encoded: string): CacheEntry | undefined {
    if (encoded.length <= TEXT_CACHE_MAX_CHARS) {
      const key = sampledKey(KEY_SEEDS[kind], encoded);
      const entry = this.#entries.get(key);
      // Texts that differ only between samples share a key, so only the same text of the same kind is a hit.
      if (entry !== undefined && entry.kind === kind && entry.encoded === encoded) {
        return this.#hit(entry);
      }
    }
    const entry = this.#entries.get(hashedKey(kind, encoded));
    return entry === undefined ? undefined : this.#hit(entry);
  }

  #hit(entry: CacheEntry): CacheEntry {
    this.stats.hits++;
    return entry;
  }

  /**
   * Parses a text and caches the result. A certificate that parsed is kept with its text under
   * a sampled key, and a failure under the SHA-256 key, so junk cannot fill memory with its text.
   */
  #parseAndStore(kind: 'certificate' | 'chain', encoded: string, parse: () => ParsedCertificate | ParsedCertificate[]): CacheEntry {
    this.stats.misses++;
    const entry = this.#parseToEntry(parse);
    let key: number | string;
    if (entry.ok && encoded.length <= TEXT_CACHE_MAX_CHARS) {
      key = sampledKey(KEY_SEEDS[kind], encoded);
      entry.kind = kind;
      entry.encoded = encoded;
    } else {
      key = hashedKey(kind, encoded);
    }
    this.#entries.set(key, entry);
    return entry;
  }

  #parseToEntry(parse: () => ParsedCertificate | ParsedCertificate[]): CacheEntry {
    try {
      return { ok: true, value: parse() };
    } catch (error) {
      if (error instanceof CertificateError) {
        return { ok: false, error };
      }
      throw error;
    }
  }
}

/**
 * Returns the cache key of a long text: `#` and the SHA-256 of kind and text. Envoy's encoded
 * PEM is ASCII, so it is hashed one byte per character (latin1 maps U+0000..U+00FF one to one),
 * which halves the hashed bytes. Any other string is hashed as UTF-16 under its own tag, which
 * keeps lone surrogates apart (UTF-8 would map them all to the same replacement bytes), so no
 * two strings share a key. Sampled keys are numbers, so they never equal these.
 */
function hashedKey(kind: 'certificate' | 'chain', encoded: string): string {
  const oneByte = !BEYOND_LATIN1.test(encoded);
  const digest = createHash('sha256')
    .update(kind)
    .update(oneByte ? '\0latin1\0' : '\0utf16le\0')
    .update(encoded, oneByte ? 'latin1' : 'utf16le')
    .digest('hex');
  return `#${digest}`;
}
