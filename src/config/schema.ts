/**
 * The service configuration after loading and validation. Every secret has
 * been resolved from its `{ file }` or `{ env }` source by then.
 * The README's configuration reference documents each key.
 */

export type Mode = 'enforce' | 'audit';

export interface ProxyHeaderNames {
  /** Header that carries the controller id, hawkBit 1.0+: `X-Controller-Id`; up to 0.9: `X-Ssl-Client-Cn`. */
  controllerIdHeader: string;
  /** Authority header, read bare and as `NAME-0`, `NAME-1`, ...; hawkBit 1.0+: `X-Authority`; up to 0.9: `X-Ssl-Issuer-Hash`. */
  authorityHeader: string;
}

export interface CertificateMethodConfig {
  enabled: boolean;
  /** Read `x-forwarded-client-cert`; only safe when Envoy sets it with SANITIZE_SET. */
  trustXfcc: boolean;
  /** Addresses or CIDRs whose proxy headers are trusted, as given in the file. */
  trustedProxies: string[];
  proxyHeaders: ProxyHeaderNames;
}

export interface HawkbitHeaderAuthConfig extends ProxyHeaderNames {
  enabled: boolean;
  /** Fixed authority value the operator also puts into hawkBit's `authentication.header.authority`. */
  authority: string;
}

export interface RedisStoreConfig {
  /** `redis://` or `rediss://` URL. */
  url: string;
  /** Prefix of every key the service reads or writes. */
  keyPrefix: string;
  username?: string;
  password?: string;
  /** Passed through to the `redis` client's createClient/createSentinel/createCluster options. */
  clientOptions?: Record<string, unknown>;
  sentinel?: Record<string, unknown>;
  cluster?: Record<string, unknown>;
}

export interface CacheConfig {
  /** Maximum number of cached entries per kind (tenants, targets, certificates). */
  maxEntries: number;
  /** Maximum age of a cached entry, in milliseconds. */
  ttlMs: number;
  /**
   * How long cached allows stay trusted after the invalidation channel is lost,
   * in milliseconds. 0 (default) trusts none, because a revocation may be missed.
   */
  staleAllowMs: number;
}

export type StoreConfig = { type: 'memory' } | { type: 'redis'; redis: RedisStoreConfig };

/** One failure window of the failure limiter. */
export interface FailureWindowConfig {
  /** Failures the window allows; the next token attempt is rejected with 429 until the window frees a slot. */
  maxFailures: number;
  /** Window length, in milliseconds. */
  windowMs: number;
}

/** Limits on failed authentication attempts; the README's "Failure limits" section describes the rules. */
export interface RateLimitConfig {
  enabled: boolean;
  /** Failures per source address. */
  perSource: FailureWindowConfig;
  /** Failures per (tenant, controller id), and per tenant for gateway tokens. */
  perTarget: FailureWindowConfig;
  /** How long a source that authenticated a controller id stays exempt from that id's limit, in milliseconds; 0 exempts none. */
  knownSourceMs: number;
  /** Addresses or CIDRs that skip the per-source limit, such as NAT gateways, as given in the file. */
  exemptSources: string[];
  /** Maximum entries of each in-process map (failure counters, known sources); the least recently used goes first. */
  maxTrackedKeys: number;
  /** Interval of the exchange of counts with the Redis store, in milliseconds; unused with the embedded store. */
  syncIntervalMs: number;
  /**
   * Number of proxies in front of Envoy that each append the address they
   * saw to `X-Forwarded-For`. For a request from a trusted proxy, the entry
   * this many places left of the last one is the client that failures count
   * under. 0 reads no `X-Forwarded-For`.
   */
  forwardedForHops: number;
}

/** A target entry of the configuration file: a plain token or its SHA-256 digest. */
export interface TargetEntry {
  securityToken?: string;
  securityTokenSha256?: string;
}

export interface TenantEntry {
  /** hawkBit's tenant configuration keys, as hawkBit names them. */
  config: Record<string, string | boolean>;
  /** Targets by controller id, in file order. A Map, because an object with 100,000 keys was slow to fill and to list. */
  targets: Map<string, TargetEntry>;
  /** Pinned CA certificates, one PEM block each. */
  caCertificates: string[];
  /** SHA-256 fingerprints of revoked device certificates, lower-case hex. */
  revokedCertificates: string[];
}

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';

export interface GrpcTlsConfig {
  /** Server certificate chain, PEM. */
  certificate: string;
  /** Server private key, PEM. */
  privateKey: string;
  /** CA bundle that client certificates must chain to, PEM; unset accepts no client certificates. */
  clientCa?: string;
  /** Reject clients without a certificate signed by `clientCa`. */
  requireClientCertificate: boolean;
}

export interface GrpcConfig {
  address: string;
  /** TLS on the gRPC listener; plaintext when unset. */
  tls?: GrpcTlsConfig;
  /** Largest CheckRequest accepted, in bytes. */
  maxReceiveMessageBytes: number;
  /** HTTP/2 streams one connection may have open at once. */
  maxConcurrentStreams: number;
  /** Interval of server keepalive pings on an idle connection, in milliseconds. */
  keepaliveTimeMs: number;
  /** How long to wait for a keepalive ping's acknowledgement before closing the connection, in milliseconds. */
  keepaliveTimeoutMs: number;
}

/** Bounds on what one request may carry; each breach is a clean deny with its own reason code. */
export interface RequestLimits {
  /** Sum of header name and value lengths, in bytes. */
  maxHeaderBytes: number;
  /** Number of header lines (header_map entries, or map entries). */
  maxHeaderCount: number;
  /** Length of one encoded certificate (`source.certificate`, XFCC `Cert`), in characters. */
  maxCertificateBytes: number;
  /** Certificates in a forwarded chain, leaf included. */
  maxChainCertificates: number;
}

export interface ServiceConfig {
  /** Worker processes `serve` runs on the same ports; 1 runs a single process. `--workers` wins. */
  workers: number;
  limits: RequestLimits;
  grpc: GrpcConfig;
  http: { address: string };
  mode: Mode;
  log: {
    level: LogLevel;
    /** `stdout`, `stderr` or a file path. */
    destination: string;
    /** Level of the decision line for an allow. */
    allowLevel: LogLevel;
    /** Level of the decision line for a deny. */
    denyLevel: LogLevel;
  };
  metrics: {
    /** Serve Prometheus metrics at `/metrics` on the HTTP address. */
    enabled: boolean;
    /** Add a `tenant` label to the decision counter. */
    tenantLabel: boolean;
  };
  /** Reload the file when it changes on disk, besides on SIGHUP. */
  reload: { watch: boolean };
  ddi: {
    targetToken: { enabled: boolean };
    gatewayToken: { enabled: boolean };
    certificate: CertificateMethodConfig;
  };
  upstream: {
    identityHeaders: { tenant: string; controllerId: string; authMethod: string };
    hawkbitHeaderAuth: HawkbitHeaderAuthConfig;
    /** Further client-sent headers to strip from every allowed request. */
    removeHeaders: string[];
  };
  store: StoreConfig;
  /** Key for HMAC-SHA-256 token digests; plain SHA-256 when unset. */
  tokenDigestKey?: string;
  cache: CacheConfig;
  rateLimit: RateLimitConfig;
  shutdown: {
    /** How long to keep serving calls after reporting NOT_SERVING, in milliseconds, so Envoy moves traffic away first. */
    drainDelayMs: number;
    /** How long calls in flight may take to finish before they are cancelled, in milliseconds. */
    timeoutMs: number;
  };
  tenants: Record<string, TenantEntry>;
  /** Path of the configuration file, for the start log and reloads. */
  source: string;
}

/** A tenant as the running service keeps it: its targets and gateway key are only in the store, as digests. */
export type RunningTenantEntry = Omit<TenantEntry, 'targets'>;

/** The configuration as the running service keeps it, without the secrets that its store keeps as digests. */
export type RunningConfig = Omit<ServiceConfig, 'tenants'> & { tenants: Record<string, RunningTenantEntry> };
