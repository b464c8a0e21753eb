import { Counter, Gauge, Registry, collectDefaultMetrics, type Metric } from 'prom-client';
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
  /**
   * Decision counts by label values, read by the counter at scrape time; a
   * plain count per Check costs far less than prom-client's label hashing.
   * Bounded, because every label takes values from a closed set or the configuration.
   */
  readonly #decisionCounts = new Map<string, DecisionCount>();
  /**
   * The count of the last decision. Most Checks repeat the labels of the one
   * before, and comparing them cost less than building and looking up a key
   * (about 20 instead of 200 ns in-process on Node.js 20).
   */
  #lastCount: DecisionCount | undefined;
  readonly #duration: DurationHistogram;
  #storeErrors = 0;
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

    const decisionCounts = this.#decisionCounts;
    new Counter({
      name: `${PREFIX}decisions_total`,
      help: 'Check decisions by method, result and reason code. In audit mode, the decision that would have been made.',
      labelNames: options.tenantLabel ? ['method', 'result', 'reason', 'mode', 'tenant'] : ['method', 'result', 'reason', 'mode'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const { labels, count } of decisionCounts.values()) {
          this.inc(labels, count);
        }
      },
    });
    this.#duration = new DurationHistogram(
      `${PREFIX}check_duration_seconds`,
      'Time from receiving a Check until the responses of its batch were handed to the gRPC library, in seconds.',
      [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    );
    this.registry.registerMetric(this.#duration as unknown as Metric);
    const storeErrors = (): number => this.#storeErrors;
    new Counter({
      name: `${PREFIX}store_errors_total`,
      help: 'Store lookups that failed and made the Check a 503 deny.',
      labelNames: ['operation'],
      registers: [this.registry],
      collect() {
        this.reset();
        if (storeErrors() > 0) {
          this.inc({ operation: 'lookup' }, storeErrors());
        }
      },
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
    const method = decision.method ?? 'none';
    const reason = decision.kind === 'deny' ? decision.reason : 'none';
    const mode = audit ? 'audit' : 'enforce';
    let tenant: string | undefined;
    if (this.options.tenantLabel) {
      // These denies carry the tenant as written in the path, which a client controls.
      const fromPath = decision.kind === 'deny' && (decision.reason === 'unknown_tenant' || decision.reason === 'store_unavailable');
      tenant = fromPath ? 'none' : (decision.tenant ?? 'none');
    }
    const last = this.#lastCount;
    if (last !== undefined && last.labels.method === method && last.labels.reason === reason && last.labels.mode === mode && last.labels.tenant === tenant) {
      // Comparing the reason covers the result, because the reason is `none` for allows only.
      last.count++;
    } else {
      this.#lastCount = this.#countDecision(method, decision.kind, reason, mode, tenant);
    }
    this.#duration.observe(decision.kind, durationSeconds);
    if (decision.kind === 'deny' && decision.reason === 'store_unavailable') {
      this.#storeErrors++;
    }
  }

  /** Counts a decision under its label values and returns the count it went to. */
  #countDecision(method: string, result: string, reason: string, mode: string, tenant: string | undefined): DecisionCount {
    const key = tenant === undefined ? `${method}|${result}|${reason}|${mode}` : `${method}|${result}|${reason}|${mode}|${tenant}`;
    let entry = this.#decisionCounts.get(key);
    if (entry === undefined) {
      const labels: DecisionCount['labels'] = { method, result, reason, mode };
      if (tenant !== undefined) {
        labels.tenant = tenant;
      }
      entry = { labels, count: 0 };
      this.#decisionCounts.set(key, entry);
    }
    entry.count++;
    return entry;
  }

  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}

/** The count of decisions with one set of label values. */
interface DecisionCount {
  labels: { method: string; result: string; reason: string; mode: string; tenant?: string };
  count: number;
}

/** One sample as prom-client's registry formats it. */
interface MetricSample {
  metricName: string;
  labels: Record<string, string | number>;
  value: number;
}

/**
 * The Check duration histogram, labelled by result. Observations go into
 * plain arrays. prom-client's registry reads them through `get()`, the
 * contract every prom-client metric fulfils, and prints them in the same
 * format as its own Histogram.
 */
class DurationHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly #bounds: readonly number[];
  readonly #series = new Map<string, { buckets: Float64Array; sum: number; count: number }>();

  constructor(
    readonly name: string,
    readonly help: string,
    bounds: readonly number[],
  ) {
    this.#bounds = bounds;
  }

  observe(result: string, seconds: number): void {
    let series = this.#series.get(result);
    if (!series) {
      series = { buckets: new Float64Array(this.#bounds.length), sum: 0, count: 0 };
      this.#series.set(result, series);
    }
    const bounds = this.#bounds;
    for (let index = 0; index < bounds.length; index++) {
      if (seconds <= bounds[index]) {
        series.buckets[index]++;
        break;
      }
    }
    series.sum += seconds;
    series.count++;
  }

  /** Drops every observation, as prom-client's `registry.resetMetrics()` expects of a metric. */
  reset(): void {
    this.#series.clear();
  }

  get(): { name: string; help: string; type: string; aggregator: string; values: MetricSample[] } {
    const values: MetricSample[] = [];
    for (const [result, series] of this.#series) {
      let cumulative = 0;
      this.#bounds.forEach((bound, index) => {
        cumulative += series.buckets[index];
        values.push({ metricName: `${this.name}_bucket`, labels: { le: bound, result }, value: cumulative });
      });
      values.push({ metricName: `${this.name}_bucket`, labels: { le: '+Inf', result }, value: series.count });
      values.push({ metricName: `${this.name}_sum`, labels: { result }, value: series.sum });
      values.push({ metricName: `${this.name}_count`, labels: { result }, value: series.count });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}
