import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

let version: string | undefined;

/** The package version from package.json, read once. */
export function packageVersion(): string {
  if (version === undefined) {
    const path = fileURLToPath(new URL(import.meta.url.includes('/dist/') ? '../../package.json' : '../package.json', import.meta.url));
    version = (JSON.parse(readFileSync(path, 'utf8')) as { version: string }).version;
  }
  return version;
}
