import { createHash, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { caCertificateProblem, TENANT_CONFIG_KEYS } from '../../config/load.js';
import { findIssuerHashConflicts } from '../../auth/issuer-conflicts.js';
import { parseCertificate } from '../../x509/index.js';
import type { ServiceConfig } from '../../config/schema.js';
import { PINNED_CA_FIELD_PREFIX, REVOKED_FIELD_PREFIX, TENANT_NAME_FIELD } from '../../store/redis-layout.js';
import { tenantKey } from '../../store/store.js';
import { normalizeFingerprint, parseAuthorityList } from '../../store/tenant-settings.js';
import { EXIT_ERROR, EXIT_OK, UsageError, type CliIo } from '../io.js';
import { expectNoMore, parseArgs, tenantArgument } from './args.js';
import { AdminError, fail, reportError, runAdminCommand, type AdminSession } from './session.js';

export const CERT_USAGE = `usage: hawkbit-ext-authz cert pin TENANT CA_FILE
       hawkbit-ext-authz cert unpin TENANT SHA256
       hawkbit-ext-authz cert revoke TENANT CERT_FILE|SHA256
       hawkbit-ext-authz cert unrevoke TENANT SHA256
       hawkbit-ext-authz cert list TENANT

pin      pins every CA certificate in CA_FILE (PEM) for the tenant: device
         certificates must then verify up to a pinned CA by signature
unpin    removes the pinned CA with that SHA-256 fingerprint
revoke   denies a device certificate on every replica within a second. Give
         the certificate file: its signed-part digest is stored, which also
         matches a copy whose signature was re-encoded. A SHA-256 fingerprint
         (openssl x509 -fingerprint -sha256 -noout) works too, but an ECDSA
         certificate's holder can evade it by re-encoding the signature
unrevoke lifts a revocation
list     prints the pinned CAs and the revoked fingerprints`;

/** `hawkbit-ext-authz cert pin|unpin|revoke|unrevoke|list ...`: device certificate trust in the Redis store. */
export async function certCommand(args: string[], config: ServiceConfig, io: CliIo): Promise<number> {
  const [action, ...rest] = args;
  if (action === undefined || action === '--help' || action === '-h' || action === 'help') {
    (action === undefined ? io.err : io.out).write(`${CERT_USAGE}\n`);
    return action === undefined ? EXIT_ERROR : EXIT_OK;
  }
  const command = `cert ${action}`;
  let tenant: string;
  let argument: string | undefined;
  try {
    if (!['pin', 'unpin', 'revoke', 'unrevoke', 'list'].includes(action)) {
      throw new UsageError(`unknown subcommand "${action}"; expected pin, unpin, revoke, unrevoke or list\n${CERT_USAGE}`);
    }
    const parsed = parseArgs(rest, {}, CERT_USAGE);
    tenant = tenantArgument(parsed.positional[0], CERT_USAGE);
    const needsArgument = action !== 'list';
    expectNoMore(parsed.positional, needsArgument ? 2 : 1, CERT_USAGE);
    argument = parsed.positional[1];
    if (needsArgument && argument === undefined) {
      throw new UsageError(`missing ${action === 'pin' ? 'CA_FILE' : 'SHA256'}\n${CERT_USAGE}`);
    }
    const revokeByFile = action === 'revoke' && argument !== undefined && !/^[0-9a-fA-F:]{64,95}$/.test(argument);
    if (action !== 'pin' && !revokeByFile && argument !== undefined && !/^[0-9a-f]{64}$/.test(normalizeFingerprint(argument))) {
      throw new UsageError(`"${argument.slice(0, 100)}" is not a SHA-256 fingerprint: give 64 hex digits, colons allowed, as openssl x509 -fingerprint -sha256 -noout prints`);
    }
  } catch (error) {
    return reportError(io, command, error);
  }

  const pems = action === 'pin' ? await readCaFile(argument as string, io, command) : [];
  if (typeof pems === 'number') {
    return pems;
  }
  let revocationKey = action === 'revoke' || action === 'unrevoke' ? normalizeFingerprint(argument as string) : '';
  if (action === 'revoke' && !/^[0-9a-f]{64}$/.test(revocationKey)) {
    const digest = await readSignedPartDigest(argument as string, io, command);
    if (typeof digest === 'number') {
      return digest;
    }
    revocationKey = digest;
  } else if (action === 'revoke') {
    io.err.write('warning: revoking by fingerprint; the holder of an ECDSA certificate can evade it by re-encoding the signature. Revoke with the certificate file to store its signed-part digest.\n');
  }

  return runAdminCommand(command, config, io, async (session: AdminSession) => {
    const key = tenantKey(tenant);
    const hash = await session.store.tenantHash(key);
    if (Object.keys(hash).length === 0) {
      throw new AdminError(`tenant ${tenant} does not exist; create it with hawkbit-ext-authz tenant set ${tenant} KEY=VALUE`);
    }
    const name = hash[TENANT_NAME_FIELD] ?? tenant;
    switch (action) {
      case 'list':
        return listCertificates(hash, session.io);
      case 'pin': {
        const set = Object.fromEntries(pems.map((pem) => [`${PINNED_CA_FIELD_PREFIX}${fingerprintOf(pem)}`, pem]));
        const code = await changeFields(session, command, key, name, set, [], `pinned ${pems.map(fingerprintOf).join(', ')}`);
        await warnAboutConflicts(session);
        return code;
      }
      case 'unpin':
        return removeField(session, command, key, name, hash, `${PINNED_CA_FIELD_PREFIX}${normalizeFingerprint(argument as string)}`, 'pinned CA');
      case 'revoke':
        return changeFields(session, command, key, name, { [`${REVOKED_FIELD_PREFIX}${revocationKey}`]: new Date().toISOString() }, [], `revoked ${revocationKey}`);
      default:
        return removeField(session, command, key, name, hash, `${REVOKED_FIELD_PREFIX}${revocationKey}`, 'revocation');
    }
  });
}

async function readCaFile(path: string, io: CliIo, command: string): Promise<string[] | number> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    return fail(io, command, EXIT_ERROR, `cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}; check the path`);
  }
  const blocks = (text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? []).map((block) => `${block}\n`);
  if (blocks.length === 0) {
    return fail(io, command, EXIT_ERROR, `${path} holds no PEM certificate ("-----BEGIN CERTIFICATE-----")`);
  }
  for (const [index, block] of blocks.entries()) {
    const problem = caCertificateProblem(block);
    if (problem) {
      return fail(io, command, EXIT_ERROR, `${path}, certificate ${index + 1}: ${problem}; pin only CA certificates`);
    }
  }
  return blocks;
}

/** Reads a device certificate file and returns the SHA-256 of its signed part (TBSCertificate). */
async function readSignedPartDigest(path: string, io: CliIo, command: string): Promise<string | number> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    return fail(io, command, EXIT_ERROR, `"${path}" is neither a SHA-256 fingerprint nor a readable certificate file (${(error as NodeJS.ErrnoException).code ?? String(error)})`);
  }
  const block = text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/)?.[0];
  if (block === undefined) {
    return fail(io, command, EXIT_ERROR, `${path} holds no PEM certificate ("-----BEGIN CERTIFICATE-----")`);
  }
  try {
    return parseCertificate(block).tbsSha256;
  } catch (error) {
    return fail(io, command, EXIT_ERROR, `${path}: ${(error as Error).message}`);
  }
}

function fingerprintOf(pem: string): string {
  return createHash('sha256').update(new X509Certificate(pem).raw).digest('hex');
}

async function changeFields(session: AdminSession, command: string, key: string, name: string, set: Record<string, string>, remove: string[], detail: string): Promise<number> {
  await session.store.writeTenant(key, name, set, remove);
  await session.store.publishInvalidation({ scope: 'tenant', tenant: key });
  await session.store.recordAudit({ command, tenant: name, detail });
  session.io.out.write(`tenant ${name}: ${detail}\n`);
  return EXIT_OK;
}

async function removeField(session: AdminSession, command: string, key: string, name: string, hash: Record<string, string>, field: string, what: string): Promise<number> {
  if (hash[field] === undefined) {
    throw new AdminError(`tenant ${name} has no ${what} ${field.slice(field.indexOf(':') + 1)}; see hawkbit-ext-authz cert list ${name}`);
  }
  return changeFields(session, command, key, name, {}, [field], `removed ${what} ${field.slice(field.indexOf(':') + 1)}`);
}

/** Prints a warning for each pair of tenants that trust one issuer hash from different CA keys. */
async function warnAboutConflicts(session: AdminSession): Promise<void> {
  const tenants = [];
  for (const key of await session.store.tenantKeys()) {
    const hash = await session.store.tenantHash(key);
    tenants.push({
      name: hash[TENANT_NAME_FIELD] ?? key,
      headerAuthority: parseAuthorityList(hash[TENANT_CONFIG_KEYS.headerAuthority] ?? ''),
      pinnedCaPems: Object.entries(hash).filter(([field]) => field.startsWith(PINNED_CA_FIELD_PREFIX)).map(([, pem]) => pem),
    });
  }
  for (const conflict of findIssuerHashConflicts(tenants)) {
    session.io.err.write(
      conflict.pinned
        ? `warning: tenants ${conflict.tenants[0]} and ${conflict.tenants[1]} both trust issuer hash ${conflict.issuerHash} from different CA keys; give their CAs distinct names\n`
        : `warning: tenants ${conflict.tenants[0]} and ${conflict.tenants[1]} both trust issuer hash ${conflict.issuerHash} without pinning the same CA; pin each tenant's CA\n`,
    );
  }
}

function listCertificates(hash: Record<string, string>, io: CliIo): number {
  const lines: string[] = [];
  for (const [field, value] of Object.entries(hash).sort(([a], [b]) => a.localeCompare(b))) {
    if (field.startsWith(PINNED_CA_FIELD_PREFIX)) {
      const subject = new X509Certificate(value).subject.replace(/\n/g, ', ');
      lines.push(`pinned ${field.slice(PINNED_CA_FIELD_PREFIX.length)} ${subject}`);
    } else if (field.startsWith(REVOKED_FIELD_PREFIX)) {
      lines.push(`revoked ${field.slice(REVOKED_FIELD_PREFIX.length)} since ${value}`);
    }
  }
  io.out.write(lines.length > 0 ? `${lines.join('\n')}\n` : 'no pinned CAs and no revoked certificates\n');
  return EXIT_OK;
}
