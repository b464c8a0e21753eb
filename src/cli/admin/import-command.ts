import { readFile, stat } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import { parseYaml, TENANT_CONFIG_KEYS, validateControllerId, validateGatewayKey, validateSecurityToken, validateTenantName } from '../../config/load.js';
import { ConfigReader } from '../../config/reader.js';
import type { ServiceConfig } from '../../config/schema.js';
import { GATEWAY_KEY_DIGEST_FIELD, PLAIN_TENANT_FIELDS, TENANT_NAME_FIELD } from '../../store/redis-layout.js';
import { tenantKey } from '../../store/store.js';
import { TokenDigester } from '../../store/token-digest.js';
import { EXIT_FAILURE, EXIT_OK, UsageError, type CliIo } from '../io.js';
import type { AdminStore } from './admin-store.js';
import { expectNoMore, parseArgs } from './args.js';
import { rejectMemoryStore, reportError, runAdminCommand } from './session.js';

/** Targets read and written per HMGET and HSET. */
const TARGET_BATCH_SIZE = 1_000;
/** Batches sent before waiting for replies; node-redis pipelines commands issued together. */
const BATCHES_IN_FLIGHT = 8;
/** Imports with fewer targets show no progress. */
const PROGRESS_MIN_TARGETS = 10_000;
/** When stderr is not a terminal, one progress line per this many targets. */
const PROGRESS_LINE_EVERY_TARGETS = 100_000;
/** When stderr is a terminal, the progress line is redrawn at most this often, in milliseconds. */
const PROGRESS_REDRAW_MS = 250;

const KNOWN_TENANT_KEYS: readonly string[] = Object.values(TENANT_CONFIG_KEYS);
const BOOLEAN_TENANT_KEYS: readonly string[] = [
  TENANT_CONFIG_KEYS.targetTokenEnabled,
  TENANT_CONFIG_KEYS.gatewayTokenEnabled,
  TENANT_CONFIG_KEYS.headerEnabled,
];
/** Tenant hash fields that an import with a `config:` mapping replaces as a whole. */
const MANAGED_TENANT_FIELDS: readonly string[] = [...PLAIN_TENANT_FIELDS, GATEWAY_KEY_DIGEST_FIELD];

export const IMPORT_USAGE = `usage: hawkbit-ext-authz import FILE

Loads the tenants: section of FILE, written as in the configuration file, into
the Redis store. A tenant's config: mapping replaces its stored keys; a tenant
without one keeps them. Targets are added or updated, never removed. Running
the same file twice changes nothing. Invalid entries are listed and skipped,
and the command then exits 1.`;

/** A target entry that passed validation; the token stays plain until its batch is written. */
interface TargetToImport {
  controllerId: string;
  securityToken?: string;
  securityTokenSha256?: string;
}

interface TenantToImport {
  name: string;
  key: string;
  /** Stored fields from `config:`, gateway key already digested; undefined when the entry has no `config:`. */
  fields: Record<string, string> | undefined;
  targets: TargetToImport[];
}

interface Counts {
  created: number;
  updated: number;
  unchanged: number;
  rejected: number;
}

interface ParsedImport {
  tenants: TenantToImport[];
  /** One line per rejected entry: `KEY: REASON`. */
  rejections: string[];
  rejectedTenants: number;
  rejectedTargets: number;
  ignoredKeys: string[];
}

/** `hawkbit-ext-authz import FILE`: loads tenants and targets into the Redis store. Returns the exit code. */
export async function importCommand(args: string[], config: ServiceConfig, io: CliIo): Promise<number> {
  const command = 'import';
  if (args[0] === '--help' || args[0] === '-h') {
    io.out.write(`${IMPORT_USAGE}\n`);
    return EXIT_OK;
  }
  const rejection = rejectMemoryStore(command, config, io);
  if (rejection !== undefined) {
    return rejection;
  }
  let path: string;
  let parsed: ParsedImport;
  try {
    const positional = parseArgs(args, {}, IMPORT_USAGE).positional;
    if (positional[0] === undefined) {
      throw new UsageError(`missing FILE\n${IMPORT_USAGE}`);
    }
    expectNoMore(positional, 1, IMPORT_USAGE);
    path = resolve(positional[0]);
    parsed = await parseImportFile(path, new TokenDigester(config.tokenDigestKey), io);
  } catch (error) {
    return reportError(io, command, error);
  }
  return runAdminCommand(command, config, io, async ({ store }) => {
    if (parsed.ignoredKeys.length > 0) {
      io.err.write(`note: ${path}: ignoring ${parsed.ignoredKeys.join(', ')}; import reads only tenants:\n`);
    }
    const tenantCounts: Counts = { created: 0, updated: 0, unchanged: 0, rejected: parsed.rejectedTenants };
    const targetCounts: Counts = { created: 0, updated: 0, unchanged: 0, rejected: parsed.rejectedTargets };
    const progress = new Progress(io, parsed.tenants.reduce((sum, tenant) => sum + tenant.targets.length, 0));
    await store.ensureLayout();
    for (const tenant of parsed.tenants) {
      await importTenant(store, tenant, basename(path), tenantCounts, targetCounts, progress);
    }
    progress.finish();

    const lines = [
      `imported ${path}`,
      `tenants: ${describeCounts(tenantCounts)}`,
      `targets: ${describeCounts(targetCounts)}`,
    ];
    if (parsed.rejections.length > 0) {
      lines.push('rejected:', ...parsed.rejections.map((rejection) => `  ${rejection}`));
    }
    io.out.write(`${lines.join('\n')}\n`);
    return parsed.rejections.length > 0 ? EXIT_FAILURE : EXIT_OK;
  });
}

function describeCounts(counts: Counts): string {
  return `${counts.created} created, ${counts.updated} updated, ${counts.unchanged} unchanged, ${counts.rejected} rejected`;
}

/**
 * Reads and validates FILE with the configuration file's rules for tenants and
 * targets. A file that is unreadable or not YAML throws UsageError; invalid
 * entries are collected as rejections.
 */
async function parseImportFile(path: string, digester: TokenDigester, io: CliIo): Promise<ParsedImport> {
  let text: string;
  try {
    const size = (await stat(path)).size;
    if (size > 10_000_000) {
      io.err.write(`reading ${path} (${Math.round(size / 1_000_000)} MB)\n`);
    }
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new UsageError(`cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? String(error)}); check the path`);
  }
  const parsed = parseYaml(text, path);
  if (!parsed.ok) {
    throw new UsageError(`${path} is ${parsed.problem}`);
  }
  const document = parsed.document;
  if (typeof document !== 'object' || document === null || Array.isArray(document)) {
    throw new UsageError(`${path} must be a YAML mapping with a tenants: section, as in the configuration file`);
  }
  const root = document as Record<string, unknown>;
  if (typeof root.tenants !== 'object' || root.tenants === null || Array.isArray(root.tenants)) {
    throw new UsageError(`${path} has no tenants: mapping; write tenants as in the configuration file (tenants: NAME: config: ... targets: ...)`);
  }

  const reader = new ConfigReader(io.env, dirname(path));
  const result: ParsedImport = {
    tenants: [],
    rejections: [],
    rejectedTenants: 0,
    rejectedTargets: 0,
    ignoredKeys: Object.keys(root).filter((key) => key !== 'tenants'),
  };
  const seen = new Map<string, string>();
  for (const [name, raw] of Object.entries(root.tenants as Record<string, unknown>)) {
    const tenant = parseTenant(reader, name, raw, seen, digester, result);
    if (tenant !== undefined) {
      result.tenants.push(tenant);
    }
  }
  return result;
}

/** Validates one tenant entry; returns undefined (and records why) when the tenant itself is rejected. */
function parseTenant(
  reader: ConfigReader,
  name: string,
  raw: unknown,
  seen: Map<string, string>,
  digester: TokenDigester,
  result: ParsedImport,
): TenantToImport | undefined {
  const path = `tenants.${name}`;
  const before = reader.problems.length;
  const nameProblem = validateTenantName(name);
  const other = seen.get(tenantKey(name));
  if (nameProblem) {
    reader.fail(path, nameProblem);
  } else if (other !== undefined) {
    reader.fail(path, `same tenant as "${other}", because tenant names are case-insensitive; merge the two entries`);
  } else {
    seen.set(tenantKey(name), name);
  }
  const entry = reader.section(raw, path, ['config', 'targets']);
  const fields = entry.config === undefined || entry.config === null ? undefined : parseTenantConfig(reader, entry.config, `${path}.config`, digester);
  const rawTargets = reader.section(entry.targets, `${path}.targets`, null);

  if (reader.problems.length > before) {
    const targetCount = Object.keys(rawTargets).length;
    result.rejections.push(...reader.problems.slice(before).map((problem) => `${problem} (tenant and its ${targetCount} target${targetCount === 1 ? '' : 's'} not imported)`));
    result.rejectedTenants += 1;
    result.rejectedTargets += targetCount;
    return undefined;
  }

  const targets: TargetToImport[] = [];
  for (const [controllerId, rawTarget] of Object.entries(rawTargets)) {
    const targetBefore = reader.problems.length;
    const target = parseTarget(reader, controllerId, rawTarget, `${path}.targets.${controllerId}`, digester);
    if (reader.problems.length > targetBefore) {
      result.rejections.push(...reader.problems.slice(targetBefore));
      result.rejectedTargets += 1;
    } else if (target !== undefined) {
      targets.push(target);
    }
  }
  return { name, key: tenantKey(name), fields, targets };
}

/** Reads `config:` as the configuration loader does, and returns the fields to store. */
function parseTenantConfig(reader: ConfigReader, value: unknown, path: string, digester: TokenDigester): Record<string, string> {
  const section = reader.section(value, path, KNOWN_TENANT_KEYS);
  const fields: Record<string, string> = {};
  for (const [name, raw] of Object.entries(section)) {
    if (!KNOWN_TENANT_KEYS.includes(name)) {
      continue;
    }
    const key = `${path}.${name}`;
    if (BOOLEAN_TENANT_KEYS.includes(name)) {
      const flag = typeof raw === 'string' && /^(true|false)$/i.test(raw) ? raw.toLowerCase() === 'true' : raw;
      fields[name] = String(reader.boolean(flag, key, false));
    } else if (name === TENANT_CONFIG_KEYS.gatewayTokenKey) {
      const secret = reader.secret(raw, key);
      const problem = secret === undefined || secret === '' ? undefined : validateGatewayKey(secret);
      if (problem) {
        reader.fail(key, problem);
      } else if (secret !== undefined && secret !== '') {
        fields[GATEWAY_KEY_DIGEST_FIELD] = digester.digest(secret).toString('hex');
      }
    } else {
      const text = reader.string(raw, key, '');
      if (text !== '') {
        fields[name] = text;
      }
    }
  }
  return fields;
}

function parseTarget(reader: ConfigReader, controllerId: string, value: unknown, path: string, digester: TokenDigester): TargetToImport | undefined {
  const idProblem = validateControllerId(controllerId);
  if (idProblem) {
    reader.fail(path, idProblem);
    return undefined;
  }
  const entry = reader.section(value, path, ['securityToken', 'securityTokenSha256']);
  const target: TargetToImport = { controllerId };
  if (entry.securityToken !== undefined && entry.securityToken !== null) {
    const token = reader.secret(entry.securityToken, `${path}.securityToken`);
    const tokenProblem = token === undefined ? undefined : validateSecurityToken(token);
    if (tokenProblem) {
      reader.fail(`${path}.securityToken`, tokenProblem);
    } else {
      target.securityToken = token;
    }
  }
  if (entry.securityTokenSha256 !== undefined && entry.securityTokenSha256 !== null) {
    const digest = reader.string(entry.securityTokenSha256, `${path}.securityTokenSha256`, '');
    if (!/^[0-9a-fA-F]{64}$/.test(digest)) {
      reader.fail(`${path}.securityTokenSha256`, 'expected 64 hex digits, the SHA-256 of the token (for example from `printf %s TOKEN | sha256sum`)');
    } else if (digester.algorithm !== 'sha256') {
      reader.fail(`${path}.securityTokenSha256`, 'cannot be used with tokenDigestKey, because stored digests are then HMAC-SHA-256; give securityToken instead');
    } else {
      target.securityTokenSha256 = digest.toLowerCase();
    }
  }
  if (target.securityToken !== undefined && target.securityTokenSha256 !== undefined) {
    reader.fail(path, 'set securityToken or securityTokenSha256, not both');
  }
  return target;
}

/** Returns the value to store for a target: the hex digest, or "" for a target without a token. */
function storedDigest(target: TargetToImport, digester: TokenDigester): string {
  if (target.securityToken !== undefined) {
    return digester.digest(target.securityToken).toString('hex');
  }
  return target.securityTokenSha256 ?? '';
}

/** Writes one tenant and its targets, counting what changed; publishes one invalidation and one audit entry per changed tenant. */
async function importTenant(
  store: AdminStore,
  tenant: TenantToImport,
  file: string,
  tenantCounts: Counts,
  targetCounts: Counts,
  progress: Progress,
): Promise<void> {
  const existing = await store.tenantHash(tenant.key);
  const isNew = Object.keys(existing).length === 0;
  const set: Record<string, string> = {};
  const remove: string[] = [];
  if (tenant.fields !== undefined) {
    for (const field of MANAGED_TENANT_FIELDS) {
      const expected = tenant.fields[field];
      if (expected !== undefined && existing[field] !== expected) {
        set[field] = expected;
      } else if (expected === undefined && existing[field] !== undefined) {
        remove.push(field);
      }
    }
  }
  const tenantChanged = isNew || Object.keys(set).length > 0 || remove.length > 0;
  // Also repairs a tenant hash that is missing from the tenant set.
  await store.writeTenant(tenant.key, tenant.name, set, remove);
  let tenantOutcome: 'created' | 'updated' | 'unchanged' = 'unchanged';
  if (isNew) {
    tenantOutcome = 'created';
  } else if (tenantChanged) {
    tenantOutcome = 'updated';
  }
  tenantCounts[tenantOutcome] += 1;

  const counts = { created: 0, updated: 0, unchanged: 0 };
  const batches: TargetToImport[][] = [];
  for (let start = 0; start < tenant.targets.length; start += TARGET_BATCH_SIZE) {
    batches.push(tenant.targets.slice(start, start + TARGET_BATCH_SIZE));
  }
  for (let start = 0; start < batches.length; start += BATCHES_IN_FLIGHT) {
    await Promise.all(batches.slice(start, start + BATCHES_IN_FLIGHT).map((batch) => importTargetBatch(store, tenant.key, batch, counts)));
    progress.advance(batches.slice(start, start + BATCHES_IN_FLIGHT).reduce((sum, batch) => sum + batch.length, 0));
  }
  targetCounts.created += counts.created;
  targetCounts.updated += counts.updated;
  targetCounts.unchanged += counts.unchanged;

  if (tenantChanged || counts.created > 0 || counts.updated > 0) {
    await store.publishInvalidation({ scope: 'tenant', tenant: tenant.key });
    await store.recordAudit({
      command: 'import',
      tenant: existing[TENANT_NAME_FIELD] ?? tenant.name,
      detail: `from ${file}: tenant ${tenantOutcome}; targets ${counts.created} created, ${counts.updated} updated, ${counts.unchanged} unchanged`,
    });
  }
}

async function importTargetBatch(
  store: AdminStore,
  key: string,
  batch: TargetToImport[],
  counts: { created: number; updated: number; unchanged: number },
): Promise<void> {
  const stored = await store.targetDigests(key, batch.map((target) => target.controllerId));
  const changes: Record<string, string> = {};
  batch.forEach((target, index) => {
    const digest = storedDigest(target, store.digester);
    if (stored[index] === null) {
      counts.created += 1;
      changes[target.controllerId] = digest;
    } else if (stored[index] !== digest) {
      counts.updated += 1;
      changes[target.controllerId] = digest;
    } else {
      counts.unchanged += 1;
    }
  });
  if (Object.keys(changes).length > 0) {
    await store.writeTargets(key, changes);
  }
}

/**
 * Import progress on stderr for large imports: a line redrawn in place on a
 * terminal, otherwise one line per PROGRESS_LINE_EVERY_TARGETS targets.
 */
class Progress {
  readonly #io: CliIo;
  readonly #total: number;
  readonly #enabled: boolean;
  readonly #terminal: boolean;
  #done = 0;
  #lastLine = 0;
  #printedDone = 0;
  #lastDrawAt = 0;

  constructor(io: CliIo, total: number) {
    this.#io = io;
    this.#total = total;
    this.#enabled = total >= PROGRESS_MIN_TARGETS;
    this.#terminal = (io.err as NodeJS.WriteStream).isTTY === true;
  }

  advance(count: number): void {
    this.#done += count;
    if (!this.#enabled) {
      return;
    }
    if (this.#terminal) {
      const now = performance.now();
      if (now - this.#lastDrawAt >= PROGRESS_REDRAW_MS) {
        this.#lastDrawAt = now;
        this.#io.err.write(`\rimporting targets: ${this.#done} of ${this.#total} (${Math.floor((100 * this.#done) / this.#total)}%)`);
      }
      return;
    }
    const line = Math.floor(this.#done / PROGRESS_LINE_EVERY_TARGETS);
    if (line > this.#lastLine) {
      this.#lastLine = line;
      this.#printedDone = this.#done;
      this.#io.err.write(`imported ${this.#done} of ${this.#total} targets\n`);
    }
  }

  finish(): void {
    if (!this.#enabled) {
      return;
    }
    if (this.#terminal) {
      this.#io.err.write(`\rimporting targets: ${this.#done} of ${this.#total} (100%)\n`);
    } else if (this.#printedDone !== this.#done) {
      this.#io.err.write(`imported ${this.#done} of ${this.#total} targets\n`);
    }
  }
}
