import * as grpc from '@grpc/grpc-js';
import type { Authenticator } from './auth/authenticator.js';
import { CertificateAuthenticator } from './auth/certificate.js';
import { FailureLimiter, type FailureCountStore } from './auth/failure-limiter.js';
import { GatewayTokenAuthenticator } from './auth/gateway-token.js';
import { AuthPipeline } from './auth/pipeline.js';
import { TargetTokenAuthenticator } from './auth/target-token.js';
import { parseListenAddress, type ListenAddress } from './config/address.js';
import type { RunningConfig, ServiceConfig } from './config/schema.js';
import { createCheckHandler, type CheckRuntime } from './envoy/check-handler.js';
import { CheckResponseBuilder } from './envoy/check-response.js';
import { HealthService } from './envoy/health.js';
import { AUTHORIZATION_SERVICE_NAME, authorizationService, healthService } from './envoy/proto.js';
import { HealthHttpServer } from './http/health-server.js';
import { createLogger, logDestination, type Logger } from './observability/logger.js';
import { Metrics } from './observability/metrics.js';
import { restartOnlyChanges } from './reload.js';
import { findIssuerHashConflicts, type IssuerHashConflict } from './auth/issuer-conflicts.js';
import { parseAuthorityList } from './store/tenant-settings.js';
import { TENANT_CONFIG_KEYS } from './config/load.js';
import { createStore, MemoryStore, TokenDigester, type TenantStore } from './store/index.js';
import { packageVersion } from './version.js';

export interface ServiceOptions {
  logger?: Logger;
}

export interface ServiceHandle {
  /** `HOST:PORT` the gRPC server listens on, with the port it actually bound. */
  grpcAddress: string;
  /** `HOST:PORT` of the HTTP server (health and metrics). */
  httpAddress: string;
  logger: Logger;
  store: TenantStore;
  metrics: Metrics | undefined;
  /** The configuration in force, without the tenants' targets and gateway keys, which the store keeps as digests. */
  config(): RunningConfig;
  /**
   * Applies a new configuration without dropping calls: calls in flight finish
   * on the old one. Keys that need a restart (addresses, TLS, store, metrics)
   * are kept as they were and returned, so the caller can log them.
   */
  reload(next: ServiceConfig): Promise<string[]>;
  /**
   * Reports NOT_SERVING, keeps serving calls for `drainDelayMs` so Envoy's health
   * checks move traffic away, lets calls in flight finish (up to `timeoutMs`),
   * then closes everything. Defaults come from the `shutdown` configuration.
   */
  stop(options?: Partial<ServiceConfig['shutdown']>): Promise<void>;
}

/** Builds the authenticators in hawkBit's order: certificate, target token, gateway token. */
export function createAuthenticators(config: RunningConfig, digester: TokenDigester): Authenticator[] {
  return [
    new CertificateAuthenticator(config.ddi.certificate, config.limits),
    new TargetTokenAuthenticator(config.ddi.targetToken.enabled, digester),
    new GatewayTokenAuthenticator(config.ddi.gatewayToken.enabled, digester),
  ];
}

/**
 * Builds the failure limiter once per service, so reloads keep its counts.
 * With the Redis store it shares counts through its own Redis connection.
 */
async function createFailureLimiter(config: RunningConfig, logger: Logger): Promise<FailureLimiter> {
  let shared: FailureCountStore | undefined;
  if (config.store.type === 'redis') {
    const { RedisFailureCounts } = await import('./store/redis-failure-counters.js');
    const counts = new RedisFailureCounts(config.store.redis, logger);
    await counts.connect();
    shared = counts;
  }
  return new FailureLimiter(config.rateLimit, config.ddi.certificate.trustedProxies, { shared, logger });
}

export function createRuntime(config: RunningConfig, store: TenantStore, digester: TokenDigester, metrics: Metrics | undefined, limiter: FailureLimiter): CheckRuntime {
  const authenticators = createAuthenticators(config, digester);
  const certificate = authenticators.find((authenticator) => authenticator instanceof CertificateAuthenticator) as CertificateAuthenticator;
  metrics?.addCache('certificate', () => certificate.cacheStats);
  return {
    pipeline: new AuthPipeline(store, authenticators, config.limits, limiter, config.upstream.hawkbitHeaderAuth.enabled),
    responses: new CheckResponseBuilder(config),
    mode: config.mode,
    allowLevel: config.log.allowLevel,
    denyLevel: config.log.denyLevel,
  };
}

/** Composes store, pipeline, gRPC server and HTTP server, and starts them. */
export async function createService(initial: ServiceConfig, options: ServiceOptions = {}): Promise<ServiceHandle> {
  const logger = options.logger ?? createLogger(initial.log.level, logDestination(initial.log.destination));
  const digester = new TokenDigester(initial.tokenDigestKey);
  let store = await createStore(initial, digester, logger);
  let config = keptConfig(initial);
  const metrics = config.metrics.enabled ? new Metrics({ version: packageVersion(), tenantLabel: config.metrics.tenantLabel }) : undefined;
  const limiter = await createFailureLimiter(config, logger);
  let runtime = createRuntime(config, store, digester, metrics, limiter);
  const sharedStore = store;
  if (sharedStore.listTenantTrust) {
    // With a shared store, tenants change through admin commands, so the check follows their writes.
    const checkShared = (): void => {
      sharedStore.listTenantTrust!().then(
        (tenants) => reportConflicts(findIssuerHashConflicts(tenants), logger, metrics),
        (error: unknown) => logger.warn({ err: error }, 'issuer hash conflict check failed; it runs again on the next tenant change'),
      );
    };
    checkShared();
    sharedStore.onTenantsChanged?.(checkShared);
  } else {
    reportTenantTrustProblems(config, logger, metrics);
  }
  for (const name of Object.keys(store.cacheStats?.() ?? {})) {
    metrics?.addCache(name, () => store.cacheStats?.()[name] ?? { hits: 0, misses: 0 });
  }

  let draining = false;
  const health = new HealthService(['', AUTHORIZATION_SERVICE_NAME]);
  const isReady = (): boolean => !draining && store.health() === 'serving';
  const updateHealth = (): void => health.setAll(isReady() ? 'SERVING' : 'NOT_SERVING');
  store.onHealthChange(updateHealth);

  const server = new grpc.Server(serverOptions(config));
  server.addService(authorizationService().service, { Check: createCheckHandler({ runtime: () => runtime, logger, metrics }) });
  server.addService(healthService().service, health.handlers());

  const grpcListen = parseListenAddress(config.grpc.address).value as ListenAddress;
  const httpListen = parseListenAddress(config.http.address).value as ListenAddress;
  let grpcPort: number;
  try {
    grpcPort = await bind(server, grpcListen, config.grpc.tls);
  } catch (error) {
    await limiter.close();
    await store.close();
    throw error;
  }
  const http = new HealthHttpServer(isReady, metrics);
  let httpPort: number;
  try {
    httpPort = (await http.listen(httpListen)).port;
  } catch (error) {
    server.forceShutdown();
    await limiter.close();
    await store.close();
    throw new Error(`cannot listen on http.address ${config.http.address}: ${(error as Error).message}`);
  }

  const grpcAddress = `${formatHost(grpcListen.host)}:${grpcPort}`;
  const httpAddress = `${formatHost(httpListen.host)}:${httpPort}`;
  updateHealth();
  if (!config.grpc.tls && !/^(127\.|localhost$|::1$)/.test(grpcListen.host)) {
    logger.warn({ grpcAddress }, 'the gRPC listener is reachable beyond loopback without TLS; set grpc.tls, or restrict access with a NetworkPolicy or firewall');
  }
  logger.info(
    { grpcAddress, httpAddress, tls: config.grpc.tls !== undefined, config: config.source, store: config.store.type, mode: config.mode },
    'service started',
  );

  const reload = async (next: ServiceConfig): Promise<string[]> => {
    const kept = restartOnlyChanges(config, next);
    // Keys that need a restart keep their running values.
    const applied: RunningConfig = keptConfig({
      ...next,
      workers: config.workers,
      grpc: config.grpc,
      http: config.http,
      store: config.store,
      metrics: config.metrics,
      tokenDigestKey: config.tokenDigestKey,
      log: { ...next.log, destination: config.log.destination },
    });
    let nextStore = store;
    if (applied.store.type === 'memory') {
      nextStore = new MemoryStore(next.tenants, digester);
    }
    limiter.configure(applied.rateLimit, applied.ddi.certificate.trustedProxies);
    runtime = createRuntime(applied, nextStore, digester, metrics, limiter);
    if (applied.store.type === 'memory') {
      reportTenantTrustProblems(applied, logger, metrics);
    }
    store = nextStore;
    config = applied;
    logger.level = applied.log.level;
    logger.info({ config: applied.source, mode: applied.mode, tenants: Object.keys(applied.tenants).length }, 'configuration reloaded');
    return kept;
  };

  let stopped: Promise<void> | undefined;
  const stop = (overrides: Partial<ServiceConfig['shutdown']> = {}): Promise<void> => {
    const { drainDelayMs, timeoutMs } = { ...config.shutdown, ...overrides };
    stopped ??= (async () => {
      draining = true;
      updateHealth();
      logger.info({ drainDelayMs, timeoutMs }, 'draining: reporting NOT_SERVING, then finishing calls in flight');
      await new Promise((resolve) => setTimeout(resolve, drainDelayMs));
      health.endWatches();
      await shutdown(server, timeoutMs, logger);
      await http.close();
      await limiter.close();
      await store.close();
      logger.info('service stopped');
    })();
    return stopped;
  };

  return { grpcAddress, httpAddress, logger, get store() { return store; }, metrics, config: () => config, reload, stop };
}

/**
 * Returns the configuration without the tenants' targets and gateway keys, which the store keeps as
 * digests. Plain-text secrets then leave memory, and each full garbage collection marks fewer objects.
 */
function keptConfig(config: ServiceConfig): RunningConfig {
  const tenants = Object.fromEntries(
    Object.entries(config.tenants).map(([name, entry]) => {
      const { targets: _targets, ...kept } = entry;
      const { [TENANT_CONFIG_KEYS.gatewayTokenKey]: _gatewayKey, ...settings } = entry.config;
      return [name, { ...kept, config: settings }];
    }),
  );
  return { ...config, tenants };
}

/**
 * Removes the tenants' targets and gateway keys from a configuration in place,
 * for a process that serves no Check but keeps a reference to it while it runs.
 */
export function forgetTenantSecrets(config: ServiceConfig): void {
  for (const entry of Object.values(config.tenants)) {
    entry.targets.clear();
    delete entry.config[TENANT_CONFIG_KEYS.gatewayTokenKey];
  }
}

/**
 * Warns about tenants of the configuration file (the embedded store) that
 * trust one issuer hash from different or unpinned CA keys, or that enable
 * certificate authentication with nothing to trust.
 */
function reportTenantTrustProblems(config: RunningConfig, logger: Logger, metrics: Metrics | undefined): void {
  const tenants = Object.entries(config.tenants).map(([name, entry]) => {
    const authority = entry.config[TENANT_CONFIG_KEYS.headerAuthority];
    return { name, headerAuthority: typeof authority === 'string' ? parseAuthorityList(authority) : [], pinnedCaPems: entry.caCertificates };
  });
  for (const tenant of tenants) {
    const enabled = config.tenants[tenant.name].config[TENANT_CONFIG_KEYS.headerEnabled];
    if ((enabled === true || enabled === 'true') && tenant.headerAuthority.length === 0) {
      logger.warn(
        { tenant: tenant.name },
        'certificate authentication is enabled with an empty authentication.header.authority, so no certificate can authenticate; add the issuer hash (hawkbit-ext-authz issuer-hash FILE)',
      );
    }
  }
  reportConflicts(findIssuerHashConflicts(tenants), logger, metrics);
}

function reportConflicts(conflicts: IssuerHashConflict[], logger: Logger, metrics: Metrics | undefined): void {
  metrics?.setIssuerHashConflicts(conflicts.length);
  for (const conflict of conflicts) {
    logger.warn(
      conflict,
      conflict.pinned
        ? 'two tenants trust the same issuer hash from different CA keys; give their CAs distinct names'
        : 'two tenants trust the same issuer hash without pinning the same CA, so a device of one could pass as a device of the other; pin each tenant\'s CA',
    );
  }
}

/**
 * gRPC server options. Envoy multiplexes many Checks over a few long-lived
 * HTTP/2 connections, so the stream limit is per connection and generous.
 * Keepalive pings find connections whose peer went away without closing them.
 */
export function serverOptions(config: RunningConfig): grpc.ServerOptions {
  return {
    // Channelz is a debugging service this server does not expose; its per-call bookkeeping showed in the CPU profile.
    'grpc.enable_channelz': 0,
    'grpc.max_receive_message_length': config.grpc.maxReceiveMessageBytes,
    'grpc.max_send_message_length': 4 * 1024 * 1024,
    'grpc.max_concurrent_streams': config.grpc.maxConcurrentStreams,
    'grpc.keepalive_time_ms': config.grpc.keepaliveTimeMs,
    'grpc.keepalive_timeout_ms': config.grpc.keepaliveTimeoutMs,
    // Envoy may ping idle connections (its connection_keepalive); do not treat that as abuse.
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.http2.min_ping_interval_without_data_ms': 5_000,
  };
}

function bind(server: grpc.Server, address: ListenAddress, tls: ServiceConfig['grpc']['tls']): Promise<number> {
  const target = `${formatHost(address.host)}:${address.port}`;
  const credentials = tls
    ? grpc.ServerCredentials.createSsl(
        tls.clientCa ? Buffer.from(tls.clientCa) : null,
        [{ cert_chain: Buffer.from(tls.certificate), private_key: Buffer.from(tls.privateKey) }],
        tls.requireClientCertificate,
      )
    : grpc.ServerCredentials.createInsecure();
  return new Promise((resolve, reject) => {
    server.bindAsync(target, credentials, (error, port) => {
      if (error) {
        reject(new Error(`cannot listen on grpc.address ${target}: ${error.message}`));
      } else {
        resolve(port);
      }
    });
  });
}

function shutdown(server: grpc.Server, timeoutMs: number, logger: Logger): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      logger.warn({ timeoutMs }, 'calls still in flight after the shutdown timeout; cancelling them');
      server.forceShutdown();
      resolve();
    }, timeoutMs);
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

function formatHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}
