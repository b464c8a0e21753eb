import { ConfigError } from '../config/errors.js';
import { loadConfigFile } from '../config/load.js';
import { resolveConfigPath } from './config-path.js';
import { EXIT_ERROR, EXIT_FAILURE, EXIT_OK, UsageError, type CliIo } from './io.js';

/** `config validate [FILE]`: loads and validates a configuration without starting anything. */
export async function configValidateCommand(args: string[], configFlag: string | undefined, io: CliIo): Promise<number> {
  const [action, file, ...extra] = args;
  if (action !== 'validate' || extra.length > 0) {
    throw new UsageError('usage: hawkbit-ext-authz config validate [FILE]');
  }
  const { path } = resolveConfigPath(file ?? configFlag, io.env);
  try {
    const config = loadConfigFile(path, { env: io.env });
    const tenants = Object.values(config.tenants);
    const targets = tenants.reduce((sum, tenant) => sum + tenant.targets.size, 0);
    const count = (n: number, noun: string): string => `${n} ${noun}${n === 1 ? '' : 's'}`;
    io.out.write(`${config.source}: valid (${count(tenants.length, 'tenant')}, ${count(targets, 'target')}, store ${config.store.type})\n`);
    return EXIT_OK;
  } catch (error) {
    if (error instanceof ConfigError) {
      io.err.write(`${error.message}\n`);
      return EXIT_FAILURE;
    }
    io.err.write(`error: ${(error as Error).message}\n`);
    return EXIT_ERROR;
  }
}
