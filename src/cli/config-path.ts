import { fileURLToPath } from 'node:url';
import { CONFIG_ENV_VAR } from '../config/load.js';

/** The example configuration shipped with the package, used when no other is given. */
export const BUNDLED_CONFIG = fileURLToPath(
  new URL(import.meta.url.includes('/dist/') ? '../../../examples/config.yaml' : '../../examples/config.yaml', import.meta.url),
);

/** `--config` wins, then the environment variable, then the bundled example. */
export function resolveConfigPath(flag: string | undefined, env: NodeJS.ProcessEnv): { path: string; origin: string } {
  if (flag) {
    return { path: flag, origin: '--config' };
  }
  const fromEnv = env[CONFIG_ENV_VAR];
  if (fromEnv) {
    return { path: fromEnv, origin: CONFIG_ENV_VAR };
  }
  return { path: BUNDLED_CONFIG, origin: 'bundled example' };
}
