import { X509Certificate } from 'node:crypto';
import { accessSync, constants as fsConstants, existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import yaml from 'js-yaml';
import { ConfigError } from './errors.js';
import { ConfigReader } from './reader.js';
import type { CacheConfig, RateLimitConfig, ServiceConfig, StoreConfig, TargetEntry, TenantEntry } from './schema.js';
import { parseListenAddress } from './address.js';
import { parseCidr } from '../net/cidr.js';
import { CONTROLLER_ID_MAX_LENGTH } from '../ddi/path.js';
import { AUTHORIZATION_MAX_LENGTH } from '../auth/authorization-header.js';

/** Environment variable that names the configuration file when `--config` is not given. */
export const CONFIG_ENV_VAR = 'HAWKBIT_EXT_AUTHZ_CONFIG';

/** hawkBit's tenant configuration keys that this service reads. */
export const TENANT_CONFIG_KEYS = {
  targetTokenEnabled: 'authentication.targettoken.enabled',
  gatewayTokenEnabled: 'authentication.gatewaytoken.enabled',
  gatewayTokenKey: 'authentication.gatewaytoken.key',
  headerEnabled: 'authentication.header.enabled',
  headerAuthority: 'authentication.header.authority',
} as const;

const KNOWN_TENANT_KEYS: readonly string[] = Object.values(TENANT_CONFIG_KEYS);
const BOOLEAN_TENANT_KEYS: readonly string[] = [
  TENANT_CONFIG_KEYS.targetTokenEnabled,
  TENANT_CONFIG_KEYS.gatewayTokenEnabled,
  TENANT_CONFIG_KEYS.headerEnabled,
];

/** hawkBit's `Target.SECURITY_TOKEN_MAX_SIZE`. */
export const SECURITY_TOKEN_MAX_LENGTH = 128;
/** RFC 9110 token68: the only characters a credential in `Authorization` may hold. */
export const TOKEN68 = /^[A-Za-z0-9\-._~+/]+=*$/;

const DEFAULT_CACHE: CacheConfig = { maxEntries: 100_000, ttlMs: 60_000, staleAllowMs: 0 };

export interface LoadOptions {
  env?: NodeJS.ProcessEnv;
}

/** Reads, parses and validates a configuration file; throws ConfigError naming every bad key. */
export function loadConfigFile(path: string, options: LoadOptions = {}): ServiceConfig {
  const absolute = resolve(path);
  let text: string;
  try {
    text = readFileSync(absolute, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? String(error);
    throw new ConfigError(absolute, [`cannot read the file (${code}); check the path given by --config or ${CONFIG_ENV_VAR}`]);
  }
  return parseConfig(text, absolute, options);
}

// js-yaml exports its merge type at run time, but @types/js-yaml does not declare `types`.
const MERGE_TYPE = (yaml as unknown as { types: { merge: yaml.Type } }).types.merge;

/**
 * The YAML schema of configuration and import files: YAML 1.2's core schema (strings,
 * numbers, booleans, null) plus merge keys (`<<`). Unlike js-yaml's default schema it reads
 * no timestamps, so a controller id such as `2024-05-01` stays that string instead of
 * turning into a date, and parsing a file of 100,000 targets took about 10% less time.
 * Unquoted keys that it reads as another number, boolean or null than they spell, such as
 * `0x1F` (31) or `True`, are rejected by parseYaml.
 */
export const YAML_SCHEMA = yaml.CORE_SCHEMA.extend({ implicit: [MERGE_TYPE] });

/** A schema that reads every scalar as the string written, with merge keys, to recover the text of mapping keys. */
const TEXT_SCHEMA = yaml.FAILSAFE_SCHEMA.extend({ implicit: [MERGE_TYPE] });

/** Number of rewritten keys that a problem names before it counts the rest. */
const MAX_NAMED_KEYS = 3;

/**
 * Parses YAML text with YAML_SCHEMA. A syntax error is reported by position only, because
 * the parser's own message quotes the file's lines, which may hold tokens or keys.
 */
export function parseYaml(text: string, source: string): { ok: true; document: unknown } | { ok: false; problem: string } {
  let document: unknown;
  try {
    document = yaml.load(text, { filename: source, schema: YAML_SCHEMA });
  } catch (error) {
    const yamlError = error as { reason?: string; mark?: { line: number; column: number } };
    const where = yamlError.mark ? ` at line ${yamlError.mark.line + 1}, column ${yamlError.mark.column + 1}` : '';
    return { ok: false, problem: `not valid YAML${where}: ${yamlError.reason ?? 'parse error'}` };
  }
  if (!hasScalarLikeKey(document, new Set())) {
    return { ok: true, document };
  }
  let written: unknown;
  try {
    written = yaml.load(text, { filename: source, schema: TEXT_SCHEMA });
  } catch (error) {
    // Keys that the core schema keeps apart but that are spelled alike, such as `0x1F` and `"0x1F"`.
    return { ok: false, problem: `ambiguous YAML: ${(error as { reason?: string }).reason ?? 'keys spelled alike'}` };
  }
  const rewritten = rewrittenKeys(document, written, '', new Set());
  if (rewritten.length > 0) {
    const named = rewritten.slice(0, MAX_NAMED_KEYS).map(({ path, key, read }) => `${path}: ${key} reads as ${read}`);
    const more = rewritten.length > MAX_NAMED_KEYS ? `, and ${rewritten.length - MAX_NAMED_KEYS} more` : '';
    return { ok: false, problem: `ambiguous YAML: ${named.join(', ')}${more}. Quote such keys to keep them as written, for example "${rewritten[0].key}"` };
  }
  return { ok: true, document };
}

/**
 * Returns whether a mapping key spells what the core schema makes of a number, boolean or null
 * (`31`, `1e+21`, `true`, `null`). Every key that the schema rewrote looks like this, so
 * documents without such keys are not parsed a second time. With 100,000 numeric controller
 * ids, the second parse added about 0.2 s (Node.js 20, 2-core VM).
 */
function hasScalarLikeKey(value: unknown, visited: Set<object>): boolean {
  if (typeof value !== 'object' || value === null || visited.has(value)) {
    return false;
  }
  visited.add(value);
  if (Array.isArray(value)) {
    return value.some((item) => hasScalarLikeKey(item, visited));
  }
  for (const [key, item] of Object.entries(value)) {
    if (key === 'true' || key === 'false' || key === 'null' || String(Number(key)) === key || hasScalarLikeKey(item, visited)) {
      return true;
    }
  }
  return false;
}

/**
 * Returns the mapping keys whose text the core schema changed, by walking the document read
 * with it and the same document read with every scalar as text side by side. A key such as
 * `0x1F` that became `31` would silently name another controller id or tenant.
 */
function rewrittenKeys(read: unknown, written: unknown, path: string, visited: Set<object>): { path: string; key: string; read: string }[] {
  if (typeof read !== 'object' || read === null || typeof written !== 'object' || written === null || visited.has(read)) {
    return [];
  }
  visited.add(read);
  const found: { path: string; key: string; read: string }[] = [];
  if (Array.isArray(read) && Array.isArray(written)) {
    read.forEach((item, index) => found.push(...rewrittenKeys(item, written[index], `${path}[${index}]`, visited)));
    return found;
  }
  const readRecord = read as Record<string, unknown>;
  for (const [key, item] of Object.entries(written as Record<string, unknown>)) {
    const keyAsRead = Object.hasOwn(readRecord, key) ? key : coreText(key);
    const childPath = path === '' ? key : `${path}.${key}`;
    if (keyAsRead !== key) {
      found.push({ path: path === '' ? '(top level)' : path, key, read: keyAsRead });
    }
    found.push(...rewrittenKeys(readRecord[keyAsRead], item, childPath, visited));
  }
  return found;
}

/** Returns the key that the core schema makes of a plain scalar's text. */
function coreText(text: string): string {
  try {
    return String(yaml.load(text, { schema: YAML_SCHEMA }));
  } catch {
    return text;
  }
}

/**
 * Replaces the strings of a parsed configuration with copies, in place, because js-yaml's strings are
 * slices of the file's text. Targets are skipped, since only their ids stay, and those are property names.
 */
function ownConfigStrings(document: unknown): unknown {
  const visited = new Set<object>();
  const tenants = isRecord(document) && isRecord(document.tenants) ? Object.values(document.tenants) : [];
  for (const tenant of tenants) {
    if (isRecord(tenant) && typeof tenant.targets === 'object' && tenant.targets !== null) {
      // Marking the targets as visited makes the walk skip them.
      visited.add(tenant.targets);
    }
  }
  return ownStrings(document, visited);
}

/** Replaces every string under `value` with a copy. Each object is walked once, because YAML aliases can share and nest them. */
function ownStrings(value: unknown, visited: Set<object>): unknown {
  if (typeof value === 'string') {
    // JSON escapes lone surrogates and reads them back, so every code unit survives the copy.
    return JSON.parse(JSON.stringify(value)) as string;
  }
  if (typeof value !== 'object' || value === null || visited.has(value)) {
    return value;
  }
  visited.add(value);
  if (Array.isArray(value)) {
    for (let index = 0; index < value.length; index++) {
      value[index] = ownStrings(value[index], visited);
    }
  } else {
    const entries = value as Record<string, unknown>;
    for (const key of Object.keys(entries)) {
      entries[key] = ownStrings(entries[key], visited);
    }
  }
  return value;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Parses and validates configuration text; `source` names it in errors and resolves relative secret files. */
export function parseConfig(text: string, source: string, options: LoadOptions = {}): ServiceConfig {
  const parsed = parseYaml(text, source);
  if (!parsed.ok) {
    throw new ConfigError(source, [parsed.problem]);
  }
  const document = ownConfigStrings(parsed.document);
  const reader = new ConfigReader(options.env ?? process.env, dirname(source));
  const config = readConfig(reader, document, source);
  if (reader.problems.length > 0) {
    throw new ConfigError(source, reader.problems);
  }
  return config;
}

function readConfig(reader: ConfigReader, document: unknown, source: string): ServiceConfig {
  const root = reader.section(document, '', [
    'workers', 'grpc', 'http', 'mode', 'log', 'metrics', 'limits', 'reload', 'ddi', 'upstream', 'store', 'tokenDigestKey', 'cache', 'rateLimit', 'shutdown', 'tenants',
  ]);

  const grpc = reader.section(root.grpc, 'grpc', ['address', 'tls', 'maxReceiveMessageBytes', 'maxConcurrentStreams', 'keepaliveTimeMs', 'keepaliveTimeoutMs']);
  const http = reader.section(root.http, 'http', ['address']);
  const grpcAddress = reader.string(grpc.address, 'grpc.address', '127.0.0.1:9191');
  const httpAddress = reader.string(http.address, 'http.address', '127.0.0.1:9192');
  for (const [key, address] of [['grpc.address', grpcAddress], ['http.address', httpAddress]] as const) {
    const problem = parseListenAddress(address).problem;
    if (problem) {
      reader.fail(key, problem);
    }
  }

  const log = reader.section(root.log, 'log', ['level', 'destination', 'allowLevel', 'denyLevel']);
  const metrics = reader.section(root.metrics, 'metrics', ['enabled', 'tenantLabel']);
  const reload = reader.section(root.reload, 'reload', ['watch']);
  const levels = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
  const ddi = reader.section(root.ddi, 'ddi', ['targetToken', 'gatewayToken', 'certificate']);
  const targetToken = reader.section(ddi.targetToken, 'ddi.targetToken', ['enabled']);
  const gatewayToken = reader.section(ddi.gatewayToken, 'ddi.gatewayToken', ['enabled']);
  const certificate = reader.section(ddi.certificate, 'ddi.certificate', ['enabled', 'trustXfcc', 'trustedProxies', 'proxyHeaders']);
  const proxyHeaders = reader.section(certificate.proxyHeaders, 'ddi.certificate.proxyHeaders', ['controllerIdHeader', 'authorityHeader']);

  const upstream = reader.section(root.upstream, 'upstream', ['identityHeaders', 'hawkbitHeaderAuth', 'removeHeaders']);
  const identity = reader.section(upstream.identityHeaders, 'upstream.identityHeaders', ['tenant', 'controllerId', 'authMethod']);
  const headerAuth = reader.section(upstream.hawkbitHeaderAuth, 'upstream.hawkbitHeaderAuth', ['enabled', 'controllerIdHeader', 'authorityHeader', 'authority']);

  const limits = reader.section(root.limits, 'limits', ['maxHeaderBytes', 'maxHeaderCount', 'maxCertificateBytes', 'maxChainCertificates']);
  const config: ServiceConfig = {
    workers: reader.integer(root.workers, 'workers', 1, 1, 256),
    limits: {
      maxHeaderBytes: reader.integer(limits.maxHeaderBytes, 'limits.maxHeaderBytes', 96 * 1024, 1024),
      maxHeaderCount: reader.integer(limits.maxHeaderCount, 'limits.maxHeaderCount', 200, 8),
      maxCertificateBytes: reader.integer(limits.maxCertificateBytes, 'limits.maxCertificateBytes', 16 * 1024, 1024, 64 * 1024),
      maxChainCertificates: reader.integer(limits.maxChainCertificates, 'limits.maxChainCertificates', 8, 1, 16),
    },
    grpc: {
      address: grpcAddress,
      tls: readGrpcTls(reader, grpc.tls),
      maxReceiveMessageBytes: reader.integer(grpc.maxReceiveMessageBytes, 'grpc.maxReceiveMessageBytes', 16 * 1024 * 1024, 64 * 1024, 1024 * 1024 * 1024),
      maxConcurrentStreams: reader.integer(grpc.maxConcurrentStreams, 'grpc.maxConcurrentStreams', 1000, 1, 1_000_000),
      keepaliveTimeMs: reader.integer(grpc.keepaliveTimeMs, 'grpc.keepaliveTimeMs', 60_000, 1000),
      keepaliveTimeoutMs: reader.integer(grpc.keepaliveTimeoutMs, 'grpc.keepaliveTimeoutMs', 20_000, 1000),
    },
    http: { address: httpAddress },
    mode: reader.oneOf(root.mode, 'mode', ['enforce', 'audit'] as const, 'enforce'),
    log: {
      level: reader.oneOf(log.level, 'log.level', levels, 'info'),
      destination: reader.string(log.destination, 'log.destination', 'stdout'),
      allowLevel: reader.oneOf(log.allowLevel, 'log.allowLevel', levels, 'info'),
      denyLevel: reader.oneOf(log.denyLevel, 'log.denyLevel', levels, 'warn'),
    },
    metrics: {
      enabled: reader.boolean(metrics.enabled, 'metrics.enabled', true),
      tenantLabel: reader.boolean(metrics.tenantLabel, 'metrics.tenantLabel', false),
    },
    reload: { watch: reader.boolean(reload.watch, 'reload.watch', true) },
    ddi: {
      targetToken: { enabled: reader.boolean(targetToken.enabled, 'ddi.targetToken.enabled', true) },
      gatewayToken: { enabled: reader.boolean(gatewayToken.enabled, 'ddi.gatewayToken.enabled', true) },
      certificate: {
        enabled: reader.boolean(certificate.enabled, 'ddi.certificate.enabled', true),
        trustXfcc: reader.boolean(certificate.trustXfcc, 'ddi.certificate.trustXfcc', false),
        trustedProxies: reader.stringList(certificate.trustedProxies, 'ddi.certificate.trustedProxies'),
        proxyHeaders: {
          controllerIdHeader: reader.headerName(proxyHeaders.controllerIdHeader, 'ddi.certificate.proxyHeaders.controllerIdHeader', 'X-Controller-Id'),
          authorityHeader: reader.headerName(proxyHeaders.authorityHeader, 'ddi.certificate.proxyHeaders.authorityHeader', 'X-Authority'),
        },
      },
    },
    upstream: {
      identityHeaders: {
        tenant: reader.headerName(identity.tenant, 'upstream.identityHeaders.tenant', 'x-ddi-tenant'),
        controllerId: reader.headerName(identity.controllerId, 'upstream.identityHeaders.controllerId', 'x-ddi-controller-id'),
        authMethod: reader.headerName(identity.authMethod, 'upstream.identityHeaders.authMethod', 'x-ddi-auth-method'),
      },
      hawkbitHeaderAuth: {
        enabled: reader.boolean(headerAuth.enabled, 'upstream.hawkbitHeaderAuth.enabled', false),
        controllerIdHeader: reader.headerName(headerAuth.controllerIdHeader, 'upstream.hawkbitHeaderAuth.controllerIdHeader', 'X-Controller-Id'),
        authorityHeader: reader.headerName(headerAuth.authorityHeader, 'upstream.hawkbitHeaderAuth.authorityHeader', 'X-Authority'),
        authority: reader.secret(headerAuth.authority, 'upstream.hawkbitHeaderAuth.authority') ?? '',
      },
      removeHeaders: reader.stringList(upstream.removeHeaders, 'upstream.removeHeaders'),
    },
    store: readStore(reader, root.store),
    tokenDigestKey: reader.secret(root.tokenDigestKey, 'tokenDigestKey'),
    cache: readCache(reader, root.cache),
    rateLimit: readRateLimit(reader, root.rateLimit),
    shutdown: readShutdown(reader, root.shutdown),
    tenants: readTenants(reader, root.tenants),
    source,
  };

  validateProxies(reader, config.ddi.certificate.trustedProxies, 'ddi.certificate.trustedProxies');
  validateHeaderNames(reader, config);
  if (config.tokenDigestKey === '') {
    reader.fail('tokenDigestKey', 'is empty; remove the key for plain SHA-256 digests, or give a non-empty secret');
  }
  if (config.log.destination !== 'stdout' && config.log.destination !== 'stderr') {
    const problem = logFileProblem(resolve(dirname(source), config.log.destination));
    if (problem) {
      reader.fail('log.destination', problem);
    }
  }
  if (config.tokenDigestKey) {
    for (const [tenant, entry] of Object.entries(config.tenants)) {
      for (const [controllerId, target] of entry.targets) {
        if (target.securityTokenSha256 !== undefined) {
          reader.fail(`tenants.${tenant}.targets.${controllerId}.securityTokenSha256`, 'cannot be used with tokenDigestKey, because stored digests are then HMAC-SHA-256; give securityToken instead');
        }
      }
    }
  }
  const auth = config.upstream.hawkbitHeaderAuth;
  if (auth.enabled && auth.authority.trim() === '') {
    reader.fail('upstream.hawkbitHeaderAuth.authority', 'must be set when hawkbitHeaderAuth is enabled; use the same value as in hawkBit\'s authentication.header.authority');
  }
  if (auth.authority !== '' && !/^[\x21-\x7e]+$/.test(auth.authority)) {
    reader.fail('upstream.hawkbitHeaderAuth.authority', 'must be printable ASCII without spaces, because it is sent as a header value');
  }
  if (auth.enabled && /[,;]/.test(auth.authority)) {
    reader.fail('upstream.hawkbitHeaderAuth.authority', 'must be a single value without "," or ";", because hawkBit splits its header on them');
  }
  return config;
}

function readStore(reader: ConfigReader, value: unknown): StoreConfig {
  const store = reader.section(value, 'store', ['type', 'redis']);
  const type = reader.oneOf(store.type, 'store.type', ['memory', 'redis'] as const, 'memory');
  if (type === 'memory') {
    if (store.redis !== undefined) {
      reader.fail('store.redis', 'only allowed with store.type: redis');
    }
    return { type: 'memory' };
  }
  const redis = reader.section(store.redis, 'store.redis', ['url', 'keyPrefix', 'username', 'password', 'clientOptions', 'sentinel', 'cluster']);
  const url = reader.string(redis.url, 'store.redis.url', 'redis://127.0.0.1:6379');
  // Any userinfo is masked, whatever the scheme, because a mistyped URL still contains the password.
  const maskedUrl = url.replace(/^([^:/]*:?\/*[^:@/]*):[^/]*@/, '$1:***@').replace(/^([^@/]*\/\/)?[^:@/]+@/, (match, scheme: string | undefined) => `${scheme ?? ''}***@`);
  if (!/^rediss?:\/\//.test(url)) {
    reader.fail('store.redis.url', `"${maskedUrl}" must start with redis:// or rediss://`);
  } else {
    const problem = redisUrlProblem(url);
    if (problem) {
      reader.fail('store.redis.url', `"${maskedUrl}" ${problem}; write for example redis://127.0.0.1:6379 or rediss://user:password@redis.example:6380/0`);
    }
  }
  if (/^rediss?:\/\/[^/]*@/.test(url) && (redis.username !== undefined || redis.password !== undefined)) {
    reader.fail('store.redis.url', 'contains credentials while store.redis.username or password is set too; give them in one place only');
  }
  const passthrough = (key: 'clientOptions' | 'sentinel' | 'cluster'): Record<string, unknown> | undefined =>
    redis[key] === undefined ? undefined : reader.section(redis[key], `store.redis.${key}`, null);
  return {
    type: 'redis',
    redis: {
      url,
      keyPrefix: reader.string(redis.keyPrefix, 'store.redis.keyPrefix', 'hawkbit-ext-authz:'),
      username: redis.username === undefined ? undefined : reader.string(redis.username, 'store.redis.username', ''),
      password: reader.secret(redis.password, 'store.redis.password'),
      clientOptions: passthrough('clientOptions'),
      sentinel: passthrough('sentinel'),
      cluster: passthrough('cluster'),
    },
  };
}

function readCache(reader: ConfigReader, value: unknown): CacheConfig {
  const cache = reader.section(value, 'cache', ['maxEntries', 'ttlMs', 'staleAllowMs']);
  return {
    maxEntries: reader.integer(cache.maxEntries, 'cache.maxEntries', DEFAULT_CACHE.maxEntries, 1),
    ttlMs: reader.integer(cache.ttlMs, 'cache.ttlMs', DEFAULT_CACHE.ttlMs, 0),
    staleAllowMs: reader.integer(cache.staleAllowMs, 'cache.staleAllowMs', DEFAULT_CACHE.staleAllowMs, 0),
  };
}

function readRateLimit(reader: ConfigReader, value: unknown): RateLimitConfig {
  const rateLimit = reader.section(value, 'rateLimit', [
    'enabled',
    'perSource',
    'perTarget',
    'knownSourceMs',
    'exemptSources',
    'maxTrackedKeys',
    'syncIntervalMs',
    'forwardedForHops',
  ]);
  const window = (name: 'perSource' | 'perTarget', maxFailures: number): RateLimitConfig['perSource'] => {
    const section = reader.section(rateLimit[name], `rateLimit.${name}`, ['maxFailures', 'windowMs']);
    return {
      maxFailures: reader.integer(section.maxFailures, `rateLimit.${name}.maxFailures`, maxFailures, 1, 1_000_000),
      windowMs: reader.integer(section.windowMs, `rateLimit.${name}.windowMs`, 60_000, 1_000, 86_400_000),
    };
  };
  const exemptSources = reader.stringList(rateLimit.exemptSources, 'rateLimit.exemptSources');
  validateProxies(reader, exemptSources, 'rateLimit.exemptSources');
  return {
    enabled: reader.boolean(rateLimit.enabled, 'rateLimit.enabled', true),
    perSource: window('perSource', 50),
    perTarget: window('perTarget', 10),
    knownSourceMs: reader.integer(rateLimit.knownSourceMs, 'rateLimit.knownSourceMs', 86_400_000, 0, 30 * 86_400_000),
    exemptSources,
    maxTrackedKeys: reader.integer(rateLimit.maxTrackedKeys, 'rateLimit.maxTrackedKeys', 100_000, 100, 10_000_000),
    syncIntervalMs: reader.integer(rateLimit.syncIntervalMs, 'rateLimit.syncIntervalMs', 250, 50, 60_000),
    forwardedForHops: reader.integer(rateLimit.forwardedForHops, 'rateLimit.forwardedForHops', 0, 0, 8),
  };
}

function readGrpcTls(reader: ConfigReader, value: unknown): ServiceConfig['grpc']['tls'] {
  if (value === undefined || value === null) {
    return undefined;
  }
  const tls = reader.section(value, 'grpc.tls', ['certificate', 'privateKey', 'clientCa', 'requireClientCertificate']);
  const certificate = reader.secret(tls.certificate, 'grpc.tls.certificate');
  const privateKey = reader.secret(tls.privateKey, 'grpc.tls.privateKey');
  const clientCa = reader.secret(tls.clientCa, 'grpc.tls.clientCa');
  const requireClientCertificate = reader.boolean(tls.requireClientCertificate, 'grpc.tls.requireClientCertificate', false);
  for (const [key, pem] of [['certificate', certificate], ['clientCa', clientCa]] as const) {
    if (pem !== undefined && !pem.includes('-----BEGIN CERTIFICATE-----')) {
      reader.fail(`grpc.tls.${key}`, 'expected PEM certificates ("-----BEGIN CERTIFICATE-----"); give { file: PATH } of a PEM file');
    }
  }
  if (privateKey !== undefined && !/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(privateKey)) {
    reader.fail('grpc.tls.privateKey', 'expected a PEM private key; give { file: PATH } of a PEM key file');
  }
  if (certificate === undefined || privateKey === undefined) {
    reader.fail('grpc.tls', 'needs both certificate and privateKey, for example { file: /etc/tls/tls.crt } and { file: /etc/tls/tls.key }');
    return undefined;
  }
  if (requireClientCertificate && clientCa === undefined) {
    reader.fail('grpc.tls.requireClientCertificate', 'needs grpc.tls.clientCa, the CA bundle client certificates must chain to');
  }
  return { certificate, privateKey, clientCa, requireClientCertificate };
}

function readShutdown(reader: ConfigReader, value: unknown): ServiceConfig['shutdown'] {
  const shutdown = reader.section(value, 'shutdown', ['drainDelayMs', 'timeoutMs']);
  return {
    drainDelayMs: reader.integer(shutdown.drainDelayMs, 'shutdown.drainDelayMs', 0, 0, 600_000),
    timeoutMs: reader.integer(shutdown.timeoutMs, 'shutdown.timeoutMs', 10_000, 0, 600_000),
  };
}

function readTenants(reader: ConfigReader, value: unknown): Record<string, TenantEntry> {
  const tenants = reader.section(value, 'tenants', null);
  const result: Record<string, TenantEntry> = {};
  const seen = new Map<string, string>();
  for (const [name, raw] of Object.entries(tenants)) {
    const key = `tenants.${name}`;
    const problem = validateTenantName(name);
    if (problem) {
      reader.fail(key, problem);
      continue;
    }
    const other = seen.get(name.toUpperCase());
    if (other !== undefined) {
      reader.fail(key, `same tenant as "${other}", because tenant names are case-insensitive; merge the two entries`);
      continue;
    }
    seen.set(name.toUpperCase(), name);
    const tenant = reader.section(raw, key, ['config', 'targets', 'caCertificates', 'revokedCertificates']);
    result[name] = {
      config: readTenantConfig(reader, tenant.config, `${key}.config`),
      targets: readTargets(reader, tenant.targets, `${key}.targets`),
      caCertificates: readCaCertificates(reader, tenant.caCertificates, `${key}.caCertificates`),
      revokedCertificates: readFingerprints(reader, tenant.revokedCertificates, `${key}.revokedCertificates`),
    };
  }
  return result;
}

/**
 * Pinned CAs: a PEM bundle as a string or `{ file: PATH }`. Each block must
 * be a CA certificate, because device certificates are verified against it.
 */
function readCaCertificates(reader: ConfigReader, value: unknown, key: string): string[] {
  const bundle = reader.secret(value, key);
  if (bundle === undefined) {
    return [];
  }
  const blocks = bundle.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) {
    reader.fail(key, 'expected PEM certificates ("-----BEGIN CERTIFICATE-----"); give the CA bundle or { file: PATH }');
    return [];
  }
  const pems: string[] = [];
  blocks.forEach((block, index) => {
    const problem = caCertificateProblem(block);
    if (problem) {
      reader.fail(`${key}[${index}]`, problem);
    } else {
      pems.push(`${block}\n`);
    }
  });
  return pems;
}

/** Returns why a PEM block cannot be pinned as a CA, or undefined when it can. */
export function caCertificateProblem(pem: string): string | undefined {
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(pem);
  } catch (error) {
    return `not a readable certificate (${(error as Error).message})`;
  }
  if (!certificate.ca) {
    return `${certificate.subject.replace(/\n/g, ', ')} is not a CA certificate (basicConstraints cA is not true)`;
  }
  return undefined;
}

function readFingerprints(reader: ConfigReader, value: unknown, key: string): string[] {
  return reader.stringList(value, key).flatMap((entry, index) => {
    const fingerprint = entry.trim().toLowerCase().replace(/:/g, '');
    if (!/^[0-9a-f]{64}$/.test(fingerprint)) {
      reader.fail(`${key}[${index}]`, 'expected a SHA-256 fingerprint: 64 hex digits, colons allowed (openssl x509 -fingerprint -sha256 -noout)');
      return [];
    }
    return [fingerprint];
  });
}

/** Returns why a `redis://` or `rediss://` URL cannot be used, or undefined. */
function redisUrlProblem(url: string): string | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return 'is not a valid URL';
  }
  if (parsed.hostname === '') {
    return 'has no host';
  }
  if (parsed.pathname !== '' && parsed.pathname !== '/' && !/^\/\d+$/.test(parsed.pathname)) {
    return 'has a path that is not a database number';
  }
  return undefined;
}

/** Returns a problem with a tenant name, or undefined when it is valid. */
export function validateTenantName(name: string): string | undefined {
  const length = [...name].length;
  if (length < 1 || length > 40) {
    return `tenant name must be 1 to 40 characters, as in hawkBit; got ${length}`;
  }
  if (/[\u0000-\u0020\u007f-\u009f/\\%;?#]/.test(name) || name === '.' || name === '..') {
    return 'tenant name must not be "." or ".." or contain whitespace, control characters, "/", "\\", "%", ";", "?" or "#", because no DDI path can address it';
  }
  return undefined;
}

function readTenantConfig(reader: ConfigReader, value: unknown, key: string): Record<string, string | boolean> {
  const section = reader.section(value, key, KNOWN_TENANT_KEYS);
  const result: Record<string, string | boolean> = {};
  for (const [name, raw] of Object.entries(section)) {
    if (!KNOWN_TENANT_KEYS.includes(name)) {
      continue;
    }
    const entryKey = `${key}.${name}`;
    if (BOOLEAN_TENANT_KEYS.includes(name)) {
      const flag = typeof raw === 'string' && /^(true|false)$/i.test(raw) ? raw.toLowerCase() === 'true' : raw;
      result[name] = reader.boolean(flag, entryKey, false);
    } else if (name === TENANT_CONFIG_KEYS.gatewayTokenKey) {
      const secret = reader.secret(raw, entryKey);
      const problem = secret === undefined || secret === '' ? undefined : validateGatewayKey(secret);
      if (problem) {
        reader.fail(entryKey, problem);
      } else if (secret !== undefined) {
        result[name] = secret;
      }
    } else {
      result[name] = reader.string(raw, entryKey, '');
    }
  }
  return result;
}

function readTargets(reader: ConfigReader, value: unknown, key: string): Map<string, TargetEntry> {
  const targets = reader.section(value, key, null);
  const result = new Map<string, TargetEntry>();
  for (const [controllerId, raw] of Object.entries(targets)) {
    const entryKey = `${key}.${controllerId}`;
    const idProblem = validateControllerId(controllerId);
    if (idProblem) {
      reader.fail(entryKey, idProblem);
      continue;
    }
    const target = reader.section(raw, entryKey, ['securityToken', 'securityTokenSha256']);
    const entry: TargetEntry = {};
    if (target.securityToken !== undefined) {
      const token = reader.secret(target.securityToken, `${entryKey}.securityToken`);
      const tokenProblem = token === undefined ? undefined : validateSecurityToken(token);
      if (tokenProblem) {
        reader.fail(`${entryKey}.securityToken`, tokenProblem);
      } else if (token !== undefined) {
        entry.securityToken = token;
      }
    }
    if (target.securityTokenSha256 !== undefined) {
      const digest = reader.string(target.securityTokenSha256, `${entryKey}.securityTokenSha256`, '');
      if (!/^[0-9a-fA-F]{64}$/.test(digest)) {
        reader.fail(`${entryKey}.securityTokenSha256`, 'expected 64 hex digits, the SHA-256 of the token (for example from `printf %s TOKEN | sha256sum`)');
      } else {
        entry.securityTokenSha256 = digest.toLowerCase();
      }
    }
    if (entry.securityToken !== undefined && entry.securityTokenSha256 !== undefined) {
      reader.fail(entryKey, 'set securityToken or securityTokenSha256, not both');
    }
    result.set(controllerId, entry);
  }
  return result;
}

/** Returns a problem with a controller id, or undefined when it is valid. */
export function validateControllerId(controllerId: string): string | undefined {
  // Code points are counted only when the UTF-16 length allows too many, so a file of many ids loads faster.
  const length = controllerId.length <= CONTROLLER_ID_MAX_LENGTH ? controllerId.length : [...controllerId].length;
  if (length < 1 || length > CONTROLLER_ID_MAX_LENGTH) {
    return `controller id must be 1 to 256 characters, as in hawkBit; got ${length}`;
  }
  if (/[\u0000-\u0020\u007f-\u009f]/.test(controllerId)) {
    return 'controller id must not contain whitespace or control characters';
  }
  if (/[/\\%;?#]/.test(controllerId) || controllerId === '.' || controllerId === '..') {
    return 'controller id must not be "." or ".." or contain "/", "\\", "%", ";", "?" or "#", because no DDI path can address it';
  }
  return undefined;
}

/** Returns a problem with a gateway key, or undefined when it is valid. The key never appears in it. */
export function validateGatewayKey(key: string): string | undefined {
  if (key.length > AUTHORIZATION_MAX_LENGTH - 'GatewayToken '.length) {
    return `gateway key must be at most ${AUTHORIZATION_MAX_LENGTH - 'GatewayToken '.length} characters; got ${key.length}`;
  }
  if (!TOKEN68.test(key)) {
    return 'gateway key must use only the token68 characters A-Z a-z 0-9 - . _ ~ + / (and trailing =), because devices send it in an Authorization header; check for spaces or a stray line break';
  }
  return undefined;
}

/** Returns a problem with a target security token, or undefined when it is valid. The token never appears in it. */
export function validateSecurityToken(token: string): string | undefined {
  if (token.length < 1 || token.length > SECURITY_TOKEN_MAX_LENGTH) {
    return `security token must be 1 to ${SECURITY_TOKEN_MAX_LENGTH} characters; got ${token.length}`;
  }
  if (!TOKEN68.test(token)) {
    return 'security token must use only the token68 characters A-Z a-z 0-9 - . _ ~ + / (and trailing =), because devices send it in an Authorization header';
  }
  return undefined;
}

/** Shortest prefixes accepted for trusted ranges; anything broader would trust a large part of the Internet. */
const MIN_TRUSTED_PREFIX = { ipv4: 8, ipv6: 16 } as const;

/** Validates addresses or CIDRs that are granted trust; rejects ranges so broad that any client would be in them. */
export function validateProxies(reader: ConfigReader, proxies: readonly string[], key: string): void {
  proxies.forEach((entry, index) => {
    const parsed = parseCidr(entry);
    if (!parsed.ok) {
      reader.fail(`${key}[${index}]`, parsed.problem);
    } else if (parsed.prefix < MIN_TRUSTED_PREFIX[parsed.family]) {
      reader.fail(
        `${key}[${index}]`,
        `"${entry}" is too broad (prefix shorter than /${MIN_TRUSTED_PREFIX[parsed.family]}): every client in it would be trusted; list your proxies' addresses`,
      );
    }
  });
}

/** Header names the service must never set or strip as identity, because Envoy or HTTP gives them another meaning. */
const RESERVED_HEADER_NAMES = new Set([
  'host', 'authorization', 'connection', 'content-length', 'content-type', 'te', 'transfer-encoding', 'upgrade',
  'keep-alive', 'proxy-connection', 'x-request-id', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-client-cert',
  'x-envoy-original-path',
]);

/** Checks that the identity and hawkBit header names are distinct and not reserved, and that removeHeaders are header names. */
function validateHeaderNames(reader: ConfigReader, config: ServiceConfig): void {
  const identity = config.upstream.identityHeaders;
  const auth = config.upstream.hawkbitHeaderAuth;
  const proxy = config.ddi.certificate.proxyHeaders;
  const named: [string, string][] = [
    ['upstream.identityHeaders.tenant', identity.tenant],
    ['upstream.identityHeaders.controllerId', identity.controllerId],
    ['upstream.identityHeaders.authMethod', identity.authMethod],
    ['ddi.certificate.proxyHeaders.controllerIdHeader', proxy.controllerIdHeader],
    ['ddi.certificate.proxyHeaders.authorityHeader', proxy.authorityHeader],
  ];
  if (auth.enabled) {
    named.push(['upstream.hawkbitHeaderAuth.controllerIdHeader', auth.controllerIdHeader], ['upstream.hawkbitHeaderAuth.authorityHeader', auth.authorityHeader]);
  }
  const setNames = new Map<string, string>();
  for (const [key, name] of named) {
    const lower = name.toLowerCase();
    if (RESERVED_HEADER_NAMES.has(lower)) {
      reader.fail(key, `"${name}" is reserved for HTTP or Envoy; choose another header name`);
    }
    // hawkBit reads its own header names as identity, so only hawkbitHeaderAuth may set them.
    if (key.startsWith('upstream.identityHeaders.') && /^(x-controller-id|x-authority(-\d+)?|x-ssl-client-cn|x-ssl-issuer-hash(-\d+)?)$/.test(lower)) {
      reader.fail(key, `"${name}" is one of hawkBit's identity headers; set those with upstream.hawkbitHeaderAuth and choose another name here`);
    }
    // Identity headers the service sets must be distinct; proxy headers may repeat hawkBit's own names.
    if (key.startsWith('upstream.')) {
      const other = setNames.get(lower);
      if (other !== undefined) {
        reader.fail(key, `"${name}" is also used by ${other}; every header the service sets needs its own name`);
      }
      setNames.set(lower, key);
    }
  }
  config.upstream.removeHeaders.forEach((name, index) => {
    if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(name)) {
      reader.fail(`upstream.removeHeaders[${index}]`, `"${name}" is not a valid HTTP header name (pseudo-headers and empty names cannot be removed)`);
    }
  });
}

/** Returns why log lines cannot be appended to `path`, or undefined when they can. */
function logFileProblem(path: string): string | undefined {
  // Root passes every permission check there, yet no log file can be created.
  if (/^\/(proc|sys)(\/|$)/.test(path)) {
    return `${path} is on a kernel file system; give a path on a regular file system`;
  }
  try {
    const stats = statSync(path, { throwIfNoEntry: false });
    if (stats?.isDirectory()) {
      return `${path} is a directory; give a file path`;
    }
    if (stats) {
      accessSync(path, fsConstants.W_OK);
      return undefined;
    }
    // The file is created at start, with its folder; the nearest existing folder must be writable.
    let folder = dirname(path);
    while (!existsSync(folder)) {
      folder = dirname(folder);
    }
    if (!statSync(folder).isDirectory()) {
      return `${folder} is not a directory, so ${path} cannot be created`;
    }
    accessSync(folder, fsConstants.W_OK);
    return undefined;
  } catch (error) {
    return `cannot write ${path} (${(error as NodeJS.ErrnoException).code ?? String(error)}); check the path and its permissions`;
  }
}

