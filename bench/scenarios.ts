/**
 * The benchmark scenarios: for each, the configuration, the one CheckRequest
 * that is replayed, and the decision the service must make for it.
 */
import { randomUUID } from 'node:crypto';
import { encodePemLikeEnvoy, xfccElementLikeEnvoy } from '../src/envoy/envoy-encoding.js';
import type { CheckRequestMessage } from '../src/envoy/messages.js';
import type { BenchCertificates } from './certificates.js';

export const TENANT = 'DEFAULT';
export const CONTROLLER_ID = 'device-01';
export const TARGET_TOKEN = '4c2b7d0e9f1a4e6b8c3d5f7a9b1c2d3e';
export const GATEWAY_KEY = 'bench-gateway-key-0123456789abcdef';
/** Controller ids of the generated targets in large stores: `device-0000000` and up. */
export const GENERATED_PREFIX = 'device-';
/** Generated target that the Redis scenarios request; below the smallest import of a quick run. */
const REDIS_TARGET_INDEX = 4_321;

/** The decision a scenario's request must get. */
export interface ExpectedDecision {
  result: 'allow' | 'deny';
  /** Authentication method of an allow. */
  method?: 'target-token' | 'gateway-token' | 'certificate';
  /** Reason code of a deny. */
  reason?: string;
  /**
   * Further denies the scenario may make besides the expected one, by reason and HTTP status; for the failure
   * limiter, whose window lets a few calls through to the token check again.
   */
  alternatives?: { reason: string; httpStatus: number }[];
  /** HTTP status Envoy would return: 200 for an allow. */
  httpStatus: number;
}

/** Addresses and files of one benchmark run that every configuration refers to. */
export interface ConfigContext {
  grpcAddress: string;
  httpAddress: string;
  certificates: BenchCertificates;
  redisUrl?: string;
}

export interface Scenario {
  name: string;
  /** One line for the report. */
  title: string;
  /** Category that decides which targets of the report apply. */
  kind: 'token' | 'certificate' | 'deny' | 'store' | 'log' | 'redis' | 'workers';
  /** Configuration file text. */
  config(context: ConfigContext): string;
  request(certificates: BenchCertificates): CheckRequestMessage;
  expected: ExpectedDecision;
  /** `serve --workers N`; unset runs the single-process service. */
  workers?: number;
  /** Runs on the Redis store, with the generated targets imported first. */
  redisTargets?: boolean;
  /** Also measure the no-op server; off where only service figures are compared. */
  baseline: boolean;
  /**
   * A second configuration of the service, measured in the no-op server's
   * place in the same alternating rounds. The scenario's throughput ratio is
   * then the service's over this one's. `name` labels it in the report.
   */
  comparison?: { name: string; config(context: ConfigContext): string };
  /** Targets generated into the embedded store besides the benchmarked device. */
  generatedTargets?: number;
}

/** Options of one configuration file; everything else keeps its default. */
interface ConfigOptions {
  logLevel?: string;
  trustXfcc?: boolean;
  authority?: string;
  generatedTargets?: number;
  redis?: { cache: { maxEntries: number; ttlMs: number } };
  /** `rateLimit.enabled`; unset keeps the default (on). */
  rateLimit?: boolean;
  /** `metrics.enabled`; unset keeps the default (on). */
  metrics?: boolean;
}

function configText(context: ConfigContext, options: ConfigOptions): string {
  const lines = [
    `grpc: { address: "${context.grpcAddress}" }`,
    `http: { address: "${context.httpAddress}" }`,
    `log: { level: ${options.logLevel ?? 'info'} }`,
    `ddi: { certificate: { trustXfcc: ${options.trustXfcc ?? false} } }`,
  ];
  if (options.rateLimit !== undefined) {
    lines.push(`rateLimit: { enabled: ${options.rateLimit} }`);
  }
  if (options.metrics !== undefined) {
    lines.push(`metrics: { enabled: ${options.metrics} }`);
  }
  if (options.redis) {
    if (context.redisUrl === undefined) {
      throw new Error('a Redis scenario needs a running redis-server');
    }
    lines.push(`store: { type: redis, redis: { url: "${context.redisUrl}" } }`);
    lines.push(`cache: { maxEntries: ${options.redis.cache.maxEntries}, ttlMs: ${options.redis.cache.ttlMs} }`);
    return `${lines.join('\n')}\n`;
  }
  lines.push('store: { type: memory }', 'tenants:', ...tenantLines(options.authority ?? '', options.generatedTargets ?? 0));
  return `${lines.join('\n')}\n`;
}

/** Returns the `DEFAULT` tenant in the configuration file's `tenants:` form, indented by two spaces. */
export function tenantLines(authority: string, generatedTargets: number): string[] {
  const lines = [
    `  ${TENANT}:`,
    '    config:',
    '      authentication.targettoken.enabled: true',
    '      authentication.gatewaytoken.enabled: true',
    `      authentication.gatewaytoken.key: "${GATEWAY_KEY}"`,
    '      authentication.header.enabled: true',
    `      authentication.header.authority: "${authority}"`,
    '    targets:',
    `      ${CONTROLLER_ID}: { securityToken: "${TARGET_TOKEN}" }`,
  ];
  for (let index = 0; index < generatedTargets; index++) {
    lines.push(`      ${generatedId(index)}: { securityToken: "${generatedToken(index)}" }`);
  }
  return lines;
}

/** Controller id of the generated target with this index. */
export function generatedId(index: number): string {
  return `${GENERATED_PREFIX}${String(index).padStart(7, '0')}`;
}

/** Token of the generated target with this index: distinct per target, 32 hex characters. */
export function generatedToken(index: number): string {
  return (index.toString(16).padStart(8, '0') + 'a5'.repeat(12)).slice(0, 32);
}

/** Builds a CheckRequest as Envoy's HTTP filter sends it for a device's DDI poll. */
function envoyRequest(path: string, headers: Record<string, string>, source: { certificate?: string } = {}): CheckRequestMessage {
  return {
    attributes: {
      source: {
        address: { socket_address: { address: '198.51.100.23', port_value: 50412 } },
        certificate: source.certificate ?? '',
      },
      request: {
        http: {
          id: '1374258924312312',
          method: 'GET',
          path,
          host: 'hawkbit.example.com',
          scheme: 'https',
          protocol: 'HTTP/1.1',
          headers: {
            ':authority': 'hawkbit.example.com',
            ':method': 'GET',
            ':path': path,
            ':scheme': 'https',
            accept: 'application/hal+json',
            'user-agent': 'swupdate-hawkbit/2024.12',
            'x-forwarded-proto': 'https',
            'x-request-id': randomUUID(),
            ...headers,
          },
        },
      },
    },
  } as CheckRequestMessage;
}

const DDI_PATH = `/${TENANT}/controller/v1/${CONTROLLER_ID}`;

const tokenRequest = (): CheckRequestMessage => envoyRequest(DDI_PATH, { authorization: `TargetToken ${TARGET_TOKEN}` });
const wrongTokenRequest = (): CheckRequestMessage => envoyRequest(DDI_PATH, { authorization: `TargetToken ${'0'.repeat(32)}` });

export const SCENARIOS: readonly Scenario[] = [
  {
    name: 'token-allow',
    title: 'target token, allowed',
    kind: 'token',
    config: (context) => configText(context, {}),
    request: tokenRequest,
    expected: { result: 'allow', method: 'target-token', httpStatus: 200 },
    baseline: true,
  },
  {
    name: 'token-deny',
    title: 'target token, wrong token (401), failure limiter off',
    kind: 'deny',
    config: (context) => configText(context, { rateLimit: false }),
    request: wrongTokenRequest,
    expected: { result: 'deny', reason: 'token_mismatch', httpStatus: 401 },
    baseline: true,
  },
  {
    name: 'token-deny-limited',
    title: 'target token, wrong token from one source, failure limiter on (429 after the limit)',
    kind: 'deny',
    config: (context) => configText(context, {}),
    request: wrongTokenRequest,
    expected: { result: 'deny', reason: 'rate_limited', httpStatus: 429, alternatives: [{ reason: 'token_mismatch', httpStatus: 401 }] },
    baseline: true,
  },
  {
    name: 'gateway-token',
    title: 'gateway token, allowed',
    kind: 'token',
    config: (context) => configText(context, {}),
    request: () => envoyRequest(DDI_PATH, { authorization: `GatewayToken ${GATEWAY_KEY}` }),
    expected: { result: 'allow', method: 'gateway-token', httpStatus: 200 },
    baseline: true,
  },
  {
    name: 'cert-source',
    title: 'certificate in source.certificate, issuer hash trusted',
    kind: 'certificate',
    config: (context) => configText(context, { authority: context.certificates.directIssuerHash }),
    request: (certificates) => envoyRequest(DDI_PATH, {}, { certificate: encodePemLikeEnvoy(certificates.directDevicePem) }),
    expected: { result: 'allow', method: 'certificate', httpStatus: 200 },
    baseline: true,
  },
  {
    name: 'cert-xfcc-chain',
    title: 'certificate and chain in x-forwarded-client-cert, root fingerprint trusted',
    kind: 'certificate',
    config: (context) => configText(context, { trustXfcc: true, authority: context.certificates.rootFingerprint }),
    request: (certificates) =>
      envoyRequest(DDI_PATH, {
        'x-forwarded-client-cert': xfccElementLikeEnvoy(certificates.chainedDevicePem, [certificates.intermediatePem, certificates.rootPem]),
      }),
    expected: { result: 'allow', method: 'certificate', httpStatus: 200 },
    baseline: true,
  },
  {
    name: 'non-ddi',
    title: 'path outside the DDI API (403)',
    kind: 'deny',
    config: (context) => configText(context, {}),
    request: () => envoyRequest(`/rest/v1/targets/${CONTROLLER_ID}`, { authorization: `TargetToken ${TARGET_TOKEN}` }),
    expected: { result: 'deny', reason: 'path_not_ddi', httpStatus: 403 },
    baseline: true,
  },
  {
    name: 'store-100k',
    title: 'target token, embedded store with 100,000 targets',
    kind: 'store',
    config: (context) => configText(context, { generatedTargets: 100_000 }),
    request: () =>
      envoyRequest(`/${TENANT}/controller/v1/${generatedId(54_321)}`, { authorization: `TargetToken ${generatedToken(54_321)}` }),
    expected: { result: 'allow', method: 'target-token', httpStatus: 200 },
    baseline: true,
    generatedTargets: 100_000,
  },
  {
    name: 'token-allow-bare',
    title: 'target token, allowed, with decision log, metrics and failure limits off',
    kind: 'log',
    config: (context) => configText(context, { logLevel: 'silent', metrics: false, rateLimit: false }),
    request: tokenRequest,
    expected: { result: 'allow', method: 'target-token', httpStatus: 200 },
    baseline: false,
  },
  {
    name: 'token-allow-silent',
    title: 'target token, allowed, log.level silent',
    kind: 'log',
    config: (context) => configText(context, { logLevel: 'silent' }),
    request: tokenRequest,
    expected: { result: 'allow', method: 'target-token', httpStatus: 200 },
    // It gets no-op rounds of its own, so that the decision log's cost is measured against the same baseline as in token-allow.
    baseline: true,
  },
  {
    name: 'decision-log',
    title: 'target token, allowed, log.level info against the same service at silent',
    kind: 'log',
    config: (context) => configText(context, {}),
    request: tokenRequest,
    expected: { result: 'allow', method: 'target-token', httpStatus: 200 },
    baseline: false,
    // Alternating the two services in the same rounds measures the log's cost directly, where two ratios to the
    // no-op server taken minutes apart move with the machine's speed.
    comparison: { name: 'silent', config: (context) => configText(context, { logLevel: 'silent' }) },
  },
  {
    name: 'redis-warm',
    title: 'target token, Redis store, warm cache',
    kind: 'redis',
    config: (context) => configText(context, { redis: { cache: { maxEntries: 100_000, ttlMs: 60_000 } } }),
    request: () =>
      envoyRequest(`/${TENANT}/controller/v1/${generatedId(REDIS_TARGET_INDEX)}`, { authorization: `TargetToken ${generatedToken(REDIS_TARGET_INDEX)}` }),
    expected: { result: 'allow', method: 'target-token', httpStatus: 200 },
    redisTargets: true,
    baseline: true,
  },
  {
    name: 'redis-cold',
    title: 'target token, Redis store, no cache (cache.ttlMs 0)',
    kind: 'redis',
    config: (context) => configText(context, { redis: { cache: { maxEntries: 1, ttlMs: 0 } } }),
    request: () =>
      envoyRequest(`/${TENANT}/controller/v1/${generatedId(REDIS_TARGET_INDEX)}`, { authorization: `TargetToken ${generatedToken(REDIS_TARGET_INDEX)}` }),
    expected: { result: 'allow', method: 'target-token', httpStatus: 200 },
    redisTargets: true,
    baseline: true,
  },
  {
    name: 'workers-1',
    title: 'target token, serve --workers 1',
    kind: 'workers',
    config: (context) => configText(context, {}),
    request: tokenRequest,
    expected: { result: 'allow', method: 'target-token', httpStatus: 200 },
    workers: 1,
    baseline: false,
  },
  {
    name: 'workers-2',
    title: 'target token, serve --workers 2',
    kind: 'workers',
    config: (context) => configText(context, {}),
    request: tokenRequest,
    expected: { result: 'allow', method: 'target-token', httpStatus: 200 },
    workers: 2,
    baseline: false,
  },
];
