import { isIP } from 'node:net';
import type { RateLimitConfig } from '../config/schema.js';
import { AddressSet, normalizeIp } from '../net/cidr.js';
import type { Logger } from '../observability/logger.js';
import type { Decision, DenyDecision, DenyReason } from './decision.js';
import { KnownSourceTable, type KnownKey } from './known-sources.js';
import type { RequestHeaders } from './request.js';

/**
 * Limits failed authentication attempts per source address and per
 * (tenant, controller id), so that guessing tokens is slow, without letting a
 * guesser lock a device out. The README's "Failure limits" section states the
 * rules; this file is their only implementation.
 *
 * Each counter is a sliding-window estimate over two fixed windows aligned to
 * multiples of `windowMs` since the epoch: the current window's count plus the
 * previous window's count weighted by the part of it still inside the sliding
 * window. Aligned windows let replicas share counts under one Redis key per
 * window.
 *
 * `check()` and `record()` are synchronous and never touch the network. With a
 * shared count store, a timer exchanges counts in batches, so what other
 * replicas counted arrives within about one `syncIntervalMs`.
 */

/**
 * Deny reasons that count as a failed attempt: a presented token did not
 * match, a certificate does not name the id or is not trusted, or the tenant
 * or target does not exist. Requests that never reach a comparison (path,
 * size and syntax denies such as `authorization_malformed`,
 * `certificate_invalid` or `xfcc_malformed`, `no_credentials`,
 * `scheme_unsupported`, `method_disabled`) do not count. Neither do
 * certificates that are trusted but expired, not yet valid or not for client
 * use, which are a device's own fault, nor 503s and `rate_limited` itself.
 */
export const COUNTED_FAILURES: ReadonlySet<DenyReason> = new Set<DenyReason>([
  'unknown_tenant',
  'unknown_target',
  'token_missing',
  'token_mismatch',
  'cn_missing',
  'cn_multiple',
  'cn_mismatch',
  'issuer_not_trusted',
  'ca_not_pinned',
  'certificate_revoked',
  'proxy_headers_invalid',
]);

/** Token methods by the lower-case `Authorization` scheme that carries their credential. */
export const TOKEN_METHOD_BY_SCHEME: ReadonlyMap<string, TokenMethod> = new Map([
  ['targettoken', 'target-token'],
  ['gatewaytoken', 'gateway-token'],
]);

export type TokenMethod = 'target-token' | 'gateway-token';

/** Most sources remembered per controller id (or per tenant for gateway tokens); the least recently seen goes first. */
export const MAX_KNOWN_SOURCES_PER_KEY = 64;
/** Minimum time between two logged failures of the count exchange, in milliseconds; the rest are counted. */
const SYNC_ERROR_LOG_INTERVAL_MS = 60_000;
/**
 * Minimum time between two moves of a known source to the most recently used
 * end of the maps, in milliseconds. A device that authenticates many times a
 * second then costs one update of its time, not two map re-insertions per Check.
 */
const KNOWN_SOURCE_TOUCH_MS = 1_000;
/** Interval of the sweep that drops expired counters and known sources, in milliseconds. */
const SWEEP_INTERVAL_MS = 60_000;

const NO_FAILURES: readonly DenyDecision[] = Object.freeze([]);

/** One authentication attempt, as the limiter keys it. */
export interface Attempt {
  /** Source IP address (Envoy's `source.address`); undefined skips the per-source limit. */
  source: string | undefined;
  /** Upper-case tenant key from the path. */
  tenantKey: string;
  /** Controller id from the path. */
  controllerId: string;
}

/** Rejection of an attempt: the wait and the limit that applies. */
export interface Rejection {
  /** Whole seconds until the window frees a slot, at least 1; the `Retry-After` value. */
  retryAfterSeconds: number;
  /** The limit that rejected it. */
  scope: 'source' | 'target';
}

/** Local failures of one counter in one window, not yet added to the shared counts. */
export interface FailureIncrement {
  /** Counter key, such as `source:192.0.2.10` or `target:7:DEFAULT:device-01`. */
  counter: string;
  windowMs: number;
  /** Window index: start time divided by `windowMs`. */
  window: number;
  count: number;
}

/** Shared totals after an increment: its window and the window before it. */
export interface WindowTotals {
  counter: string;
  windowMs: number;
  window: number;
  total: number;
  previousTotal: number;
}

/** A counter over its limit on some replica, until the given time (epoch milliseconds). */
export interface SharedLimit {
  counter: string;
  until: number;
}

/** A source that authenticated the counter's controller id (or tenant gateway) at `at` (epoch milliseconds). */
export interface KnownSourceEntry {
  counter: string;
  source: string;
  at: number;
}

/**
 * Counts shared between replicas. Every method may reject, for example while
 * Redis is down; the limiter then keeps counting locally and retries.
 */
export interface FailureCountStore {
  /** Adds the increments and returns the totals of each increment's window and of the window before it. */
  addFailures(increments: readonly FailureIncrement[]): Promise<WindowTotals[]>;
  /** Announces counters that are over their limit; `keepMs` bounds how long the announcement is kept. */
  publishLimits(limits: readonly SharedLimit[], keepMs: number): Promise<void>;
  /** Returns up to `maxEntries` counters limited after `now` by any replica. */
  readLimits(now: number, maxEntries: number): Promise<SharedLimit[]>;
  /** Remembers sources for `keepMs`, at most `maxPerCounter` per counter. */
  addKnownSources(entries: readonly KnownSourceEntry[], keepMs: number, maxPerCounter: number): Promise<void>;
  /** Returns the sources of each counter seen at or after `since`. */
  readKnownSources(counters: readonly string[], since: number, maxPerCounter: number): Promise<KnownSourceEntry[]>;
  close(): Promise<void>;
}

export interface FailureLimiterOptions {
  /** Wall-clock time in epoch milliseconds; replicas align their windows on it. Default `Date.now`. */
  clock?: () => number;
  /** Counts shared with other replicas; without it, counts are local. */
  shared?: FailureCountStore;
  logger?: Logger;
}

/** Failures of one counter in the current and the previous window. */
interface WindowCounter {
  windowMs: number;
  /** Index of the current window. */
  window: number;
  current: number;
  previous: number;
}

/**
 * The failure limiter of one service instance. It lives as long as the
 * service; a reload changes its settings with `configure()` and keeps the
 * counts.
 */
export class FailureLimiter {
  #config: RateLimitConfig;
  #exempt: AddressSet;
  /** `ddi.certificate.trustedProxies`: the peers whose `X-Forwarded-For` names the client. */
  #trustedProxies: AddressSet;
  /** The last peer address checked against `#trustedProxies`, and whether it is in them. Most requests come from the same proxy, and a check cost about 1.5 µs. */
  #lastPeer: string | undefined;
  #lastPeerTrusted = false;
  readonly #clock: () => number;
  readonly #shared: FailureCountStore | undefined;
  readonly #logger: Logger | undefined;

  /** Failure counters by counter key, in least-recently-used order. */
  readonly #counters = new Map<string, WindowCounter>();
  /** Sources that authenticated each target or gateway key, in least-recently-used order. */
  readonly #known = new KnownSourceTable();
  /** Limits announced by any replica, from the last exchange: counter key to end time (epoch ms). */
  #sharedLimits = new Map<string, number>();
  /** Target and gateway keys limited at the last exchange; a key new to it gets its known sources read. */
  #limitedTargets = new Set<string>();

  /** Local failures not yet sent, by window-qualified counter key. */
  readonly #pendingFailures = new Map<string, FailureIncrement>();
  /** Known sources not yet written, by counter key and source. */
  readonly #pendingKnown = new Map<string, KnownSourceEntry>();
  /** Target and gateway keys whose known sources the next exchange reads. */
  readonly #knownReads = new Set<string>();

  #timer: NodeJS.Timeout | undefined;
  readonly #sweepTimer: NodeJS.Timeout;
  #syncing: Promise<void> | undefined;
  #closed = false;
  #failedExchanges = 0;
  #lastFailureLogAt = Number.NEGATIVE_INFINITY;

  constructor(config: RateLimitConfig, trustedProxies: readonly string[], options: FailureLimiterOptions = {}) {
    this.#config = config;
    this.#exempt = new AddressSet([...trustedProxies, ...config.exemptSources]);
    this.#trustedProxies = new AddressSet(trustedProxies);
    this.#clock = options.clock ?? Date.now;
    this.#shared = options.shared;
    this.#logger = options.logger?.child({ component: 'failure-limiter' });
    this.#startTimer();
    this.#sweepTimer = setInterval(() => this.sweep(), SWEEP_INTERVAL_MS);
    this.#sweepTimer.unref();
  }

  /** Applies reloaded settings; counts and known sources stay. */
  configure(config: RateLimitConfig, trustedProxies: readonly string[]): void {
    const intervalChanged = config.syncIntervalMs !== this.#config.syncIntervalMs;
    this.#config = config;
    this.#exempt = new AddressSet([...trustedProxies, ...config.exemptSources]);
    this.#trustedProxies = new AddressSet(trustedProxies);
    this.#lastPeer = undefined;
    trim(this.#counters, config.maxTrackedKeys);
    this.#known.trim(config.maxTrackedKeys);
    if (intervalChanged) {
      clearInterval(this.#timer);
      this.#startTimer();
    }
  }

  /**
   * Returns the address that a request's attempts count under: the peer, or,
   * with `forwardedForHops` N above 0 and a peer in `trustedProxies`, the
   * `X-Forwarded-For` entry N places left of the last one. Envoy appends the
   * peer's address last, and each of the N proxies the address it saw before,
   * so a client can only write entries further left. Without that entry, or
   * when it is not an IP address, the peer's address is kept.
   */
  sourceOf(peer: string | undefined, headers: RequestHeaders): string | undefined {
    const hops = this.#config.forwardedForHops;
    if (hops === 0 || peer === undefined) {
      return peer;
    }
    if (peer !== this.#lastPeer) {
      this.#lastPeer = peer;
      this.#lastPeerTrusted = this.#trustedProxies.has(peer);
    }
    if (!this.#lastPeerTrusted) {
      return peer;
    }
    const values = headers.all('x-forwarded-for');
    const entry = entryFromRight(values.length === 1 ? values[0] : values.join(','), hops);
    const client = entry === undefined ? '' : normalizeIp(entry);
    return isIP(client) === 0 ? peer : client;
  }

  /**
   * Returns a rejection when a token attempt must be rejected before its token
   * is compared, or undefined when it may proceed. An attempt is rejected when
   * its source is over the per-source limit (unless exempt), or when its
   * target is over the per-target limit and the source has not authenticated
   * that target within `knownSourceMs`. Certificates are never passed here.
   */
  check(attempt: Attempt, method: TokenMethod): Rejection | undefined {
    if (!this.#config.enabled) {
      return undefined;
    }
    if (this.#counters.size === 0 && this.#sharedLimits.size === 0) {
      // No failure counted here and no limit announced elsewhere: nothing can be over its limit.
      return undefined;
    }
    const now = this.#clock();
    let until = 0;
    let scope: Rejection['scope'] = 'source';

    if (attempt.source !== undefined && !this.#exempt.has(attempt.source)) {
      until = this.#limitedUntil(sourceKey(attempt.source), this.#config.perSource.windowMs, this.#config.perSource.maxFailures, now);
    }

    const target = targetKey(attempt, method === 'gateway-token');
    const targetUntil = this.#limitedUntil(target, this.#config.perTarget.windowMs, this.#config.perTarget.maxFailures, now);
    // NOTE: a shared exempt address (a NAT, or an outer proxy without forwardedForHops) that a device authenticated from
    // passes a limited id for everyone behind it. Limiting it there would let anyone behind it lock the device out.
    if (targetUntil > now && !this.#isKnownSource(attempt, method === 'gateway-token', now)) {
      if (this.#shared !== undefined && this.#knownReads.size < this.#config.maxTrackedKeys) {
        // Another replica may have seen this source authenticate; read it in the next exchange.
        this.#knownReads.add(target);
      }
      if (targetUntil > until) {
        until = targetUntil;
        scope = 'target';
      }
    }

    if (until <= now) {
      return undefined;
    }
    return { retryAfterSeconds: Math.max(1, Math.ceil((until - now) / 1000)), scope };
  }

  /**
   * Counts a decision. An allow remembers the source for the target. A deny
   * counts the failures in `failures` whose reason is in COUNTED_FAILURES (by
   * default the deny itself): one failure for the source, and one for each
   * counter that they name. Gateway-token failures use the tenant's gateway
   * counter, the others the controller id's.
   */
  record(attempt: Attempt, decision: Decision, failures: readonly DenyDecision[] = decision.kind === 'deny' ? [decision] : NO_FAILURES): void {
    if (!this.#config.enabled) {
      return;
    }
    if (decision.kind === 'allow') {
      this.#recordSuccess(attempt, decision.method === 'gateway-token');
      return;
    }
    let target = false;
    let gateway = false;
    for (const failure of failures) {
      if (COUNTED_FAILURES.has(failure.reason)) {
        if (failure.method === 'gateway-token') {
          gateway = true;
        } else {
          target = true;
        }
      }
    }
    if (!target && !gateway) {
      return;
    }
    const now = this.#clock();
    if (attempt.source !== undefined && !this.#exempt.has(attempt.source)) {
      this.#countFailure(sourceKey(attempt.source), this.#config.perSource.windowMs, now);
    }
    if (target) {
      this.#countFailure(targetKey(attempt, false), this.#config.perTarget.windowMs, now);
    }
    if (gateway) {
      this.#countFailure(targetKey(attempt, true), this.#config.perTarget.windowMs, now);
    }
  }

  /** Drops counters whose windows have both ended and sources not seen within `knownSourceMs`; runs every SWEEP_INTERVAL_MS. */
  sweep(): void {
    const now = this.#clock();
    for (const [counterKey, counter] of this.#counters) {
      if (Math.floor(now / counter.windowMs) > counter.window + 1) {
        this.#counters.delete(counterKey);
      }
    }
    for (const key of this.#known.keys()) {
      for (const [source, known] of key.sources) {
        if (now - known.seenAt > this.#config.knownSourceMs) {
          key.sources.delete(source);
        }
      }
      if (key.sources.size === 0) {
        this.#known.delete(key);
      }
    }
  }

  /** Number of failure counters and of keys with known sources held in memory. */
  get trackedKeys(): { counters: number; knownSources: number } {
    return { counters: this.#counters.size, knownSources: this.#known.size };
  }

  /**
   * Exchanges counts with the shared store once: sends local failures and
   * known sources, announces counters over their limit, and reads every
   * replica's limits and the known sources of newly limited targets. Errors
   * are logged, not thrown; unsent entries are kept for the next exchange.
   * Concurrent calls share one exchange.
   */
  syncNow(): Promise<void> {
    if (this.#shared === undefined || this.#closed || !this.#config.enabled) {
      return Promise.resolve();
    }
    this.#syncing ??= this.#exchange(this.#shared).finally(() => {
      this.#syncing = undefined;
    });
    return this.#syncing;
  }

  /** Stops the exchange timer, sends what is pending once more, and closes the shared store. */
  async close(): Promise<void> {
    if (this.#closed) {
      return;
    }
    clearInterval(this.#timer);
    clearInterval(this.#sweepTimer);
    this.#timer = undefined;
    if (this.#shared !== undefined) {
      await this.#syncing;
      if (this.#failedExchanges === 0) {
        await this.syncNow();
      }
      this.#closed = true;
      await this.#shared.close();
    }
    this.#closed = true;
  }

  #startTimer(): void {
    if (this.#shared === undefined || this.#closed) {
      return;
    }
    this.#timer = setInterval(() => void this.syncNow(), this.#config.syncIntervalMs);
    this.#timer.unref();
  }

  /** Returns the end of the counter's limit (epoch ms), from local counts or another replica's announcement, or 0. */
  #limitedUntil(counterKey: string, windowMs: number, maxFailures: number, now: number): number {
    const counter = this.#counters.get(counterKey);
    const local = counter === undefined ? 0 : limitEnd(counter, windowMs, maxFailures, now);
    const shared = this.#sharedLimits.get(counterKey) ?? 0;
    const until = Math.max(local, shared);
    return until > now ? until : 0;
  }

  #isKnownSource(attempt: Attempt, gateway: boolean, now: number): boolean {
    if (attempt.source === undefined || this.#config.knownSourceMs === 0) {
      return false;
    }
    const known = this.#known.find(attempt.tenantKey, gateway ? undefined : attempt.controllerId)?.sources.get(sourceBucket(attempt.source));
    return known !== undefined && now - known.seenAt <= this.#config.knownSourceMs;
  }

  /** Remembers that the attempt's source authenticated its controller id, or its tenant's gateway key. */
  #recordSuccess(attempt: Attempt, gateway: boolean): void {
    if (attempt.source === undefined || this.#config.knownSourceMs === 0) {
      return;
    }
    const now = this.#clock();
    const bucket = sourceBucket(attempt.source);
    const controllerId = gateway ? undefined : attempt.controllerId;
    let key = this.#known.find(attempt.tenantKey, controllerId);
    let entry = key?.sources.get(bucket);
    if (key !== undefined && entry !== undefined && now - entry.touchedAt < KNOWN_SOURCE_TOUCH_MS) {
      // Seen moments ago: its place in the least-recently-used order is still about right.
      entry.seenAt = Math.max(entry.seenAt, now);
    } else {
      if (key === undefined) {
        key = this.#known.add(targetKey(attempt, gateway), attempt.tenantKey, controllerId, this.#config.maxTrackedKeys);
      } else {
        this.#known.touch(key);
      }
      entry ??= { seenAt: now, writtenAt: undefined, touchedAt: now };
      entry.seenAt = Math.max(entry.seenAt, now);
      entry.touchedAt = now;
      touch(key.sources, bucket, entry, MAX_KNOWN_SOURCES_PER_KEY);
    }

    // Rewriting an entry that other replicas already have only moves its age, so it is rewritten after a tenth of knownSourceMs.
    const due = entry.writtenAt === undefined || now - entry.writtenAt >= this.#config.knownSourceMs / 10;
    if (this.#shared !== undefined && due) {
      touch(this.#pendingKnown, `${key.counter}\n${bucket}`, { counter: key.counter, source: bucket, at: now }, this.#config.maxTrackedKeys);
    }
  }

  #countFailure(counterKey: string, windowMs: number, now: number): void {
    const window = Math.floor(now / windowMs);
    const counter = this.#counters.get(counterKey) ?? { windowMs, window, current: 0, previous: 0 };
    roll(counter, windowMs, window);
    counter.current += 1;
    touch(this.#counters, counterKey, counter, this.#config.maxTrackedKeys);

    if (this.#shared !== undefined) {
      const pendingKey = `${windowMs}:${window}:${counterKey}`;
      const pending = this.#pendingFailures.get(pendingKey) ?? { counter: counterKey, windowMs, window, count: 0 };
      pending.count += 1;
      touch(this.#pendingFailures, pendingKey, pending, this.#config.maxTrackedKeys);
    }
  }

  async #exchange(shared: FailureCountStore): Promise<void> {
    try {
      const published = await this.#sendFailures(shared);
      await Promise.all([this.#readLimits(shared, published), this.#sendKnownSources(shared)]);
      await this.#readKnownSources(shared);
      if (this.#failedExchanges > 0) {
        this.#logger?.info({ failedExchanges: this.#failedExchanges }, 'exchanging failure counts with Redis works again');
      }
      this.#failedExchanges = 0;
    } catch (error) {
      this.#failedExchanges += 1;
      const now = performance.now();
      if (this.#failedExchanges === 1 || now - this.#lastFailureLogAt >= SYNC_ERROR_LOG_INTERVAL_MS) {
        this.#lastFailureLogAt = now;
        this.#logger?.warn(
          { err: error, failedExchanges: this.#failedExchanges },
          'exchanging failure counts with Redis failed; counting locally until it works again',
        );
      }
    }
  }

  /** Sends pending failures, folds the shared totals in, and announces counters that are now over their limit. */
  async #sendFailures(shared: FailureCountStore): Promise<string[]> {
    const now = this.#clock();
    const increments = [...this.#pendingFailures.values()].filter((entry) => entry.window >= Math.floor(now / entry.windowMs) - 1);
    this.#pendingFailures.clear();
    if (increments.length === 0) {
      return [];
    }

    let totals: WindowTotals[];
    try {
      totals = await shared.addFailures(increments);
    } catch (error) {
      this.#restorePending(increments);
      throw error;
    }

    const after = this.#clock();
    for (const totalsEntry of totals) {
      this.#foldTotals(totalsEntry, after);
    }

    const limits: SharedLimit[] = [];
    for (const counterKey of new Set(increments.map((entry) => entry.counter))) {
      const counter = this.#counters.get(counterKey);
      if (counter === undefined) {
        continue;
      }
      const maxFailures = isSourceKey(counterKey) ? this.#config.perSource.maxFailures : this.#config.perTarget.maxFailures;
      const until = limitEnd(counter, counter.windowMs, maxFailures, after);
      if (until > after && until > (this.#sharedLimits.get(counterKey) ?? 0)) {
        limits.push({ counter: counterKey, until: Math.ceil(until) });
      }
    }
    if (limits.length > 0) {
      await shared.publishLimits(limits, 2 * this.#maxWindowMs());
      for (const limit of limits) {
        this.#sharedLimits.set(limit.counter, limit.until);
      }
    }
    return limits.map((limit) => limit.counter);
  }

  /** Merges shared totals into a local counter; local failures sent later are added on top. */
  #foldTotals(totals: WindowTotals, now: number): void {
    const counter = this.#counters.get(totals.counter);
    if (counter === undefined || counter.windowMs !== totals.windowMs) {
      return;
    }
    roll(counter, counter.windowMs, Math.floor(now / counter.windowMs));
    const unsent = this.#pendingFailures.get(`${totals.windowMs}:${totals.window}:${totals.counter}`)?.count ?? 0;
    if (counter.window === totals.window) {
      counter.current = Math.max(counter.current, totals.total + unsent);
      counter.previous = Math.max(counter.previous, totals.previousTotal);
    } else if (counter.window === totals.window + 1) {
      counter.previous = Math.max(counter.previous, totals.total + unsent);
    }
  }

  #restorePending(increments: readonly FailureIncrement[]): void {
    for (const entry of increments) {
      const pendingKey = `${entry.windowMs}:${entry.window}:${entry.counter}`;
      const pending = this.#pendingFailures.get(pendingKey);
      if (pending === undefined) {
        touch(this.#pendingFailures, pendingKey, { ...entry }, this.#config.maxTrackedKeys);
      } else {
        pending.count += entry.count;
      }
    }
  }

  /** Replaces the shared limits with what every replica announced, and queues known-source reads for newly limited targets. */
  async #readLimits(shared: FailureCountStore, published: readonly string[]): Promise<void> {
    const now = this.#clock();
    const limits = await shared.readLimits(now, this.#config.maxTrackedKeys);
    const sharedLimits = new Map<string, number>();
    for (const limit of limits) {
      sharedLimits.set(limit.counter, limit.until);
    }
    this.#sharedLimits = sharedLimits;

    const limitedTargets = new Set<string>();
    for (const counterKey of [...published, ...sharedLimits.keys()]) {
      if (isSourceKey(counterKey)) {
        continue;
      }
      limitedTargets.add(counterKey);
      if (!this.#limitedTargets.has(counterKey) && this.#config.knownSourceMs > 0 && this.#knownReads.size < this.#config.maxTrackedKeys) {
        this.#knownReads.add(counterKey);
      }
    }
    this.#limitedTargets = limitedTargets;
  }

  async #sendKnownSources(shared: FailureCountStore): Promise<void> {
    const entries = [...this.#pendingKnown.values()];
    this.#pendingKnown.clear();
    if (entries.length === 0) {
      return;
    }
    try {
      await shared.addKnownSources(entries, this.#config.knownSourceMs, MAX_KNOWN_SOURCES_PER_KEY);
    } catch (error) {
      for (const entry of entries) {
        const pendingKey = `${entry.counter}\n${entry.source}`;
        if (!this.#pendingKnown.has(pendingKey)) {
          touch(this.#pendingKnown, pendingKey, entry, this.#config.maxTrackedKeys);
        }
      }
      throw error;
    }
    for (const entry of entries) {
      const known = this.#known.get(entry.counter)?.sources.get(entry.source);
      if (known !== undefined) {
        known.writtenAt = Math.max(known.writtenAt ?? 0, entry.at);
      }
    }
  }

  async #readKnownSources(shared: FailureCountStore): Promise<void> {
    const counters = [...this.#knownReads];
    this.#knownReads.clear();
    if (counters.length === 0 || this.#config.knownSourceMs === 0) {
      return;
    }
    const now = this.#clock();
    let entries: KnownSourceEntry[];
    try {
      entries = await shared.readKnownSources(counters, now - this.#config.knownSourceMs, MAX_KNOWN_SOURCES_PER_KEY);
    } catch (error) {
      for (const counterKey of counters) {
        this.#knownReads.add(counterKey);
      }
      throw error;
    }
    for (const entry of entries) {
      const key = this.#known.get(entry.counter) ?? this.#addKnownKey(entry.counter);
      if (key === undefined) {
        continue;
      }
      const known = key.sources.get(entry.source);
      if (known === undefined) {
        touch(key.sources, entry.source, { seenAt: entry.at, writtenAt: entry.at, touchedAt: now }, MAX_KNOWN_SOURCES_PER_KEY);
      } else {
        known.seenAt = Math.max(known.seenAt, entry.at);
        known.writtenAt = Math.max(known.writtenAt ?? 0, entry.at);
      }
    }
  }

  /** Adds the key of a counter that the shared store named, or returns undefined when the counter names no target or gateway key. */
  #addKnownKey(counter: string): KnownKey | undefined {
    const parts = targetOfKey(counter);
    return parts && this.#known.add(counter, parts.tenantKey, parts.controllerId, this.#config.maxTrackedKeys);
  }

  #maxWindowMs(): number {
    return Math.max(this.#config.perSource.windowMs, this.#config.perTarget.windowMs);
  }
}

/** Moves a counter forward to `window`: the current count becomes the previous one, or both expire. */
function roll(counter: WindowCounter, windowMs: number, window: number): void {
  if (counter.windowMs !== windowMs) {
    // The window length changed on reload; the old counts do not map onto the new windows.
    counter.windowMs = windowMs;
    counter.window = window;
    counter.current = 0;
    counter.previous = 0;
    return;
  }
  if (window <= counter.window) {
    return;
  }
  counter.previous = window === counter.window + 1 ? counter.current : 0;
  counter.current = 0;
  counter.window = window;
}

/**
 * Returns when the counter's estimate drops below `maxFailures` again, if no
 * further failure arrives (epoch ms), or 0 when it is below already. The
 * estimate at a fraction `f` into the current window is
 * `current + previous * (1 - f)`.
 */
export function limitEnd(counter: WindowCounter, windowMs: number, maxFailures: number, now: number): number {
  // A wall clock that stepped back keeps the counter's own window, which only overestimates.
  const window = Math.max(Math.floor(now / windowMs), counter.window);
  if (counter.windowMs !== windowMs || window > counter.window + 1) {
    return 0;
  }
  const current = window === counter.window ? counter.current : 0;
  const previous = window === counter.window ? counter.previous : counter.current;
  const windowStart = window * windowMs;
  const elapsed = (now - windowStart) / windowMs;
  if (current + previous * (1 - elapsed) < maxFailures) {
    return 0;
  }
  if (current >= maxFailures) {
    // Below the limit only in the next window, once `current * (1 - f)` drops under maxFailures.
    return windowStart + windowMs + windowMs * (1 - maxFailures / current);
  }
  return Math.max(now + 1, windowStart + windowMs * (1 - (maxFailures - current) / previous));
}

function sourceKey(source: string): string {
  return `source:${sourceBucket(source)}`;
}

function isSourceKey(counterKey: string): boolean {
  return counterKey.startsWith('source:');
}

/**
 * Returns the entry of a comma-separated list that is `places` entries left
 * of the last one, trimmed, or undefined when the list is shorter. It reads
 * from the end, so a long list that a client wrote costs no more.
 */
function entryFromRight(list: string, places: number): string | undefined {
  let end = list.length;
  for (let skipped = 0; skipped < places; skipped++) {
    const comma = end === 0 ? -1 : list.lastIndexOf(',', end - 1);
    if (comma === -1) {
      return undefined;
    }
    end = comma;
  }
  const start = end === 0 ? 0 : list.lastIndexOf(',', end - 1) + 1;
  return list.slice(start, end).trim();
}

/** Counter key of a controller id, or of the tenant's gateway token; the length prefix keeps every pair distinct. */
function targetKey(attempt: Attempt, gateway: boolean): string {
  return gateway ? `gateway:${attempt.tenantKey}` : `target:${attempt.tenantKey.length}:${attempt.tenantKey}:${attempt.controllerId}`;
}

/**
 * Returns the tenant key and controller id (undefined for a gateway key) that
 * a counter key from targetKey names, or undefined for any other string.
 */
export function targetOfKey(counter: string): { tenantKey: string; controllerId: string | undefined } | undefined {
  if (counter.startsWith('gateway:')) {
    return { tenantKey: counter.slice('gateway:'.length), controllerId: undefined };
  }
  const match = /^target:(\d{1,4}):/.exec(counter);
  if (match === null) {
    return undefined;
  }
  const tenantStart = match[0].length;
  const tenantEnd = tenantStart + Number(match[1]);
  const target = { tenantKey: counter.slice(tenantStart, tenantEnd), controllerId: counter.slice(tenantEnd + 1) };
  // Only the one spelling that targetKey writes, so that no two counter keys name the same target.
  return targetKey({ source: undefined, ...target }, false) === counter ? target : undefined;
}

/**
 * The unit a source is counted and remembered by: an IPv4 address, or the /64
 * prefix of an IPv6 address, because one IPv6 host or LAN usually has a
 * whole /64 and could otherwise count under endless addresses.
 */
export function sourceBucket(address: string): string {
  if (!address.includes(':')) {
    // IPv4, counted by itself; an IPv4-mapped IPv6 address has a colon and is unmapped below.
    return address;
  }
  const ip = normalizeIp(address);
  if (isIP(ip) !== 6) {
    return ip;
  }
  const hextets = expandIpv6(ip);
  return `${hextets.slice(0, 4).join(':')}::/64`;
}

/** Returns the eight hextets of a valid IPv6 address, without leading zeros. */
function expandIpv6(address: string): string[] {
  let text = address.toLowerCase();
  const embedded = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (embedded) {
    const [a, b, c, d] = embedded.slice(1).map(Number);
    text = `${text.slice(0, embedded.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.split('::');
  const headParts = head === '' ? [] : head.split(':');
  const tailParts = tail === undefined || tail === '' ? [] : tail.split(':');
  const zeros = tail === undefined ? [] : new Array<string>(8 - headParts.length - tailParts.length).fill('0');
  return [...headParts, ...zeros, ...tailParts].map((part) => parseInt(part, 16).toString(16));
}

/** Sets `key` as the most recently used entry and evicts the least recently used ones above `maxEntries`. */
function touch<V>(map: Map<string, V>, key: string, value: V, maxEntries: number): void {
  map.delete(key);
  map.set(key, value);
  trim(map, maxEntries);
}

function trim<V>(map: Map<string, V>, maxEntries: number): void {
  while (map.size > maxEntries) {
    map.delete(map.keys().next().value as string);
  }
}
