import { TENANT_CONFIG_KEYS, TOKEN68 } from '../../config/load.js';
import type { ServiceConfig } from '../../config/schema.js';
import { GATEWAY_KEY_DIGEST_FIELD, TENANT_NAME_FIELD } from '../../store/redis-layout.js';
import { tenantKey } from '../../store/store.js';
import { EXIT_ERROR, EXIT_OK, UsageError, type CliIo } from '../io.js';
import { expectNoMore, parseArgs, readSecretFile, readSecretStdin, tenantArgument } from './args.js';
import { AdminError, fail, reportError, runAdminCommand, type AdminSession } from './session.js';

const KNOWN_KEYS: readonly string[] = Object.values(TENANT_CONFIG_KEYS);
const BOOLEAN_KEYS: readonly string[] = [
  TENANT_CONFIG_KEYS.targetTokenEnabled,
  TENANT_CONFIG_KEYS.gatewayTokenEnabled,
  TENANT_CONFIG_KEYS.headerEnabled,
];

export const TENANT_USAGE = `usage: hawkbit-ext-authz tenant set TENANT KEY=VALUE...
       hawkbit-ext-authz tenant show TENANT
       hawkbit-ext-authz tenant list
       hawkbit-ext-authz tenant remove TENANT

KEY is one of hawkBit's tenant configuration keys:
  ${TENANT_CONFIG_KEYS.targetTokenEnabled}=true|false
  ${TENANT_CONFIG_KEYS.gatewayTokenEnabled}=true|false
  ${TENANT_CONFIG_KEYS.gatewayTokenKey}=KEY | @- (read standard input) | @FILE (read FILE)
  ${TENANT_CONFIG_KEYS.headerEnabled}=true|false
  ${TENANT_CONFIG_KEYS.headerAuthority}=VALUE[,VALUE...]
An empty VALUE removes the key. The gateway token key is stored as a digest and never shown.`;

/**
 * `hawkbit-ext-authz tenant set|show|list|remove ...`: manages tenants in the
 * Redis store. Returns the exit code.
 */
export async function tenantCommand(args: string[], config: ServiceConfig, io: CliIo): Promise<number> {
  const [action, ...rest] = args;
  if (action === undefined || action === '--help' || action === '-h' || action === 'help') {
    (action === undefined ? io.err : io.out).write(`${TENANT_USAGE}\n`);
    return action === undefined ? EXIT_ERROR : EXIT_OK;
  }
  switch (action) {
    case 'set':
      return tenantSet(rest, config, io);
    case 'show':
      return tenantShow(rest, config, io);
    case 'list':
      return tenantList(rest, config, io);
    case 'remove':
      return tenantRemove(rest, config, io);
    default:
      return fail(io, 'tenant', EXIT_ERROR, `unknown subcommand "${action}"; expected set, show, list or remove\n${TENANT_USAGE}`);
  }
}

/** The fields one `tenant set` writes and removes, with a description that contains no secret. */
interface TenantChange {
  set: Record<string, string>;
  remove: string[];
  /** `key=value` per given key, with the gateway key shown as `(set)` or `(removed)`. */
  described: string[];
}

async function tenantSet(args: string[], config: ServiceConfig, io: CliIo): Promise<number> {
  const command = 'tenant set';
  let tenant: string;
  let change: TenantChange;
  try {
    const parsed = parseArgs(args, {}, TENANT_USAGE);
    tenant = tenantArgument(parsed.positional[0], TENANT_USAGE);
    change = await parseAssignments(parsed.positional.slice(1), io);
  } catch (error) {
    return reportError(io, command, error);
  }
  return runAdminCommand(command, config, io, async ({ store }: AdminSession) => {
    const key = tenantKey(tenant);
    const existing = await store.tenantHash(key);
    const digester = store.digester;
    const set: Record<string, string> = {};
    for (const [field, value] of Object.entries(change.set)) {
      set[field] = field === GATEWAY_KEY_DIGEST_FIELD ? digester.digest(value).toString('hex') : value;
    }
    await store.writeTenant(key, tenant, set, change.remove);
    await store.publishInvalidation({ scope: 'tenant', tenant: key });
    const created = Object.keys(existing).length === 0;
    const detail = change.described.length > 0 ? change.described.join(', ') : 'no keys given';
    await store.recordAudit({ command, tenant: existing[TENANT_NAME_FIELD] ?? tenant, detail: `${created ? 'created' : 'updated'}: ${detail}` });
    io.out.write(`tenant ${existing[TENANT_NAME_FIELD] ?? tenant} ${created ? 'created' : 'updated'}${change.described.length > 0 ? `: ${detail}` : ''}\n`);
    return EXIT_OK;
  });
}

/** Parses `KEY=VALUE` arguments; reads a gateway key given as `@-` or `@FILE`. Throws UsageError. */
async function parseAssignments(assignments: string[], io: CliIo): Promise<TenantChange> {
  const change: TenantChange = { set: {}, remove: [], described: [] };
  const seen = new Set<string>();
  for (const assignment of assignments) {
    const equals = assignment.indexOf('=');
    if (equals <= 0) {
      throw new UsageError(`expected KEY=VALUE, got "${assignment.slice(0, 80)}"\n${TENANT_USAGE}`);
    }
    const name = assignment.slice(0, equals);
    const value = assignment.slice(equals + 1);
    if (!KNOWN_KEYS.includes(name)) {
      throw new UsageError(`unknown key "${name}"; expected one of: ${KNOWN_KEYS.join(', ')}`);
    }
    if (seen.has(name)) {
      throw new UsageError(`key ${name} is given twice; give it once`);
    }
    seen.add(name);

    if (BOOLEAN_KEYS.includes(name)) {
      if (value === '') {
        change.remove.push(name);
        change.described.push(`${name} (removed)`);
      } else if (/^(true|false)$/i.test(value)) {
        change.set[name] = value.toLowerCase();
        change.described.push(`${name}=${value.toLowerCase()}`);
      } else {
        throw new UsageError(`${name}=${value.slice(0, 40)}: expected true or false`);
      }
    } else if (name === TENANT_CONFIG_KEYS.gatewayTokenKey) {
      const key = await gatewayKeyValue(value, io);
      if (key === '') {
        change.remove.push(GATEWAY_KEY_DIGEST_FIELD);
        change.described.push(`${name} (removed)`);
      } else {
        change.set[GATEWAY_KEY_DIGEST_FIELD] = key;
        change.described.push(`${name}=(set)`);
      }
    } else if (value === '') {
      change.remove.push(name);
      change.described.push(`${name} (removed)`);
    } else {
      change.set[name] = value;
      change.described.push(`${name}=${value}`);
    }
  }
  return change;
}

/**
 * Resolves a gateway key argument: `@-` reads stdin and `@PATH` reads a file.
 * A key itself never starts with `@`, because `@` is not a token68 character.
 */
async function gatewayKeyValue(value: string, io: CliIo): Promise<string> {
  const name = TENANT_CONFIG_KEYS.gatewayTokenKey;
  let key = value;
  let source = 'the command line';
  if (value === '@-') {
    key = await readSecretStdin(io.stdin);
    source = 'standard input';
    if (key === '') {
      throw new UsageError(`${name}=@-: standard input was empty; pipe the key in, or give ${name}= to remove the key`);
    }
  } else if (value.startsWith('@')) {
    key = await readSecretFile(value.slice(1), `${name}`);
    source = value.slice(1);
    if (key === '') {
      throw new UsageError(`${name}=${value}: the file is empty; write the key into it, or give ${name}= to remove the key`);
    }
  }
  if (key !== '' && !TOKEN68.test(key)) {
    throw new UsageError(
      `${name} from ${source} must use only the token68 characters A-Z a-z 0-9 - . _ ~ + / (and trailing =), because devices send it in an Authorization header`,
    );
  }
  return key;
}

async function tenantShow(args: string[], config: ServiceConfig, io: CliIo): Promise<number> {
  const command = 'tenant show';
  let tenant: string;
  try {
    const parsed = parseArgs(args, {}, TENANT_USAGE);
    tenant = tenantArgument(parsed.positional[0], TENANT_USAGE);
    expectNoMore(parsed.positional, 1, TENANT_USAGE);
  } catch (error) {
    return reportError(io, command, error);
  }
  return runAdminCommand(command, config, io, async ({ store }) => {
    const key = tenantKey(tenant);
    const [hash, targets] = await Promise.all([store.tenantHash(key), store.targetCount(key)]);
    if (Object.keys(hash).length === 0) {
      throw new AdminError(`tenant ${tenant} not found; list tenants with "hawkbit-ext-authz tenant list"`);
    }
    const lines = [`tenant: ${hash[TENANT_NAME_FIELD] ?? key}`];
    for (const name of KNOWN_KEYS) {
      if (name === TENANT_CONFIG_KEYS.gatewayTokenKey) {
        lines.push(`${name}: ${hash[GATEWAY_KEY_DIGEST_FIELD] !== undefined ? '(set)' : '(not set)'}`);
      } else if (hash[name] !== undefined) {
        lines.push(`${name}: ${hash[name]}`);
      } else {
        lines.push(`${name}: ${BOOLEAN_KEYS.includes(name) ? 'false (not set)' : '(not set)'}`);
      }
    }
    lines.push(`targets: ${targets}`);
    io.out.write(`${lines.join('\n')}\n`);
    return EXIT_OK;
  });
}

async function tenantList(args: string[], config: ServiceConfig, io: CliIo): Promise<number> {
  const command = 'tenant list';
  try {
    const parsed = parseArgs(args, {}, TENANT_USAGE);
    expectNoMore(parsed.positional, 0, TENANT_USAGE);
  } catch (error) {
    return reportError(io, command, error);
  }
  return runAdminCommand(command, config, io, async ({ store }) => {
    const keys = await store.tenantKeys();
    const rows = await Promise.all(
      keys.map(async (key) => {
        const [hash, targets] = await Promise.all([store.tenantHash(key), store.targetCount(key)]);
        return `${hash[TENANT_NAME_FIELD] ?? key}\t${targets}`;
      }),
    );
    io.out.write(`TENANT\tTARGETS\n${rows.map((row) => `${row}\n`).join('')}`);
    return EXIT_OK;
  });
}

async function tenantRemove(args: string[], config: ServiceConfig, io: CliIo): Promise<number> {
  const command = 'tenant remove';
  let tenant: string;
  try {
    const parsed = parseArgs(args, {}, TENANT_USAGE);
    tenant = tenantArgument(parsed.positional[0], TENANT_USAGE);
    expectNoMore(parsed.positional, 1, TENANT_USAGE);
  } catch (error) {
    return reportError(io, command, error);
  }
  return runAdminCommand(command, config, io, async ({ store }) => {
    const key = tenantKey(tenant);
    const hash = await store.tenantHash(key);
    if (Object.keys(hash).length === 0) {
      throw new AdminError(`tenant ${tenant} not found; list tenants with "hawkbit-ext-authz tenant list"`);
    }
    const targets = await store.removeTenant(key);
    await store.publishInvalidation({ scope: 'tenant', tenant: key });
    const name = hash[TENANT_NAME_FIELD] ?? tenant;
    await store.recordAudit({ command, tenant: name, detail: `removed with ${targets} targets` });
    io.out.write(`tenant ${name} removed with ${targets} targets\n`);
    return EXIT_OK;
  });
}
