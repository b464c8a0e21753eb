import { expect } from 'chai';
import { deny, httpStatusFor, type Decision, type DenyDecision, type DenyReason } from '../src/auth/decision.js';
import {
  COUNTED_FAILURES,
  FailureLimiter,
  limitEnd,
  sourceBucket,
  type Attempt,
  type FailureCountStore,
  type FailureIncrement,
  type KnownSourceEntry,
  type SharedLimit,
  type WindowTotals,
} from '../src/auth/failure-limiter.js';
import { parseConfig } from '../src/config/load.js';
import type { RateLimitConfig } from '../src/config/schema.js';
import { ConfigError } from '../src/config/errors.js';
import { CheckResponseBuilder } from '../src/envoy/check-response.js';
import { RequestHeaders } from '../src/auth/request.js';
import { encodePemLikeEnvoy } from '../src/envoy/envoy-encoding.js';
import { CapturedLog, envoyRequest, outcome, startService, type RunningService } from './helpers/service.js';
import { TestPki, type TestCertificate } from './helpers/pki.js';
import pino from 'pino';

const MINUTE_MS = 60_000;
/** A wall-clock time at the start of a one-minute window, so window arithmetic in the tests is exact. */
const WINDOW_START = 1_700_000_040_000;

function limits(overrides: Partial<RateLimitConfig> = {}): RateLimitConfig {
  return {
    enabled: true,
    perSource: { maxFailures: 5, windowMs: MINUTE_MS },
    perTarget: { maxFailures: 3, windowMs: MINUTE_MS },
    knownSourceMs: 3_600_000,
    exemptSources: [],
    maxTrackedKeys: 1000,
    syncIntervalMs: 250,
    forwardedForHops: 0,
    ...overrides,
  };
}

class FakeClock {
  constructor(public now = WINDOW_START) {}
  readonly read = (): number => this.now;
  advance(ms: number): void {
    this.now += ms;
  }
}

const attempt = (source: string | undefined, controllerId = 'device-01', tenantKey = 'DEFAULT'): Attempt => ({ source, tenantKey, controllerId });
const failure = (reason: DenyReason = 'token_mismatch', method: 'target-token' | 'gateway-token' = 'target-token'): DenyDecision =>
  deny(reason, { tenant: 'DEFAULT', controllerId: 'device-01', method });
const allow = (method: 'certificate' | 'target-token' | 'gateway-token' = 'target-token'): Decision => ({ kind: 'allow', tenant: 'DEFAULT', controllerId: 'device-01', method });

describe('failure limiter rules', () => {
  let clock: FakeClock;
  const limiters: FailureLimiter[] = [];
  const create = (config: RateLimitConfig = limits(), trustedProxies: string[] = [], shared?: FailureCountStore, logger?: pino.Logger) => {
    const limiter = new FailureLimiter(config, trustedProxies, { clock: clock.read, shared, logger });
    limiters.push(limiter);
    return limiter;
  };

  beforeEach(() => {
    clock = new FakeClock();
  });

  afterEach(async () => {
    await Promise.all(limiters.splice(0).map((limiter) => limiter.close()));
  });

  describe('what counts', () => {
    it('counts token and certificate failures', () => {
      const counted: DenyReason[] = ['token_mismatch', 'unknown_target', 'token_missing', 'unknown_tenant', 'issuer_not_trusted', 'cn_mismatch', 'certificate_revoked'];
      for (const reason of counted) {
        expect(COUNTED_FAILURES.has(reason), reason).to.equal(true);
      }
    });

    it('ignores path, syntax, store and limiter denies', () => {
      const ignored: DenyReason[] = [
        'path_not_ddi',
        'path_not_canonical',
        'no_credentials',
        'scheme_unsupported',
        'authorization_malformed',
        'method_disabled',
        'certificate_invalid',
        'certificate_expired',
        'store_unavailable',
        'deadline_exceeded',
        'rate_limited',
      ];
      const limiter = create(limits({ perSource: { maxFailures: 1, windowMs: MINUTE_MS }, perTarget: { maxFailures: 1, windowMs: MINUTE_MS } }));
      for (const reason of ignored) {
        expect(COUNTED_FAILURES.has(reason), reason).to.equal(false);
        limiter.record(attempt('192.0.2.1'), failure(reason));
      }
      expect(limiter.check(attempt('192.0.2.1'), 'target-token')).to.equal(undefined);
      expect(limiter.trackedKeys.counters).to.equal(0);
    });

    it('rejects nothing when disabled', () => {
      const limiter = create(limits({ enabled: false }));
      for (let i = 0; i < 20; i++) {
        limiter.record(attempt('192.0.2.1'), failure());
      }
      expect(limiter.check(attempt('192.0.2.1'), 'target-token')).to.equal(undefined);
      expect(limiter.trackedKeys.counters).to.equal(0);
    });
  });

  describe('per-source limit', () => {
    it('rejects a source after maxFailures failures', () => {
      const limiter = create(limits({ perTarget: { maxFailures: 1000, windowMs: MINUTE_MS } }));
      for (let i = 0; i < 5; i++) {
        expect(limiter.check(attempt('192.0.2.1', `id-${i}`), 'target-token'), `attempt ${i + 1}`).to.equal(undefined);
        limiter.record(attempt('192.0.2.1', `id-${i}`), failure());
      }
      const rejection = limiter.check(attempt('192.0.2.1', 'id-new'), 'target-token');
      expect(rejection?.scope).to.equal('source');
      expect(rejection?.retryAfterSeconds).to.equal(60);
    });

    it('leaves other sources alone', () => {
      const limiter = create();
      for (let i = 0; i < 5; i++) {
        limiter.record(attempt('192.0.2.1', `id-${i}`), failure());
      }
      expect(limiter.check(attempt('192.0.2.2', 'id-new'), 'target-token')).to.equal(undefined);
      expect(limiter.check(attempt('192.0.2.2', 'id-new'), 'gateway-token')).to.equal(undefined);
    });

    it('frees a slot as the window slides', () => {
      const limiter = create();
      for (let i = 0; i < 5; i++) {
        limiter.record(attempt('192.0.2.1', `id-${i}`), failure());
      }
      // In the next window the five failures weigh 5 * (1 - f); below 5 as soon as f > 0.
      clock.advance(MINUTE_MS);
      expect(limiter.check(attempt('192.0.2.1', 'x'), 'target-token')?.retryAfterSeconds).to.equal(1);
      clock.advance(1);
      expect(limiter.check(attempt('192.0.2.1', 'x'), 'target-token')).to.equal(undefined);

      // One more failure: 1 + 5 * (1 - f) >= 5 until f reaches 1/5 of the window.
      limiter.record(attempt('192.0.2.1', 'x'), failure());
      expect(limiter.check(attempt('192.0.2.1', 'y'), 'target-token')?.retryAfterSeconds).to.equal(12);
      clock.advance(12_000);
      expect(limiter.check(attempt('192.0.2.1', 'y'), 'target-token')).to.equal(undefined);
    });

    it('forgets failures two windows old', () => {
      const limiter = create();
      for (let i = 0; i < 5; i++) {
        limiter.record(attempt('192.0.2.1', `id-${i}`), failure());
      }
      clock.advance(2 * MINUTE_MS);
      expect(limiter.check(attempt('192.0.2.1', 'x'), 'target-token')).to.equal(undefined);
    });

    it('skips exempt sources and trusted proxies', () => {
      const limiter = create(limits({ exemptSources: ['198.51.100.0/24'], perTarget: { maxFailures: 1000, windowMs: MINUTE_MS } }), ['203.0.113.7']);
      for (const source of ['198.51.100.20', '203.0.113.7', '::ffff:198.51.100.21']) {
        for (let i = 0; i < 20; i++) {
          limiter.record(attempt(source, `id-${i}`), failure());
        }
        expect(limiter.check(attempt(source, 'id-new'), 'target-token'), source).to.equal(undefined);
      }
      expect(limiter.trackedKeys.counters).to.equal(20);
    });

    it('skips a request without a source address', () => {
      const limiter = create(limits({ perTarget: { maxFailures: 1000, windowMs: MINUTE_MS } }));
      for (let i = 0; i < 20; i++) {
        limiter.record(attempt(undefined, `id-${i}`), failure());
      }
      expect(limiter.check(attempt(undefined, 'id-new'), 'target-token')).to.equal(undefined);
    });

    it('counts an IPv6 /64 as one source', () => {
      const limiter = create(limits({ perTarget: { maxFailures: 1000, windowMs: MINUTE_MS } }));
      for (let i = 0; i < 5; i++) {
        limiter.record(attempt(`2001:db8:1:2::${i + 1}`, `id-${i}`), failure());
      }
      expect(limiter.check(attempt('2001:db8:1:2:ffff::9', 'id-new'), 'target-token')?.scope).to.equal('source');
      expect(limiter.check(attempt('2001:db8:1:3::1', 'id-new'), 'target-token')).to.equal(undefined);
    });
  });

  describe('per-target limit', () => {
    it('rejects attempts for an id guessed from many sources', () => {
      const limiter = create();
      for (let i = 0; i < 3; i++) {
        limiter.record(attempt(`192.0.2.${i + 1}`), failure());
      }
      const rejection = limiter.check(attempt('192.0.2.99'), 'target-token');
      expect(rejection?.scope).to.equal('target');
      expect(rejection?.retryAfterSeconds).to.equal(60);
      expect(limiter.check(attempt('192.0.2.99', 'device-02'), 'target-token')).to.equal(undefined);
    });

    it('lets the source that authenticated the id through', () => {
      const limiter = create();
      limiter.record(attempt('198.51.100.5'), allow());
      for (let i = 0; i < 10; i++) {
        limiter.record(attempt(`192.0.2.${i + 1}`), failure());
      }
      expect(limiter.check(attempt('198.51.100.5'), 'target-token')).to.equal(undefined);
      expect(limiter.check(attempt('198.51.100.6'), 'target-token')?.scope).to.equal('target');
    });

    it('remembers a certificate-authenticated source too', () => {
      const limiter = create();
      limiter.record(attempt('198.51.100.5'), allow('certificate'));
      for (let i = 0; i < 3; i++) {
        limiter.record(attempt(`192.0.2.${i + 1}`), failure());
      }
      expect(limiter.check(attempt('198.51.100.5'), 'target-token')).to.equal(undefined);
    });

    it('forgets a known source after knownSourceMs', () => {
      const limiter = create(limits({ knownSourceMs: 10_000 }));
      limiter.record(attempt('198.51.100.5'), allow());
      clock.advance(10_001);
      for (let i = 0; i < 3; i++) {
        limiter.record(attempt(`192.0.2.${i + 1}`), failure());
      }
      expect(limiter.check(attempt('198.51.100.5'), 'target-token')?.scope).to.equal('target');
    });

    it('exempts no source with knownSourceMs 0', () => {
      const limiter = create(limits({ knownSourceMs: 0 }));
      limiter.record(attempt('198.51.100.5'), allow());
      for (let i = 0; i < 3; i++) {
        limiter.record(attempt(`192.0.2.${i + 1}`), failure());
      }
      expect(limiter.check(attempt('198.51.100.5'), 'target-token')?.scope).to.equal('target');
    });

    it('limits a known source per source', () => {
      const limiter = create(limits({ perTarget: { maxFailures: 1000, windowMs: MINUTE_MS } }));
      limiter.record(attempt('198.51.100.5'), allow());
      for (let i = 0; i < 5; i++) {
        limiter.record(attempt('198.51.100.5', `id-${i}`), failure());
      }
      expect(limiter.check(attempt('198.51.100.5'), 'target-token')?.scope).to.equal('source');
    });

    it('reads the client behind trusted proxies', () => {
      const proxy = '203.0.113.7';
      const sourceOf = (hops: number, peer: string, forwardedFor?: string) =>
        create(limits({ forwardedForHops: hops }), [proxy]).sourceOf(peer, RequestHeaders.ofLowerCaseMap(forwardedFor === undefined ? {} : { 'x-forwarded-for': forwardedFor }));

      expect(sourceOf(1, proxy, `198.51.100.9, ${proxy}`)).to.equal('198.51.100.9');
      expect(sourceOf(1, proxy, `10.0.0.1, 198.51.100.9,${proxy}`), 'entries a client wrote').to.equal('198.51.100.9');
      expect(sourceOf(1, proxy, `::ffff:198.51.100.9, ${proxy}`)).to.equal('198.51.100.9');
      expect(sourceOf(1, proxy, `2001:db8::5, ${proxy}`)).to.equal('2001:db8::5');
      expect(sourceOf(2, proxy, `10.0.0.1, 198.51.100.9, 192.0.2.40, ${proxy}`), 'two proxies').to.equal('198.51.100.9');
      expect(sourceOf(1, proxy, `${proxy}, ${proxy}`), 'a trusted address in the client entry').to.equal(proxy);
      expect(sourceOf(0, proxy, `198.51.100.9, ${proxy}`), 'hops 0').to.equal(proxy);
      expect(sourceOf(1, '192.0.2.5', `198.51.100.9, 192.0.2.5`), 'a peer that is no proxy').to.equal('192.0.2.5');
      expect(sourceOf(1, proxy), 'no header').to.equal(proxy);
      expect(sourceOf(1, proxy, proxy), 'too few entries').to.equal(proxy);
      expect(sourceOf(2, proxy, `198.51.100.9, ${proxy}`), 'too few for two proxies').to.equal(proxy);
      expect(sourceOf(1, proxy, `198.51.100.9:4711, ${proxy}`), 'not an address').to.equal(proxy);
      expect(sourceOf(1, proxy, `, ${proxy}`), 'empty entry').to.equal(proxy);
      expect(sourceOf(1, proxy, ''), 'empty header').to.equal(proxy);
    });

    it('lets a known exempt source through', () => {
      const nat = '203.0.113.50';
      const limiter = create(limits({ exemptSources: [nat] }));
      limiter.record(attempt(nat), allow());
      for (let i = 0; i < 10; i++) {
        limiter.record(attempt(nat), failure());
      }
      expect(limiter.check(attempt(nat), 'target-token')).to.equal(undefined);
      expect(limiter.check(attempt('192.0.2.1'), 'target-token')?.scope).to.equal('target');
    });

    it('keeps tenants apart', () => {
      const limiter = create();
      for (let i = 0; i < 3; i++) {
        limiter.record(attempt(`192.0.2.${i + 1}`, 'device-01', 'ACME'), failure());
      }
      expect(limiter.check(attempt('192.0.2.99', 'device-01', 'ACME'), 'target-token')?.scope).to.equal('target');
      expect(limiter.check(attempt('192.0.2.99', 'device-01', 'DEFAULT'), 'target-token')).to.equal(undefined);
    });
  });

  describe('denies with several failures', () => {
    const certificateFailure = deny('cn_mismatch', { tenant: 'DEFAULT', controllerId: 'device-01', method: 'certificate' });
    const uncounted = deny('xfcc_untrusted', { tenant: 'DEFAULT', controllerId: 'device-01', method: 'certificate' });

    it('count each counter they name', () => {
      const limiter = create();
      for (let i = 0; i < 3; i++) {
        limiter.record(attempt(`192.0.2.${i + 1}`), certificateFailure, [certificateFailure, failure('token_mismatch', 'gateway-token')]);
      }
      expect(limiter.check(attempt('192.0.2.99', 'device-09'), 'gateway-token')?.scope).to.equal('target');
      expect(limiter.check(attempt('192.0.2.99'), 'target-token')?.scope).to.equal('target');
    });

    it('count the source once', () => {
      const limiter = create(limits({ perTarget: { maxFailures: 1000, windowMs: MINUTE_MS } }));
      for (let i = 0; i < 4; i++) {
        limiter.record(attempt('192.0.2.7', `id-${i}`), certificateFailure, [certificateFailure, failure()]);
      }
      expect(limiter.check(attempt('192.0.2.7', 'id-new'), 'target-token')).to.equal(undefined);
      limiter.record(attempt('192.0.2.7', 'id-5'), failure());
      expect(limiter.check(attempt('192.0.2.7', 'id-new'), 'target-token')?.scope).to.equal('source');
    });

    it('count nothing without a counted failure', () => {
      const limiter = create();
      for (let i = 0; i < 5; i++) {
        limiter.record(attempt('192.0.2.8'), uncounted, [uncounted]);
      }
      expect(limiter.trackedKeys.counters).to.equal(0);
    });
  });

  describe('gateway tokens', () => {
    it('count per tenant, apart from target ids', () => {
      const limiter = create();
      for (let i = 0; i < 3; i++) {
        limiter.record(attempt(`192.0.2.${i + 1}`, `id-${i}`), failure('token_mismatch', 'gateway-token'));
      }
      expect(limiter.check(attempt('192.0.2.99', 'id-9'), 'gateway-token')?.scope).to.equal('target');
      expect(limiter.check(attempt('192.0.2.99', 'id-0'), 'target-token')).to.equal(undefined);
      expect(limiter.check(attempt('192.0.2.99', 'id-9', 'ACME'), 'gateway-token')).to.equal(undefined);
    });

    it('let a gateway that authenticated through', () => {
      const limiter = create();
      limiter.record(attempt('198.51.100.5', 'any-id'), allow('gateway-token'));
      for (let i = 0; i < 3; i++) {
        limiter.record(attempt(`192.0.2.${i + 1}`, `id-${i}`), failure('token_mismatch', 'gateway-token'));
      }
      expect(limiter.check(attempt('198.51.100.5', 'other-id'), 'gateway-token')).to.equal(undefined);
      expect(limiter.check(attempt('198.51.100.6', 'other-id'), 'gateway-token')?.scope).to.equal('target');
    });
  });

  describe('memory bounds', () => {
    it('keeps at most maxTrackedKeys counters', () => {
      const limiter = create(limits({ maxTrackedKeys: 100 }));
      for (let i = 0; i < 1000; i++) {
        limiter.record(attempt(`10.0.${i >> 8}.${i & 255}`, `id-${i}`), failure());
        limiter.record(attempt(`10.0.${i >> 8}.${i & 255}`, `id-${i}`), allow());
      }
      expect(limiter.trackedKeys.counters).to.equal(100);
      expect(limiter.trackedKeys.knownSources).to.equal(100);
    });

    it('evicts the least recently used counter first', () => {
      const limiter = create(limits({ maxTrackedKeys: 100, perSource: { maxFailures: 1, windowMs: MINUTE_MS } }));
      limiter.record(attempt('192.0.2.1', 'id-0'), failure());
      for (let i = 1; i < 49; i++) {
        limiter.record(attempt(`10.0.0.${i}`, `id-${i}`), failure());
        // Keeps the first source counter recent.
        limiter.record(attempt('192.0.2.1', 'id-0'), failure());
      }
      expect(limiter.check(attempt('192.0.2.1', 'id-x'), 'target-token')?.scope).to.equal('source');
      for (let i = 49; i < 100; i++) {
        limiter.record(attempt(`10.0.0.${i}`, `id-${i}`), failure());
      }
      expect(limiter.check(attempt('192.0.2.1', 'id-x'), 'target-token')).to.equal(undefined);
    });

    it('sweeps ended windows and old known sources', () => {
      const limiter = create(limits({ knownSourceMs: MINUTE_MS }));
      limiter.record(attempt('192.0.2.1'), failure());
      limiter.record(attempt('198.51.100.5', 'device-02'), allow());
      expect(limiter.trackedKeys).to.deep.equal({ counters: 2, knownSources: 1 });
      clock.advance(MINUTE_MS);
      limiter.sweep();
      expect(limiter.trackedKeys).to.deep.equal({ counters: 2, knownSources: 1 });
      clock.advance(MINUTE_MS + 1);
      limiter.sweep();
      expect(limiter.trackedKeys).to.deep.equal({ counters: 0, knownSources: 0 });
    });
  });

  describe('reload', () => {
    it('keeps counts and applies new limits', () => {
      const limiter = create();
      for (let i = 0; i < 3; i++) {
        limiter.record(attempt(`192.0.2.${i + 1}`), failure());
      }
      limiter.configure(limits({ perTarget: { maxFailures: 4, windowMs: MINUTE_MS } }), []);
      expect(limiter.check(attempt('192.0.2.99'), 'target-token')).to.equal(undefined);
      limiter.configure(limits({ perTarget: { maxFailures: 2, windowMs: MINUTE_MS } }), []);
      expect(limiter.check(attempt('192.0.2.99'), 'target-token')?.scope).to.equal('target');
    });

    it('restarts counts of a changed window length', () => {
      const limiter = create();
      for (let i = 0; i < 3; i++) {
        limiter.record(attempt(`192.0.2.${i + 1}`), failure());
      }
      limiter.configure(limits({ perTarget: { maxFailures: 3, windowMs: 2 * MINUTE_MS } }), []);
      expect(limiter.check(attempt('192.0.2.99'), 'target-token')).to.equal(undefined);
    });

    it('trims known sources to a smaller bound', () => {
      const limiter = create();
      for (let i = 0; i < 10; i++) {
        limiter.record(attempt(`198.51.100.${i}`, `id-${i}`), allow());
      }
      limiter.configure(limits({ maxTrackedKeys: 3 }), []);
      expect(limiter.trackedKeys.knownSources).to.equal(3);

      for (const id of ['id-0', 'id-9']) {
        for (let i = 0; i < 3; i++) {
          limiter.record(attempt('192.0.2.1', id), failure());
        }
      }
      // id-9 was among the three most recent ids, so its address is still known, and id-0's was dropped.
      expect(limiter.check(attempt('198.51.100.9', 'id-9'), 'target-token')).to.equal(undefined);
      expect(limiter.check(attempt('198.51.100.0', 'id-0'), 'target-token')?.scope).to.equal('target');
    });

    it('applies new exempt sources', () => {
      const limiter = create(limits({ perTarget: { maxFailures: 1000, windowMs: MINUTE_MS } }));
      for (let i = 0; i < 5; i++) {
        limiter.record(attempt('192.0.2.1', `id-${i}`), failure());
      }
      limiter.configure(limits({ perTarget: { maxFailures: 1000, windowMs: MINUTE_MS }, exemptSources: ['192.0.2.0/24'] }), []);
      expect(limiter.check(attempt('192.0.2.1', 'id-new'), 'target-token')).to.equal(undefined);
    });
  });

  describe('shared counts', () => {
    it('makes another replica reject after an exchange', async () => {
      const shared = new FakeCountStore();
      const first = create(limits(), [], shared);
      const second = create(limits(), [], shared);
      for (let i = 0; i < 3; i++) {
        first.record(attempt(`192.0.2.${i + 1}`), failure());
      }
      expect(second.check(attempt('192.0.2.50'), 'target-token')).to.equal(undefined);
      await first.syncNow();
      await second.syncNow();
      const rejection = second.check(attempt('192.0.2.50'), 'target-token');
      expect(rejection?.scope).to.equal('target');
      expect(rejection?.retryAfterSeconds).to.equal(60);
    });

    it('adds failures that no replica saw alone', async () => {
      const shared = new FakeCountStore();
      const first = create(limits(), [], shared);
      const second = create(limits(), [], shared);
      first.record(attempt('192.0.2.1'), failure());
      first.record(attempt('192.0.2.2'), failure());
      await first.syncNow();
      second.record(attempt('192.0.2.3'), failure());
      expect(second.check(attempt('192.0.2.50'), 'target-token')).to.equal(undefined);
      await second.syncNow();
      expect(second.check(attempt('192.0.2.50'), 'target-token')?.scope).to.equal('target');
      await first.syncNow();
      expect(first.check(attempt('192.0.2.50'), 'target-token')?.scope).to.equal('target');
    });

    it('shares the sources that authenticated', async () => {
      const shared = new FakeCountStore();
      const first = create(limits(), [], shared);
      const second = create(limits(), [], shared);
      first.record(attempt('198.51.100.5'), allow());
      await first.syncNow();
      for (let i = 0; i < 3; i++) {
        first.record(attempt(`192.0.2.${i + 1}`), failure());
      }
      await first.syncNow();
      await second.syncNow();
      expect(second.check(attempt('198.51.100.5'), 'target-token')).to.equal(undefined);
      expect(second.check(attempt('198.51.100.6'), 'target-token')?.scope).to.equal('target');
    });

    it('reads shared sources of well-formed counters only', async () => {
      const shared = new FakeCountStore();
      const limiter = create(limits(), [], shared);
      const until = clock.now + MINUTE_MS;
      // Another replica limited the id and knew its device. A malformed counter names the same id in another spelling.
      await shared.publishLimits([
        { counter: 'target:7:DEFAULT:device-01', until },
        { counter: 'target:07:DEFAULT:device-01', until },
      ]);
      await shared.addKnownSources([
        { counter: 'target:7:DEFAULT:device-01', source: '198.51.100.5', at: clock.now },
        { counter: 'target:07:DEFAULT:device-01', source: '198.51.100.6', at: clock.now },
      ]);

      await limiter.syncNow();
      expect(limiter.trackedKeys.knownSources).to.equal(1);
      expect(limiter.check(attempt('198.51.100.5'), 'target-token')).to.equal(undefined);
      expect(limiter.check(attempt('198.51.100.6'), 'target-token')?.scope).to.equal('target');
    });

    it('rewrites a known source after a tenth', async () => {
      const shared = new FakeCountStore();
      const limiter = create(limits({ knownSourceMs: 100_000 }), [], shared);
      limiter.record(attempt('198.51.100.5'), allow());
      await limiter.syncNow();
      clock.advance(5_000);
      limiter.record(attempt('198.51.100.5'), allow());
      await limiter.syncNow();
      expect(shared.knownWrites).to.equal(1);
      clock.advance(5_000);
      limiter.record(attempt('198.51.100.5'), allow());
      await limiter.syncNow();
      expect(shared.knownWrites).to.equal(2);
    });

    it('counts locally while the store fails', async () => {
      const shared = new FakeCountStore();
      const log = new CapturedLog();
      const logger = pino({ level: 'debug' }, log.stream());
      const limiter = create(limits(), [], shared, logger);
      shared.failing = true;
      for (let i = 0; i < 3; i++) {
        limiter.record(attempt(`192.0.2.${i + 1}`), failure());
        await limiter.syncNow();
      }
      expect(limiter.check(attempt('192.0.2.50'), 'target-token')?.scope).to.equal('target');
      const warnings = () => log.records.filter((record) => record.msg === 'exchanging failure counts with Redis failed; counting locally until it works again');
      expect(warnings()).to.have.length(1);
      expect(warnings()[0].failedExchanges).to.equal(1);

      // The failures not sent are sent once the store works again.
      shared.failing = false;
      await limiter.syncNow();
      expect(shared.total('target:7:DEFAULT:device-01')).to.equal(3);
      expect(log.records.some((record) => record.msg === 'exchanging failure counts with Redis works again' && record.failedExchanges === 3)).to.equal(true);
    });
  });

  describe('window arithmetic', () => {
    it('estimates with the weighted previous window', () => {
      const counter = { windowMs: MINUTE_MS, window: WINDOW_START / MINUTE_MS, current: 2, previous: 6 };
      // 2 + 6 * (1 - 0.25) = 6.5 >= 5: free once 2 + 6 * (1 - f) < 5, after f = 0.5.
      expect(limitEnd(counter, MINUTE_MS, 5, WINDOW_START + 15_000)).to.equal(WINDOW_START + 30_000);
      expect(limitEnd(counter, MINUTE_MS, 5, WINDOW_START + 30_001)).to.equal(0);
    });

    it('reads a counter that has not rolled yet', () => {
      const counter = { windowMs: MINUTE_MS, window: WINDOW_START / MINUTE_MS - 1, current: 10, previous: 0 };
      // 10 failures in the previous window: 10 * (1 - f) < 5 after f = 0.5.
      expect(limitEnd(counter, MINUTE_MS, 5, WINDOW_START)).to.equal(WINDOW_START + 30_000);
    });

    it('groups IPv6 sources by /64', () => {
      expect(sourceBucket('192.0.2.1')).to.equal('192.0.2.1');
      expect(sourceBucket('2001:db8::1')).to.equal('2001:db8:0:0::/64');
      expect(sourceBucket('2001:0DB8:0000:0001:aaaa::1')).to.equal('2001:db8:0:1::/64');
      expect(sourceBucket('64:ff9b::192.0.2.1')).to.equal('64:ff9b:0:0::/64');
      expect(sourceBucket('::1')).to.equal('0:0:0:0::/64');
      expect(sourceBucket('::ffff:192.0.2.1')).to.equal('192.0.2.1');
    });
  });
});

describe('429 responses', () => {
  it('map rate_limited to HTTP 429', () => {
    expect(httpStatusFor('rate_limited')).to.equal(429);
  });

  it('carry Retry-After and gRPC code 7', () => {
    const config = parseConfig('{}', '/tmp/limiter-test.yaml', { env: {} });
    const response = new CheckResponseBuilder(config).build(deny('rate_limited', { retryAfterSeconds: 17 }), new RequestHeaders());
    expect(response.status?.code).to.equal(7);
    expect(response.denied_response?.status.code).to.equal(429);
    expect(response.denied_response?.headers.map((option) => [option.header.key, option.header.value])).to.deep.equal([['retry-after', '17']]);
  });

  it('leave other denies without headers', () => {
    const config = parseConfig('{}', '/tmp/limiter-test.yaml', { env: {} });
    const response = new CheckResponseBuilder(config).build(deny('token_mismatch'), new RequestHeaders());
    expect(response.denied_response?.headers).to.deep.equal([]);
  });
});

describe('rateLimit configuration', () => {
  const problems = (text: string): readonly string[] => {
    try {
      parseConfig(text, '/tmp/limiter-test.yaml', { env: {} });
    } catch (error) {
      return (error as ConfigError).problems;
    }
    return [];
  };

  it('has documented defaults', () => {
    const config = parseConfig('{}', '/tmp/limiter-test.yaml', { env: {} });
    expect(config.rateLimit).to.deep.equal({
      enabled: true,
      perSource: { maxFailures: 50, windowMs: 60_000 },
      perTarget: { maxFailures: 10, windowMs: 60_000 },
      knownSourceMs: 86_400_000,
      exemptSources: [],
      maxTrackedKeys: 100_000,
      syncIntervalMs: 250,
      forwardedForHops: 0,
    });
  });

  it('reads every key', () => {
    const config = parseConfig(
      `
rateLimit:
  enabled: false
  perSource: { maxFailures: 7, windowMs: 5000 }
  perTarget: { maxFailures: 2, windowMs: 120000 }
  knownSourceMs: 0
  exemptSources: ["10.0.0.0/8", "2001:db8::/32"]
  maxTrackedKeys: 500
  syncIntervalMs: 100
  forwardedForHops: 2
`,
      '/tmp/limiter-test.yaml',
      { env: {} },
    );
    expect(config.rateLimit).to.deep.equal({
      enabled: false,
      perSource: { maxFailures: 7, windowMs: 5000 },
      perTarget: { maxFailures: 2, windowMs: 120_000 },
      knownSourceMs: 0,
      exemptSources: ['10.0.0.0/8', '2001:db8::/32'],
      maxTrackedKeys: 500,
      syncIntervalMs: 100,
      forwardedForHops: 2,
    });
  });

  it('names each invalid key', () => {
    const found = problems(`
rateLimit:
  enabled: sometimes
  perSource: { maxFailures: 0, windowMs: 10 }
  perTarget: { maxFailures: 1.5, burst: 3 }
  knownSourceMs: -1
  exemptSources: ["10.0.0.0/33", "nat-gateway"]
  maxTrackedKeys: 5
  syncIntervalMs: 0
  forwardedForHops: 9
`);
    const keys = found.map((problem) => problem.split(':')[0]);
    expect(keys).to.include.members([
      'rateLimit.enabled',
      'rateLimit.perSource.maxFailures',
      'rateLimit.perSource.windowMs',
      'rateLimit.perTarget.maxFailures',
      'rateLimit.perTarget.burst',
      'rateLimit.knownSourceMs',
      'rateLimit.exemptSources[0]',
      'rateLimit.exemptSources[1]',
      'rateLimit.maxTrackedKeys',
      'rateLimit.syncIntervalMs',
      'rateLimit.forwardedForHops',
    ]);
  });
});

describe('failure limits over gRPC', function () {
  this.timeout(60_000);
  const TOKEN = '4a7c1e9b2d3f40a6b8c0d2e4f6a8b0c2';
  const GATEWAY_KEY = 'gw-9f8e7d6c5b4a39281706f5e4d3c2b1a0';
  const DEVICE_ADDRESS = '198.51.100.10';
  const NAT_ADDRESS = '203.0.113.50';
  const PROXY_ADDRESS = '203.0.113.60';
  let pki: TestPki;
  let device: TestCertificate;
  let service: RunningService;

  const path = (controllerId: string) => `/DEFAULT/controller/v1/${controllerId}`;
  const withToken = (controllerId: string, token: string, source: string, extra: { certificate?: string } = {}) =>
    service.check(envoyRequest(path(controllerId), { authorization: `TargetToken ${token}` }, { source, ...extra }));
  const withGatewayKey = (controllerId: string, key: string, source: string) =>
    service.check(envoyRequest(path(controllerId), { authorization: `GatewayToken ${key}` }, { source }));
  const retryAfter = (response: Awaited<ReturnType<RunningService['check']>>) =>
    response.denied_response?.headers.find((option) => option.header.key === 'retry-after')?.header.value;
  const lastDecision = () => service.log.records.filter((record) => record.msg === 'allow' || record.msg === 'deny').at(-1) ?? {};

  before(async () => {
    pki = TestPki.create();
    const ca = pki.rootCa('/O=Limiter Tests/CN=Device CA');
    device = pki.device(ca, '/CN=cert-device');
    // One-day windows, so a test run almost never crosses a window boundary, where counts start to fade.
    service = await startService(`
ddi:
  certificate:
    trustedProxies: ["${PROXY_ADDRESS}"]
rateLimit:
  perSource: { maxFailures: 5, windowMs: 86400000 }
  perTarget: { maxFailures: 3, windowMs: 86400000 }
  exemptSources: ["${NAT_ADDRESS}"]
  forwardedForHops: 1
tenants:
  DEFAULT:
    config:
      authentication.targettoken.enabled: true
      authentication.gatewaytoken.enabled: true
      authentication.gatewaytoken.key: "${GATEWAY_KEY}"
      authentication.header.enabled: true
      authentication.header.authority: "${pki.opensslIssuerHash(device)}"
    targets:
      device-01: { securityToken: "${TOKEN}" }
      device-02: { securityToken: "${TOKEN}" }
      device-03: { securityToken: "${TOKEN}" }
      device-04: { securityToken: "${TOKEN}" }
      device-05: { securityToken: "${TOKEN}" }
      proxied-01: { securityToken: "${TOKEN}" }
      cert-device: {}
  OTHER:
    config:
      authentication.gatewaytoken.enabled: true
      authentication.gatewaytoken.key: "${GATEWAY_KEY}"
      authentication.header.enabled: true
      authentication.header.authority: "${pki.opensslIssuerHash(device)}"
`);
  });

  after(async () => {
    await service?.stop();
    pki?.cleanup();
  });

  it('rejects a guesser but not the device', async () => {
    const guesser = '192.0.2.66';
    expect(outcome(await withToken('device-01', TOKEN, DEVICE_ADDRESS)).grpc).to.equal(0);
    // Three wrong guesses for device-01 reach its per-target limit; two for other ids reach the guesser's per-source limit.
    for (const controllerId of ['device-01', 'device-01', 'device-01', 'device-02', 'device-03']) {
      expect(outcome(await withToken(controllerId, 'wrong-guess', guesser))).to.deep.equal({ grpc: 16, http: 401 });
    }

    const limited = await withToken('device-04', 'another-guess', guesser);
    expect(outcome(limited)).to.deep.equal({ grpc: 7, http: 429 });
    expect(Number(retryAfter(limited))).to.be.within(1, 2 * 86_400);
    expect(lastDecision().reason).to.equal('rate_limited');
    expect(lastDecision().httpStatus).to.equal(429);
    expect(lastDecision().tenant).to.equal('DEFAULT');
    expect(lastDecision().controllerId).to.equal('device-04');
    expect(lastDecision().method).to.equal('target-token');
    // The token is not compared: the right token from the guesser's address is rejected too.
    expect(outcome(await withToken('device-04', TOKEN, guesser)).http).to.equal(429);

    expect(outcome(await withToken('device-01', TOKEN, DEVICE_ADDRESS))).to.deep.equal({ grpc: 0, http: 200 });
  });

  it('limits a guessed id except its address', async () => {
    expect(outcome(await withToken('device-05', TOKEN, '198.51.100.55')).grpc).to.equal(0);
    for (let i = 1; i <= 3; i++) {
      expect(outcome(await withToken('device-05', 'wrong-guess', `192.0.2.${100 + i}`)).http).to.equal(401);
    }
    const fromElsewhere = await withToken('device-05', 'wrong-guess', '192.0.2.200');
    expect(outcome(fromElsewhere).http).to.equal(429);
    expect(retryAfter(fromElsewhere)).to.match(/^\d+$/);
    // A new address is not known, so even the right token waits.
    expect(outcome(await withToken('device-05', TOKEN, '192.0.2.201')).http).to.equal(429);
    expect(outcome(await withToken('device-05', TOKEN, '198.51.100.55'))).to.deep.equal({ grpc: 0, http: 200 });
  });

  it('allows a certificate from a limited address', async () => {
    const guesser = '192.0.2.77';
    for (let i = 0; i < 5; i++) {
      await withToken(`unknown-${i}`, 'wrong-guess', guesser);
    }
    expect(outcome(await withToken('device-02', TOKEN, guesser)).http).to.equal(429);
    const certificate = encodePemLikeEnvoy(device.pem);
    const response = await service.check(envoyRequest(path('cert-device'), {}, { source: guesser, certificate }));
    expect(outcome(response)).to.deep.equal({ grpc: 0, http: 200 });
    // A certificate next to a token is still evaluated first.
    const both = await service.check(envoyRequest(path('cert-device'), { authorization: 'TargetToken wrong-guess' }, { source: guesser, certificate }));
    expect(outcome(both)).to.deep.equal({ grpc: 0, http: 200 });
    expect(lastDecision().method).to.equal('certificate');
  });

  it('allows a certificate for a limited id', async () => {
    for (let i = 1; i <= 3; i++) {
      await withToken('cert-device', 'wrong-guess', `192.0.2.${30 + i}`);
    }
    expect(outcome(await withToken('cert-device', 'wrong-guess', '192.0.2.40')).http).to.equal(429);
    const peer = await service.check(envoyRequest(path('cert-device'), {}, { source: '192.0.2.41', certificate: encodePemLikeEnvoy(device.pem) }));
    expect(outcome(peer)).to.deep.equal({ grpc: 0, http: 200 });
    const proxied = await service.check(
      envoyRequest(path('cert-device'), { 'x-controller-id': 'cert-device', 'x-authority': pki.opensslIssuerHash(device) }, { source: PROXY_ADDRESS }),
    );
    expect(outcome(proxied)).to.deep.equal({ grpc: 0, http: 200 });
  });

  it('exempts NAT and proxy addresses', async () => {
    for (const source of [NAT_ADDRESS, PROXY_ADDRESS]) {
      for (let i = 0; i < 8; i++) {
        expect(outcome(await withToken(`${source}-unknown-${i}`, 'wrong-guess', source)).http, source).to.equal(401);
      }
      expect(outcome(await withToken('device-03', TOKEN, source)).grpc, source).to.equal(0);
    }
  });

  it('limits gateway keys except known gateways', async () => {
    const gateway = '198.51.100.77';
    expect(outcome(await withGatewayKey('any-device', GATEWAY_KEY, gateway)).grpc).to.equal(0);
    for (let i = 1; i <= 3; i++) {
      expect(outcome(await withGatewayKey(`gw-${i}`, 'wrong-key', `192.0.2.${150 + i}`)).http).to.equal(401);
    }
    const limited = await withGatewayKey('gw-9', 'wrong-key', '192.0.2.160');
    expect(outcome(limited).http).to.equal(429);
    expect(lastDecision().method).to.equal('gateway-token');
    expect(outcome(await withGatewayKey('another-device', GATEWAY_KEY, gateway)).grpc).to.equal(0);
    // Target tokens of the tenant are counted apart.
    expect(outcome(await withToken('device-04', TOKEN, '192.0.2.160')).grpc).to.equal(0);
  });

  it('counts wrong tokens behind failures that do not count', async () => {
    // Each header makes the certificate method fail first, for a reason the limiter does not count.
    const cases: [Record<string, string>, string][] = [
      [{ 'x-forwarded-client-cert': 'Hash=00ff' }, 'xfcc_untrusted'],
      [{ 'x-controller-id': 'device-01', 'x-authority': 'abcd1234' }, 'proxy_untrusted'],
    ];
    for (const [index, [headers, reason]] of cases.entries()) {
      const guesser = `192.0.2.${210 + index}`;
      for (let i = 0; i < 5; i++) {
        const response = await service.check(envoyRequest(path(`hidden-${index}-${i}`), { authorization: 'TargetToken wrong-guess', ...headers }, { source: guesser }));
        expect(outcome(response).http).to.equal(401);
        expect(lastDecision().reason).to.equal(reason);
      }
      const limited = await service.check(envoyRequest(path('device-02'), { authorization: `TargetToken ${TOKEN}`, ...headers }, { source: guesser }));
      expect(outcome(limited).http, JSON.stringify(headers)).to.equal(429);
    }
  });

  it('limits clients behind the trusted proxy apart', async () => {
    const through = (client: string, token: string, forwardedFor = `${client}, ${PROXY_ADDRESS}`) =>
      service.check(envoyRequest(path('proxied-01'), { authorization: `TargetToken ${token}`, 'x-forwarded-for': forwardedFor }, { source: PROXY_ADDRESS }));
    const device = '198.51.100.80';
    const guesser = '192.0.2.230';
    expect(outcome(await through(device, TOKEN)).grpc).to.equal(0);
    for (let i = 0; i < 3; i++) {
      expect(outcome(await through(guesser, `wrong-guess-${i}`)).http).to.equal(401);
    }

    expect(outcome(await through(guesser, 'wrong-guess-3')).http).to.equal(429);
    expect(outcome(await through(guesser, 'wrong-guess-4', `${device}, ${guesser}, ${PROXY_ADDRESS}`)).http, 'a copied device address').to.equal(429);
    expect(outcome(await through(device, TOKEN))).to.deep.equal({ grpc: 0, http: 200 });
    // A peer that is no trusted proxy is its own source, whatever X-Forwarded-For contains.
    const direct = await service.check(envoyRequest(path('proxied-01'), { authorization: `TargetToken ${TOKEN}`, 'x-forwarded-for': `${device}, 192.0.2.231` }, { source: '192.0.2.231' }));
    expect(outcome(direct).http).to.equal(429);
  });

  it('counts gateway guesses behind a certificate for another id', async () => {
    const certificate = encodePemLikeEnvoy(device.pem);
    const otherPath = (controllerId: string) => `/OTHER/controller/v1/${controllerId}`;
    for (let i = 0; i < 3; i++) {
      const response = await service.check(envoyRequest(otherPath(`gw-target-${i}`), { authorization: `GatewayToken wrong-${i}` }, { source: `192.0.2.${170 + i}`, certificate }));
      expect(outcome(response).http).to.equal(401);
      expect(lastDecision().reason).to.equal('cn_mismatch');
    }

    const next = await service.check(envoyRequest(otherPath('gw-target-9'), { authorization: 'GatewayToken wrong-9' }, { source: '192.0.2.179' }));
    expect(outcome(next).http).to.equal(429);
  });

  it('limits unknown tenants like known ones', async () => {
    const guesser = '192.0.2.88';
    for (let i = 0; i < 5; i++) {
      const response = await service.check(envoyRequest(`/NO-SUCH-${i}/controller/v1/device-01`, { authorization: 'TargetToken wrong-guess' }, { source: guesser }));
      expect(outcome(response).http).to.equal(401);
    }
    const response = await service.check(envoyRequest('/NO-SUCH-9/controller/v1/device-01', { authorization: 'TargetToken wrong-guess' }, { source: guesser }));
    expect(outcome(response).http).to.equal(429);
    expect(lastDecision().tenant).to.equal(undefined);
  });

  it('counts rate_limited in the decision metric', async () => {
    const text = await (await fetch(`http://${service.handle.httpAddress}/metrics`)).text();
    expect(text).to.match(/hawkbit_ext_authz_decisions_total\{method="target-token",result="deny",reason="rate_limited",mode="enforce"\} [1-9]/);
    expect(text).to.match(/hawkbit_ext_authz_decisions_total\{method="gateway-token",result="deny",reason="rate_limited",mode="enforce"\} [1-9]/);
  });

  it('keeps counts over a reload', async () => {
    const guesser = '192.0.2.99';
    for (let i = 0; i < 5; i++) {
      await withToken(`reload-${i}`, 'wrong-guess', guesser);
    }
    expect(outcome(await withToken('device-02', TOKEN, guesser)).http).to.equal(429);
    // The file's configuration, targets included: the service keeps its own without them.
    const next = { ...service.config, rateLimit: { ...service.config.rateLimit, perSource: { maxFailures: 6, windowMs: 86_400_000 } } };
    await service.handle.reload(next);
    expect(outcome(await withToken('device-02', TOKEN, guesser)).grpc).to.equal(0);
    await withToken('reload-x', 'wrong-guess', guesser);
    expect(outcome(await withToken('device-02', TOKEN, guesser)).http).to.equal(429);
  });
});

/** An in-memory FailureCountStore, shared by several limiters as Redis would be. */
class FakeCountStore implements FailureCountStore {
  failing = false;
  knownWrites = 0;
  readonly #counts = new Map<string, number>();
  readonly #limits = new Map<string, number>();
  readonly #known = new Map<string, Map<string, number>>();

  total(counter: string): number {
    let sum = 0;
    for (const [key, count] of this.#counts) {
      if (key.endsWith(`:${counter}`)) {
        sum += count;
      }
    }
    return sum;
  }

  async addFailures(increments: readonly FailureIncrement[]): Promise<WindowTotals[]> {
    this.#fail();
    return increments.map((entry) => {
      const key = `${entry.windowMs}:${entry.window}:${entry.counter}`;
      const total = (this.#counts.get(key) ?? 0) + entry.count;
      this.#counts.set(key, total);
      const previousTotal = this.#counts.get(`${entry.windowMs}:${entry.window - 1}:${entry.counter}`) ?? 0;
      return { counter: entry.counter, windowMs: entry.windowMs, window: entry.window, total, previousTotal };
    });
  }

  async publishLimits(limits: readonly SharedLimit[]): Promise<void> {
    this.#fail();
    for (const limit of limits) {
      this.#limits.set(limit.counter, limit.until);
    }
  }

  async readLimits(now: number): Promise<SharedLimit[]> {
    this.#fail();
    return [...this.#limits].filter(([, until]) => until > now).map(([counter, until]) => ({ counter, until }));
  }

  async addKnownSources(entries: readonly KnownSourceEntry[]): Promise<void> {
    this.#fail();
    for (const entry of entries) {
      this.knownWrites += 1;
      const sources = this.#known.get(entry.counter) ?? new Map<string, number>();
      sources.set(entry.source, entry.at);
      this.#known.set(entry.counter, sources);
    }
  }

  async readKnownSources(counters: readonly string[], since: number): Promise<KnownSourceEntry[]> {
    this.#fail();
    return counters.flatMap((counter) =>
      [...(this.#known.get(counter) ?? [])].filter(([, at]) => at >= since).map(([source, at]) => ({ counter, source, at })),
    );
  }

  async close(): Promise<void> {}

  #fail(): void {
    if (this.failing) {
      throw new Error('connection refused');
    }
  }
}
