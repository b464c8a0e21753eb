import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

/**
 * Reads values out of parsed YAML by key path and collects every problem,
 * so one run of `config validate` lists them all.
 */
export class ConfigReader {
  readonly problems: string[] = [];

  constructor(
    private readonly env: NodeJS.ProcessEnv,
    private readonly baseDir: string,
  ) {}

  fail(key: string, message: string): void {
    this.problems.push(`${key}: ${message}`);
  }

  /** Returns the mapping at `key`, or an empty one (and a problem) when it is another type. */
  section(value: unknown, key: string, allowed: readonly string[] | null): Record<string, unknown> {
    if (value === undefined || value === null) {
      return {};
    }
    if (typeof value !== 'object' || Array.isArray(value)) {
      this.fail(key, `expected a mapping, got ${describe(value)}`);
      return {};
    }
    const record = value as Record<string, unknown>;
    if (allowed) {
      for (const name of Object.keys(record)) {
        if (!allowed.includes(name)) {
          this.fail(`${key ? key + '.' : ''}${name}`, `unknown key; expected one of: ${allowed.join(', ')}`);
        }
      }
    }
    return record;
  }

  boolean(value: unknown, key: string, fallback: boolean): boolean {
    if (value === undefined || value === null) {
      return fallback;
    }
    if (typeof value === 'boolean') {
      return value;
    }
    this.fail(key, `expected true or false, got ${describe(value)}`);
    return fallback;
  }

  string(value: unknown, key: string, fallback: string): string {
    if (value === undefined || value === null) {
      return fallback;
    }
    if (typeof value === 'string') {
      return value;
    }
    this.fail(key, `expected a string, got ${describe(value)}`);
    return fallback;
  }

  /** Reads an integer in `[min, max]`, for counts and durations. */
  integer(value: unknown, key: string, fallback: number, min = 0, max = Number.MAX_SAFE_INTEGER): number {
    if (value === undefined || value === null) {
      return fallback;
    }
    if (typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max) {
      return value;
    }
    this.fail(key, `expected an integer from ${min} to ${max}, got ${describe(value)}`);
    return fallback;
  }

  oneOf<T extends string>(value: unknown, key: string, choices: readonly T[], fallback: T): T {
    if (value === undefined || value === null) {
      return fallback;
    }
    if (typeof value === 'string' && (choices as readonly string[]).includes(value)) {
      return value as T;
    }
    this.fail(key, `expected one of ${choices.join(', ')}, got ${describe(value)}`);
    return fallback;
  }

  stringList(value: unknown, key: string): string[] {
    if (value === undefined || value === null) {
      return [];
    }
    if (!Array.isArray(value)) {
      this.fail(key, `expected a list of strings, got ${describe(value)}`);
      return [];
    }
    const list: string[] = [];
    value.forEach((item, index) => {
      if (typeof item === 'string') {
        list.push(item);
      } else {
        this.fail(`${key}[${index}]`, `expected a string, got ${describe(item)}`);
      }
    });
    return list;
  }

  /** Reads an HTTP header name (RFC 9110 token) and returns it as written. */
  headerName(value: unknown, key: string, fallback: string): string {
    const name = this.string(value, key, fallback);
    if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(name)) {
      this.fail(key, `"${name}" is not a valid HTTP header name; use letters, digits and "-"`);
    }
    return name;
  }

  /**
   * Reads a secret given as a plain string, `{ file: PATH }` (trailing newline
   * dropped) or `{ env: NAME }`. The value itself never appears in a problem.
   */
  secret(value: unknown, key: string): string | undefined {
    if (value === undefined || value === null) {
      return undefined;
    }
    if (typeof value === 'string') {
      return value;
    }
    if (typeof value === 'object' && !Array.isArray(value)) {
      const source = value as Record<string, unknown>;
      const keys = Object.keys(source);
      if (keys.length === 1 && typeof source.file === 'string') {
        const path = resolve(this.baseDir, source.file);
        try {
          return readFileSync(path, 'utf8').replace(/\r?\n$/, '');
        } catch (error) {
          this.fail(key, `cannot read secret file ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}; check the path and its permissions`);
          return undefined;
        }
      }
      if (keys.length === 1 && typeof source.env === 'string') {
        const secret = this.env[source.env];
        if (secret === undefined) {
          this.fail(key, `environment variable ${source.env} is not set; set it or use { file: PATH }`);
        }
        return secret;
      }
    }
    this.fail(key, 'expected a string, { file: PATH } or { env: NAME }');
    return undefined;
  }
}

function describe(value: unknown): string {
  if (Array.isArray(value)) {
    return 'a list';
  }
  if (value === null) {
    return 'null';
  }
  if (typeof value === 'object') {
    return 'a mapping';
  }
  const text = JSON.stringify(value) ?? String(value);
  return `${typeof value} ${text.length > 60 ? text.slice(0, 57) + '...' : text}`;
}
