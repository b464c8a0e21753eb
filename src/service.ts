import * as grpc from '@grpc/grpc-js';
import type { Authenticator } from './auth/authenticator.js';
import { GatewayTokenAuthenticator } from './auth/gateway-token.js';
import { AuthPipeline } from './auth/pipeline.js';
import { TargetTokenAuthenticator } from './auth/target-token.js';
import { parseListenAddress, type ListenAddress } from './config/address.js';
import type { ServiceConfig } from './config/schema.js';
import { createCheckHandler } from './envoy/check-handler.js';
import { CheckResponseBuilder } from './envoy/check-response.js';
import { HealthService } from './envoy/health.js';
import { AUTHORIZATION_SERVICE_NAME, authorizationService, healthService } from './envoy/proto.js';
import { HealthHttpServer } from './http/health-server.js';
import { createLogger, type Logger } from './observability/logger.js';
import { createStore, TokenDigester, type TenantStore } from './store/index.js';
import { CertificateAuthenticator } from './auth/certificate.js';


/** Largest CheckRequest accepted, in bytes. */
export const GRPC_MAX_RECEIVE_BYTES = 16 * 1024 * 1024;

export interface ServiceOptions {
  logger?: Logger;
}

export interface ServiceHandle {
  /** `HOST:PORT` the gRPC server listens on, with the port it actually bound. */
  grpcAddress: string;
  /** `HOST:PORT` of the HTTP health server. */
  httpAddress: string;
  logger: Logger;
  store: TenantStore;
  /**
   * Reports NOT_SERVING, keeps answering for `drainDelayMs` so Envoy's health
   * checks move traffic away, lets calls in flight finish (up to `timeoutMs`),
   * then closes everything. Defaults come from the `shutdown` configuration.
   */
  stop(options?: Partial<ServiceConfig['shutdown']>): Promise<void>;
}

/** Builds the authenticators in hawkBit's order: certificate, target token, gateway token. */
export function createAuthenticators(config: ServiceConfig, digester: TokenDigester): Authenticator[] {
  return [
    new CertificateAuthenticator(config.ddi.certificate),
    new TargetTokenAuthenticator(config.ddi.targetToken.enabled, digester),
    new GatewayTokenAuthenticator(config.ddi.gatewayToken.enabled, digester),
  ];
}

/** Composes store, pipeline, gRPC server and HTTP health server, and starts them. */
export async function createService(config: ServiceConfig, options: ServiceOptions = {}): Promise<ServiceHandle> {
  const logger = options.logger ?? createLogger(config.log.level);
  const digester = new TokenDigester(config.tokenDigestKey);
  const store = await createStore(config, digester, logger);
  const pipeline = new AuthPipeline(store, createAuthenticators(config, digester));
  const responses = new CheckResponseBuilder(config);

  let draining = false;
  const health = new HealthService(['', AUTHORIZATION_SERVICE_NAME]);
  const isReady = (): boolean => !draining && store.health() === 'serving';
  const updateHealth = (): void => health.setAll(isReady() ? 'SERVING' : 'NOT_SERVING');
  store.onHealthChange(updateHealth);

  const server = new grpc.Server({
    // Above anything Envoy sends (its request headers are capped at 8 MiB by max_request_headers_kb), so
    // oversized input still gets a deny rather than an RPC error.
    'grpc.max_receive_message_length': GRPC_MAX_RECEIVE_BYTES,
  });
  server.addService(authorizationService().service, {
    Check: createCheckHandler({ pipeline, responses, logger, mode: config.mode }),
  });
  server.addService(healthService().service, health.handlers());

  const grpcListen = parseListenAddress(config.grpc.address).value as ListenAddress;
  const httpListen = parseListenAddress(config.http.address).value as ListenAddress;
  const grpcPort = await bind(server, grpcListen);
  const http = new HealthHttpServer(isReady);
  let httpInfo;
  try {
    httpInfo = await http.listen(httpListen);
  } catch (error) {
    server.forceShutdown();
    await store.close();
    throw new Error(`cannot listen on http.address ${config.http.address}: ${(error as Error).message}`);
  }

  const grpcAddress = `${formatHost(grpcListen.host)}:${grpcPort}`;
  const httpAddress = `${formatHost(httpListen.host)}:${httpInfo.port}`;
  updateHealth();
  logger.info({ grpcAddress, httpAddress, config: config.source, store: config.store.type, mode: config.mode }, 'service started');

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
      await store.close();
      logger.info('service stopped');
    })();
    return stopped;
  };

  return { grpcAddress, httpAddress, logger, store, stop };
}

function bind(server: grpc.Server, address: ListenAddress): Promise<number> {
  const target = `${formatHost(address.host)}:${address.port}`;
  return new Promise((resolve, reject) => {
    server.bindAsync(target, grpc.ServerCredentials.createInsecure(), (error, port) => {
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
      logger.warn({ timeoutMs }, 'calls still in flight after the drain timeout; cancelling them');
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
