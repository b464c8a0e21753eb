import { validateSecurityToken } from '../../config/load.js';
import type { ServiceConfig } from '../../config/schema.js';
import { tenantKey } from '../../store/store.js';
import { EXIT_ERROR, EXIT_OK, UsageError, type CliIo } from '../io.js';
import type { AdminStore } from './admin-store.js';
import {
  controllerIdArgument,
  expectNoMore,
  generateSecurityToken,
  parseArgs,
  readSecretFile,
  readSecretStdin,
  tenantArgument,
} from './args.js';
import { AdminError, fail, reportError, runAdminCommand } from './session.js';

/** `target list` page size when --limit is not given. */
export const DEFAULT_LIST_LIMIT = 1_000;
/** Largest accepted --limit. */
export const MAX_LIST_LIMIT = 100_000;

export const TARGET_USAGE = `usage: hawkbit-ext-authz target add TENANT CONTROLLER_ID [--token TOKEN | --token-file FILE | --token-stdin]
       hawkbit-ext-authz target rotate TENANT CONTROLLER_ID
       hawkbit-ext-authz target remove TENANT CONTROLLER_ID
       hawkbit-ext-authz target list TENANT [--limit N] [--cursor CURSOR]

add without a token generates one (32 hex digits, as hawkBit does) and prints it once;
rotate replaces the token with a new generated one and prints it once.
A given token is 1 to 128 characters of A-Z a-z 0-9 - . _ ~ + / (and trailing =).
list prints one controller id per line, about N per page (default ${DEFAULT_LIST_LIMIT}; Redis may return
a few more, and a small tenant in one page), and the cursor for the next page on stderr.`;

/**
 * `hawkbit-ext-authz target add|rotate|remove|list ...`: manages targets in
 * the Redis store. Returns the exit code.
 */
export async function targetCommand(args: string[], config: ServiceConfig, io: CliIo): Promise<number> {
  const [action, ...rest] = args;
  if (action === undefined || action === '--help' || action === '-h' || action === 'help') {
    (action === undefined ? io.err : io.out).write(`${TARGET_USAGE}\n`);
    return action === undefined ? EXIT_ERROR : EXIT_OK;
  }
  switch (action) {
    case 'add':
      return targetAdd(rest, config, io);
    case 'rotate':
      return targetRotate(rest, config, io);
    case 'remove':
      return targetRemove(rest, config, io);
    case 'list':
      return targetList(rest, config, io);
    default:
      return fail(io, 'target', EXIT_ERROR, `unknown subcommand "${action}"; expected add, rotate, remove or list\n${TARGET_USAGE}`);
  }
}

/** Parses `TENANT CONTROLLER_ID` and nothing more. */
function tenantAndTarget(positional: string[]): { tenant: string; controllerId: string } {
  const tenant = tenantArgument(positional[0], TARGET_USAGE);
  const controllerId = controllerIdArgument(positional[1], TARGET_USAGE);
  expectNoMore(positional, 2, TARGET_USAGE);
  return { tenant, controllerId };
}

/** Throws AdminError unless the tenant exists, because a target of an unknown tenant can never authenticate. */
async function requireTenant(store: AdminStore, tenant: string): Promise<string> {
  const key = tenantKey(tenant);
  const hash = await store.tenantHash(key);
  if (Object.keys(hash).length === 0) {
    throw new AdminError(`tenant ${tenant} not found; create it first with "hawkbit-ext-authz tenant set ${tenant} authentication.targettoken.enabled=true"`);
  }
  return key;
}

async function targetAdd(args: string[], config: ServiceConfig, io: CliIo): Promise<number> {
  const command = 'target add';
  let tenant: string;
  let controllerId: string;
  let token: string | undefined;
  try {
    const parsed = parseArgs(args, { values: ['token', 'token-file'], flags: ['token-stdin'] }, TARGET_USAGE);
    ({ tenant, controllerId } = tenantAndTarget(parsed.positional));
    const sources = ['token', 'token-file', 'token-stdin'].filter((name) => parsed.values.has(name) || parsed.flags.has(name));
    if (sources.length > 1) {
      throw new UsageError(`give one of ${sources.map((name) => `--${name}`).join(', ')}, not several`);
    }
    let source = '--token';
    if (parsed.values.has('token')) {
      token = parsed.values.get('token');
    } else if (parsed.values.has('token-file')) {
      source = `--token-file ${parsed.values.get('token-file')}`;
      token = await readSecretFile(parsed.values.get('token-file')!, 'the security token');
    } else if (parsed.flags.has('token-stdin')) {
      source = '--token-stdin';
      token = await readSecretStdin(io.stdin);
    }
    const problem = token === undefined ? undefined : validateSecurityToken(token);
    if (problem) {
      throw new UsageError(`invalid token from ${source}: ${problem}`);
    }
  } catch (error) {
    return reportError(io, command, error);
  }
  return runAdminCommand(command, config, io, async ({ store }) => {
    const key = await requireTenant(store, tenant);
    const generated = token === undefined;
    const secret = token ?? generateSecurityToken();
    const added = await store.addTarget(key, controllerId, store.digester.digest(secret).toString('hex'));
    if (!added) {
      throw new AdminError(
        `target ${controllerId} already exists in tenant ${tenant}; use "target rotate" for a new token or "target remove" first`,
      );
    }
    // A lookup of the target before it existed may be cached as "not found".
    await store.publishInvalidation({ scope: 'target', tenant: key, controllerId });
    await store.recordAudit({ command, tenant, controllerId, detail: generated ? 'token generated' : 'token given' });
    if (generated) {
      io.err.write(`target ${controllerId} added to tenant ${tenant}; its security token follows and is not shown again\n`);
      io.out.write(`${secret}\n`);
    } else {
      io.out.write(`target ${controllerId} added to tenant ${tenant}\n`);
    }
    return EXIT_OK;
  });
}

async function targetRotate(args: string[], config: ServiceConfig, io: CliIo): Promise<number> {
  const command = 'target rotate';
  let tenant: string;
  let controllerId: string;
  try {
    ({ tenant, controllerId } = tenantAndTarget(parseArgs(args, {}, TARGET_USAGE).positional));
  } catch (error) {
    return reportError(io, command, error);
  }
  return runAdminCommand(command, config, io, async ({ store }) => {
    const key = tenantKey(tenant);
    const secret = generateSecurityToken();
    const replaced = await store.replaceTarget(key, controllerId, store.digester.digest(secret).toString('hex'));
    if (!replaced) {
      throw new AdminError(`target ${controllerId} not found in tenant ${tenant}; add it with "hawkbit-ext-authz target add ${tenant} ${controllerId}"`);
    }
    await store.publishInvalidation({ scope: 'target', tenant: key, controllerId });
    await store.recordAudit({ command, tenant, controllerId, detail: 'token generated' });
    io.err.write(`target ${controllerId} in tenant ${tenant} has a new security token; it follows and is not shown again, and the old one no longer works\n`);
    io.out.write(`${secret}\n`);
    return EXIT_OK;
  });
}

async function targetRemove(args: string[], config: ServiceConfig, io: CliIo): Promise<number> {
  const command = 'target remove';
  let tenant: string;
  let controllerId: string;
  try {
    ({ tenant, controllerId } = tenantAndTarget(parseArgs(args, {}, TARGET_USAGE).positional));
  } catch (error) {
    return reportError(io, command, error);
  }
  return runAdminCommand(command, config, io, async ({ store }) => {
    const key = tenantKey(tenant);
    const removed = await store.removeTarget(key, controllerId);
    if (!removed) {
      throw new AdminError(`target ${controllerId} not found in tenant ${tenant}; list targets with "hawkbit-ext-authz target list ${tenant}"`);
    }
    await store.publishInvalidation({ scope: 'target', tenant: key, controllerId });
    await store.recordAudit({ command, tenant, controllerId, detail: 'removed' });
    io.out.write(`target ${controllerId} removed from tenant ${tenant}\n`);
    return EXIT_OK;
  });
}

async function targetList(args: string[], config: ServiceConfig, io: CliIo): Promise<number> {
  const command = 'target list';
  let tenant: string;
  let limit = DEFAULT_LIST_LIMIT;
  let cursor = '0';
  try {
    const parsed = parseArgs(args, { values: ['limit', 'cursor'] }, TARGET_USAGE);
    tenant = tenantArgument(parsed.positional[0], TARGET_USAGE);
    expectNoMore(parsed.positional, 1, TARGET_USAGE);
    const limitText = parsed.values.get('limit');
    if (limitText !== undefined) {
      if (!/^\d+$/.test(limitText) || Number(limitText) < 1 || Number(limitText) > MAX_LIST_LIMIT) {
        throw new UsageError(`--limit ${limitText.slice(0, 40)}: expected an integer from 1 to ${MAX_LIST_LIMIT}`);
      }
      limit = Number(limitText);
    }
    const cursorText = parsed.values.get('cursor');
    if (cursorText !== undefined) {
      if (!/^\d{1,20}$/.test(cursorText)) {
        throw new UsageError(`--cursor ${cursorText.slice(0, 40)}: expected the number printed as "next cursor" by the previous page`);
      }
      cursor = cursorText;
    }
  } catch (error) {
    return reportError(io, command, error);
  }
  return runAdminCommand(command, config, io, async ({ store }) => {
    const key = await requireTenant(store, tenant);
    const ids: string[] = [];
    // HSCAN may return an empty batch with a non-zero cursor, so scan on until there is something to show or the end.
    do {
      const page = await store.scanTargets(key, cursor, limit - ids.length);
      ids.push(...page.controllerIds);
      cursor = page.cursor;
    } while (cursor !== '0' && ids.length < limit);
    io.out.write(ids.map((id) => `${id}\n`).join(''));
    io.err.write(cursor === '0' ? 'end of list\n' : `next cursor: ${cursor} (continue with --cursor ${cursor})\n`);
    return EXIT_OK;
  });
}
