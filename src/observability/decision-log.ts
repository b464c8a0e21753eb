import pino from 'pino';
import type { Decision } from '../auth/decision.js';
import type { LogLevel } from '../config/schema.js';
import type { Logger } from './logger.js';

/** Fields of one decision line besides the decision itself. */
export interface DecisionLogEntry {
  /** Envoy's `x-request-id`; empty when absent. */
  requestId: string;
  decision: Decision;
  durationSeconds: number;
  audit: boolean;
}

interface LineDestination {
  write(line: string): unknown;
}

/**
 * Writes one JSON line per Check decision to the logger's destination, in the
 * logger's own line format (see createLogger): level label, ISO time, the
 * logger's bindings, the fields, then `msg`.
 *
 * The line is built here rather than by pino because it runs on every Check,
 * and pino's generic serialization cost several µs per line. The line contains
 * no secret, only tenant, controller id, method, reason code and request id,
 * each JSON-escaped because the path and headers that carry them come from clients.
 * Whether a level is enabled is read from the logger on each line, so a
 * reloaded `log.level` applies at once.
 */
export class DecisionLog {
  readonly #logger: Logger;
  readonly #destination: LineDestination;
  /** The logger's bindings as pino serialized them, each after a comma. */
  readonly #bindings: string;
  #timeMs = 0;
  #time = '';

  constructor(logger: Logger) {
    this.#logger = logger;
    const internals = logger as unknown as Record<symbol, unknown>;
    this.#destination = internals[pino.symbols.streamSym] as LineDestination;
    this.#bindings = (internals[pino.symbols.chindingsSym] as string | undefined) ?? '';
  }

  write(level: LogLevel, entry: DecisionLogEntry): void {
    if (level === 'silent' || !this.#logger.isLevelEnabled(level)) {
      return;
    }
    const { decision } = entry;
    let line = `{"level":"${level}","time":"${this.#isoTime()}"${this.#bindings},"requestId":${JSON.stringify(entry.requestId)}`;
    if (decision.tenant !== undefined) {
      line += `,"tenant":${JSON.stringify(decision.tenant)}`;
    }
    if (decision.controllerId !== undefined) {
      line += `,"controllerId":${JSON.stringify(decision.controllerId)}`;
    }
    // Method, result and reason take values from closed sets, so they need no escaping.
    if (decision.method !== undefined) {
      line += `,"method":"${decision.method}"`;
    }
    line += `,"result":"${decision.kind}"`;
    if (decision.kind === 'deny') {
      line += `,"reason":"${decision.reason}","httpStatus":${decision.httpStatus}`;
    } else {
      line += ',"httpStatus":200';
    }
    line += `,"durationMs":${Math.round(entry.durationSeconds * 1e6) / 1000}`;
    if (entry.audit) {
      line += ',"mode":"audit"';
    }
    this.#destination.write(`${line},"msg":"${decision.kind}"}\n`);
  }

  /** Returns the current time as ISO 8601, formatted once per millisecond. */
  #isoTime(): string {
    const now = Date.now();
    if (now !== this.#timeMs) {
      this.#timeMs = now;
      this.#time = new Date(now).toISOString();
    }
    return this.#time;
  }
}
