import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Decision } from '../auth/decision.js';

const PREFIX = 'hawkbit_ext_authz_';

/** Cache lookups by cache name, as counted by the component that owns the cache. */
export interface CacheStats {
  hits: number;
  misses: number;
}

export interface MetricsOptions {
  version: string;
  /** Adds a `tenant` label to the decision counter; tenants come from configuration, so the label set stays bounded. */
  tenantLabel: boolean;
}

/**
 * The service's Prometheus metrics. No label takes a value a client controls
 * (controller ids, paths); `tenant` is only added behind an option, and then
 * only with configured tenant names.
 */
export class Metrics {
  readonly registry = new Registry();
  readonly #decisions: Counter<'method' | 'result' | 'reason' | 'mode' | 'tenant'>;
  readonly #duration: Histogram<'result'>;
  readonly #storeErrors: Counter<'operation'>;
  /** Counter children by label values; bounded because every label takes values from a closed set or the configuration. */
  readonly #decisionChildren = new Map<string, { inc(): void }>();
  readonly #allowDuration: { observe(value: number): void };
  readonly #denyDuration: { observe(value: number): void };
  readonly #cacheSources = new Map<string, () => CacheStats>();
  readonly #issuerHashConflicts: Gauge;

  constructor(private readonly options: MetricsOptions) {
    collectDefaultMetrics({ register: this.registry, prefix: PREFIX });

    new Gauge({
      name: `${PREFIX}build_info`,
      help: 'Build information; the value is always 1.',
      labelNames: ['version', 'node_version'],
      registers: [this.registry],
    }).set({ version: options.version, node_version: process.version }, 1);

    this.#decisions = new Counter({
      name: `${PREFIX}decisions_total`,
      help: 'Check decisions by method, result and reason code. In audit mode, the decision that would have been made.',
      labelNames: options.tenantLabel ? ['method', 'result', 'reason', 'mode', 'tenant'] : ['method', 'result', 'reason', 'mode'],
      registers: [this.registry],
    });
    this.#duration = new Histogram({
      name: `${PREFIX}check_duration_seconds`,
      help: 'Time from receiving a Check to sending its response, in seconds.',
      labelNames: ['result'],
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: [this.registry],
    });
    this.#allowDuration = this.#duration.labels({ result: 'allow' });
    this.#denyDuration = this.#duration.labels({ result: 'deny' });
    this.#storeErrors = new Counter({
      name: `${PREFIX}store_errors_total`,
      help: 'Store lookups that failed and made the Check a 503 deny.',
      labelNames: ['operation'],
      registers: [this.registry],
    });

    this.#issuerHashConflicts = new Gauge({
      name: `${PREFIX}issuer_hash_conflicts`,
      help: 'Pairs of tenants that trust the same issuer hash from different pinned CA keys.',
      registers: [this.registry],
    });

    const sources = this.#cacheSources;
    new Counter({
      name: `${PREFIX}cache_requests_total`,
      help: 'Cache lookups by cache and result (hit or miss).',
      labelNames: ['cache', 'result'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [cache, read] of sources) {
          const stats = read();
          this.inc({ cache, result: 'hit' }, stats.hits);
          this.inc({ cache, result: 'miss' }, stats.misses);
        }
      },
    });
  }

  /** Registers a cache whose counters are read at scrape time; a later registration of the same name replaces it. */
  addCache(name: string, read: () => CacheStats): void {
    this.#cacheSources.set(name, read);
  }

  setIssuerHashConflicts(count: number): void {
    this.#issuerHashConflicts.set(count);
  }

  recordDecision(decision: Decision, durationSeconds: number, audit: boolean): void {
    const labels: Record<string, string> = {
      method: decision.method ?? 'none',
      result: decision.kind,
      reason: decision.kind === 'deny' ? decision.reason : 'none',
      mode: audit ? 'audit' : 'enforce',
    };
    if (this.options.tenantLabel) {
      // These denies carry the tenant as written in the path, which a client controls.
      const fromPath = decision.kind === 'deny' && (decision.reason === 'unknown_tenant' || decision.reason === 'store_unavailable');
      labels.tenant = fromPath ? 'none' : (decision.tenant ?? 'none');
    }
    // Label children are looked up once per label set; prom-client hashes the labels on every plain inc().
    const key = labels.tenant === undefined ? `${labels.method}|${labels.result}|${labels.reason}|${labels.mode}` : `${labels.method}|${labels.result}|${labels.reason}|${labels.mode}|${labels.tenant}`;
    let counter = this.#decisionChildren.get(key);
    if (!counter) {
      counter = this.#decisions.labels(labels);
      this.#decisionChildren.set(key, counter);
    }
    counter.inc();
    (decision.kind === 'allow' ? this.#allowDuration : this.#denyDuration).observe(durationSeconds);
    if (decision.kind === 'deny' && decision.reason === 'store_unavailable') {
      this.#storeErrors.inc({ operation: 'lookup' });
    }
  }

  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
