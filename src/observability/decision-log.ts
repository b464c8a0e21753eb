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
  /**
   * Time of the line in whole epoch milliseconds, as Date.now() returns it,
   * which is the default. The Check handler reads the clock once for a batch
   * of decisions, because a reading cost about 45 ns (Node.js 20, 2-core VM).
   */
  timeMs?: number;
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
  /** Millisecond that `#time` names, or -1 before the first line. */
  #timeMs = -1;
  #time = '';
  /** Start of the second that `#secondPrefix` names, in milliseconds since the epoch. */
  #secondMs = -1;
  /** ISO 8601 time of that second up to its `.`: `2026-12-05T01:02:03.`. */
  #secondPrefix = '';
  /** Time and level that `#startText` was built for. */
  #startTime = '';
  #startLevel: LogLevel | '' = '';
  #startText = '';
  /** Outcome fields that `#outcome` returns, with the HTTP status they name, by method and deny reason (each empty when absent). */
  readonly #outcomes = new Map<string, Map<string, { httpStatus: number; text: string }>>();

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
    // Every string field but requestId is optional, so each piece closes the string value before it.
    let line = this.#start(level, entry.timeMs ?? Date.now()) + escapeJsonText(entry.requestId);
    if (decision.tenant !== undefined) {
      line += `","tenant":"${escapeJsonText(decision.tenant)}`;
    }
    if (decision.controllerId !== undefined) {
      line += `","controllerId":"${escapeJsonText(decision.controllerId)}`;
    }
    const end = entry.audit ? AUDIT_LINE_ENDS[decision.kind] : LINE_ENDS[decision.kind];
    this.#destination.write(`${line}${this.#outcome(decision)}${millisecondsText(entry.durationSeconds)}${end}`);
  }

  /**
   * Returns the line up to the opening quote of the requestId value, for the
   * current millisecond. It is built once per millisecond and level as a flat
   * string, because each piece of a line costs a concatenation and a step in
   * the copy that encodes it.
   */
  #start(level: LogLevel, nowMs: number): string {
    const time = this.#isoTime(nowMs);
    if (time !== this.#startTime || level !== this.#startLevel) {
      this.#startTime = time;
      this.#startLevel = level;
      this.#startText = ['{"level":"', level, '","time":"', time, '"', this.#bindings, ',"requestId":"'].join('');
    }
    return this.#startText;
  }

  /**
   * Returns the fields from the quote that closes the last string value up to
   * `"durationMs":`: method, result, and reason and HTTP status. They take
   * values from closed sets, so each combination is built once, flat and unescaped.
   */
  #outcome(decision: Decision): string {
    const method = decision.method ?? '';
    const reason = decision.kind === 'deny' ? decision.reason : '';
    const httpStatus = decision.kind === 'deny' ? decision.httpStatus : 200;
    let byReason = this.#outcomes.get(method);
    if (byReason === undefined) {
      byReason = new Map();
      this.#outcomes.set(method, byReason);
    }
    let cached = byReason.get(reason);
    // deny() gives each reason one status, but the type allows any, so cached text is reused only for the same status.
    if (cached === undefined || cached.httpStatus !== httpStatus) {
      const methodField = method === '' ? '' : `,"method":"${method}"`;
      const reasonField = reason === '' ? '' : `,"reason":"${reason}"`;
      const text = ['"', methodField, ',"result":"', decision.kind, '"', reasonField, ',"httpStatus":', String(httpStatus), ',"durationMs":'].join('');
      cached = { httpStatus, text };
      byReason.set(reason, cached);
    }
    return cached.text;
  }

  /** Returns an epoch time in milliseconds as ISO 8601. `Date.toISOString` runs once per second and the milliseconds are appended. */
  #isoTime(now: number): string {
    if (now !== this.#timeMs) {
      this.#timeMs = now;
      const milliseconds = now % 1000;
      const second = now - milliseconds;
      if (second !== this.#secondMs) {
        this.#secondMs = second;
        this.#secondPrefix = new Date(second).toISOString().slice(0, 20);
      }
      this.#time = `${this.#secondPrefix}${threeDigits(milliseconds)}Z`;
    }
    return this.#time;
  }
}

/** The end of a line after the durationMs value, by result. */
const LINE_ENDS = { allow: ',"msg":"allow"}\n', deny: ',"msg":"deny"}\n' } as const;
const AUDIT_LINE_ENDS = { allow: ',"mode":"audit","msg":"allow"}\n', deny: ',"mode":"audit","msg":"deny"}\n' } as const;

/** Characters that JSON.stringify may escape: `"`, `\`, control characters, and surrogates when they are lone. */
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

/**
 * Returns a string as JSON.stringify writes it between the quotes, without
 * calling it for strings that need no escaping.
 */
export function escapeJsonText(value: string): string {
  return NEEDS_ESCAPE.test(value) ? JSON.stringify(value).slice(1, -1) : value;
}

/**
 * Returns a finite duration of zero or more seconds as milliseconds rounded to whole microseconds, the text that
 * `String(Math.round(seconds * 1e6) / 1000)` gives, with integer arithmetic only, because
 * formatting a fraction took about 0.3 µs per line in a micro-benchmark on Node.js 20.
 */
export function millisecondsText(seconds: number): string {
  const micros = Math.round(seconds * 1e6);
  const whole = Math.floor(micros / 1000);
  const fraction = micros - whole * 1000;
  if (fraction === 0) {
    return `${whole}`;
  }
  if (fraction % 100 === 0) {
    return `${whole}.${fraction / 100}`;
  }
  if (fraction % 10 === 0) {
    return `${whole}.${fraction < 100 ? '0' : ''}${fraction / 10}`;
  }
  return `${whole}.${threeDigits(fraction)}`;
}

function threeDigits(value: number): string {
  if (value < 10) {
    return `00${value}`;
  }
  return value < 100 ? `0${value}` : `${value}`;
}
