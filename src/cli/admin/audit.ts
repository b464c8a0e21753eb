import { userInfo } from 'node:os';
import type { Logger } from '../../observability/logger.js';
import type { RedisCommands } from '../../store/redis-client.js';
import type { RedisKeys } from '../../store/redis-layout.js';

/** Approximate maximum length of the audit stream; Redis trims older entries (`XADD ... MAXLEN ~`). */
export const AUDIT_STREAM_MAX_ENTRIES = 100_000;

/** One admin write. No field may hold a token or key. */
export interface AuditEntry {
  /** The command as typed after the program name, for example `target rotate`. */
  command: string;
  tenant?: string;
  controllerId?: string;
  /** Summary of the change, in words or counts; never a secret. */
  detail?: string;
}

/** Returns the operating-system user running the command, or `uid N` when the user database has no entry for it. */
export function operatingSystemUser(): string {
  try {
    return userInfo().username;
  } catch {
    return typeof process.getuid === 'function' ? `uid ${process.getuid()}` : 'unknown';
  }
}

/** Records admin writes in the Redis stream `<prefix>audit` and as JSON log lines. */
export class AuditLog {
  readonly #commands: RedisCommands;
  readonly #keys: RedisKeys;
  readonly #logger: Logger;
  readonly #user = operatingSystemUser();

  constructor(commands: RedisCommands, keys: RedisKeys, logger: Logger) {
    this.#commands = commands;
    this.#keys = keys;
    this.#logger = logger;
  }

  async record(entry: AuditEntry): Promise<void> {
    const fields: Record<string, string> = {
      time: new Date().toISOString(),
      user: this.#user,
      command: entry.command,
      tenant: entry.tenant ?? '',
      target: entry.controllerId ?? '',
      detail: entry.detail ?? '',
    };
    this.#logger.info({ audit: fields }, 'admin write');
    await this.#commands.xAdd(this.#keys.audit, '*', fields, {
      TRIM: { strategy: 'MAXLEN', strategyModifier: '~', threshold: AUDIT_STREAM_MAX_ENTRIES },
    });
  }
}
