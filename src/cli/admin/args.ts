import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { validateControllerId, validateTenantName } from '../../config/load.js';
import { UsageError } from '../io.js';

/** Command-line options of one subcommand: `--name VALUE`, `--name=VALUE` or a bare `--flag`. */
export interface OptionSpec {
  /** Options that take a value. */
  values?: readonly string[];
  /** Options without a value. */
  flags?: readonly string[];
}

export interface ParsedArgs {
  positional: string[];
  values: Map<string, string>;
  flags: Set<string>;
}

/** Splits arguments into positionals and options; throws UsageError for an unknown or repeated option. */
export function parseArgs(args: readonly string[], spec: OptionSpec, usage: string): ParsedArgs {
  const values = new Map<string, string>();
  const flags = new Set<string>();
  const positional: string[] = [];
  const valueNames = spec.values ?? [];
  const flagNames = spec.flags ?? [];
  for (let index = 0; index < args.length; index += 1) {
    const arg = args[index];
    if (arg === '--') {
      positional.push(...args.slice(index + 1));
      break;
    }
    if (!arg.startsWith('--')) {
      positional.push(arg);
      continue;
    }
    const equals = arg.indexOf('=');
    const name = equals === -1 ? arg.slice(2) : arg.slice(2, equals);
    if (values.has(name) || flags.has(name)) {
      throw new UsageError(`option --${name} is given twice; give it once\n${usage}`);
    }
    if (valueNames.includes(name)) {
      let value: string | undefined;
      if (equals !== -1) {
        value = arg.slice(equals + 1);
      } else {
        value = args[index + 1];
        index += 1;
      }
      if (value === undefined) {
        throw new UsageError(`option --${name} needs a value\n${usage}`);
      }
      values.set(name, value);
    } else if (flagNames.includes(name) && equals === -1) {
      flags.add(name);
    } else {
      const known = [...valueNames, ...flagNames].map((option) => `--${option}`);
      throw new UsageError(`unknown option --${name}; ${known.length > 0 ? `expected ${known.join(', ')}` : 'this command takes no options'}\n${usage}`);
    }
  }
  return { positional, values, flags };
}

/** Reads a whole stream as UTF-8 text. */
export async function readStream(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) {
    chunks.push(typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : (chunk as Buffer));
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Drops one trailing line break, as `echo` and most editors add one. */
export function dropTrailingNewline(text: string): string {
  return text.replace(/\r?\n$/, '');
}

/** Reads a secret from a file, dropping one trailing line break; throws UsageError naming the path when it cannot. */
export async function readSecretFile(path: string, description: string): Promise<string> {
  const absolute = resolve(path);
  try {
    return dropTrailingNewline(await readFile(absolute, 'utf8'));
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? String(error);
    throw new UsageError(`cannot read ${description} from ${absolute} (${code}); check the path and its permissions`);
  }
}

/** Reads a secret from standard input, dropping one trailing line break. */
export async function readSecretStdin(stdin: NodeJS.ReadableStream): Promise<string> {
  return dropTrailingNewline(await readStream(stdin));
}

/**
 * Generates a target security token as hawkBit does: 16 random bytes as 32
 * lower-case hex digits.
 */
export function generateSecurityToken(): string {
  return randomBytes(16).toString('hex');
}

/** Throws UsageError when more than `count` positional arguments were given. */
export function expectNoMore(positional: readonly string[], count: number, usage: string): void {
  if (positional.length > count) {
    throw new UsageError(`unexpected argument "${positional[count].slice(0, 80)}"\n${usage}`);
  }
}

/** Validates a TENANT argument with the configuration file's rules; throws UsageError naming it. */
export function tenantArgument(value: string | undefined, usage: string): string {
  if (value === undefined) {
    throw new UsageError(`missing TENANT\n${usage}`);
  }
  const problem = validateTenantName(value);
  if (problem) {
    throw new UsageError(`invalid tenant ${JSON.stringify(value.slice(0, 80))}: ${problem}`);
  }
  return value;
}

/** Validates a CONTROLLER_ID argument with the configuration file's rules; throws UsageError naming it. */
export function controllerIdArgument(value: string | undefined, usage: string): string {
  if (value === undefined) {
    throw new UsageError(`missing CONTROLLER_ID\n${usage}`);
  }
  const problem = validateControllerId(value);
  if (problem) {
    throw new UsageError(`invalid controller id ${JSON.stringify(value.slice(0, 80))}: ${problem}`);
  }
  return value;
}
