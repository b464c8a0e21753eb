import pino from 'pino';
import type { Decision } from '../auth/decision.js';
import type { LogLevel } from '../config/schema.js';
import { LogStream } from './log-stream.js';
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
 * and pino's generic serialization cost several µs per line. Its bytes go
 * straight into a LogStream's buffer, piece by piece, so a line whose fields
 * need no escaping builds no string. Another destination gets the same bytes
 * as a string. The line contains no secret, only tenant, controller id,
 * method, reason code and request id, each JSON-escaped because the path and
 * headers that carry them come from clients. Whether a level is enabled is read from the logger on
 * each line, so a reloaded `log.level` applies at once.
 */
export class DecisionLog {
  readonly #logger: Logger;
  readonly #destination: LineDestination;
  /** The destination when it takes a line's bytes in place. */
  readonly #stream: LogStream | undefined;
  /** Buffer that a line for another destination is built in, grown when a line may not fit. */
  #scratch = Buffer.allocUnsafe(1024);
  /** The logger's bindings as pino serialized them, each after a comma. */
  readonly #bindings: string;
  /** Millisecond that `#time` names, or -1 before the first line. */
  #timeMs = -1;
  #time = '';
  /** Start of the second that `#secondPrefix` names, in milliseconds since the epoch. */
  #secondMs = -1;
  /** ISO 8601 time of that second up to its `.`: `2026-12-05T01:02:03.`. */
  #secondPrefix = '';
  /**
   * The start of a line by level, with the time it was built for. Allows and denies log at
   * different levels by default, so one entry per level keeps mixed traffic from rebuilding it.
   */
  readonly #starts = new Map<LogLevel, { time: string; bytes: Buffer }>();
  /** Outcome fields that `#outcome` returns, with the HTTP status they name, by method and deny reason (each empty when absent). */
  readonly #outcomes = new Map<string, Map<string, { httpStatus: number; bytes: Buffer }>>();

  constructor(logger: Logger) {
    this.#logger = logger;
    const internals = logger as unknown as Record<symbol, unknown>;
    this.#destination = internals[pino.symbols.streamSym] as LineDestination;
    this.#stream = this.#destination instanceof LogStream ? this.#destination : undefined;
    this.#bindings = (internals[pino.symbols.chindingsSym] as string | undefined) ?? '';
  }

  write(level: LogLevel, entry: DecisionLogEntry): void {
    if (level === 'silent' || !this.#logger.isLevelEnabled(level)) {
      return;
    }
    const { decision } = entry;
    const requestId = escapeJsonText(entry.requestId);
    const tenant = decision.tenant === undefined ? undefined : escapeJsonText(decision.tenant);
    const controllerId = decision.controllerId === undefined ? undefined : escapeJsonText(decision.controllerId);
    const start = this.#start(level, entry.timeMs ?? Date.now());
    const outcome = this.#outcome(decision);
    const end = entry.audit ? AUDIT_LINE_ENDS[decision.kind] : LINE_ENDS[decision.kind];

    // Escaped text has no lone surrogate, so each UTF-16 code unit takes at most 3 bytes in UTF-8.
    let maxBytes = start.length + 3 * requestId.length + outcome.length + MAX_MILLISECONDS_BYTES + end.length;
    if (tenant !== undefined) {
      maxBytes += TENANT_FIELD.length + 3 * tenant.length;
    }
    if (controllerId !== undefined) {
      maxBytes += CONTROLLER_ID_FIELD.length + 3 * controllerId.length;
    }
    const stream = this.#stream;
    const buffer = stream ? stream.beginLine(maxBytes) : this.#scratchOf(maxBytes);
    // Every string field but requestId is optional, so each piece closes the string value before it.
    let offset = putBytes(buffer, stream ? stream.lineStart : 0, start);
    offset = putText(buffer, offset, requestId);
    if (tenant !== undefined) {
      offset = putText(buffer, putBytes(buffer, offset, TENANT_FIELD), tenant);
    }
    if (controllerId !== undefined) {
      offset = putText(buffer, putBytes(buffer, offset, CONTROLLER_ID_FIELD), controllerId);
    }
    offset = putBytes(buffer, offset, outcome);
    offset = putMilliseconds(buffer, offset, entry.durationSeconds);
    offset = putBytes(buffer, offset, end);
    if (stream) {
      stream.endLine(offset);
    } else {
      this.#destination.write(buffer.toString('utf8', 0, offset));
    }
  }

  #scratchOf(bytes: number): Buffer {
    if (this.#scratch.length < bytes) {
      this.#scratch = Buffer.allocUnsafe(bytes);
    }
    return this.#scratch;
  }

  /**
   * Returns the line up to the opening quote of the requestId value, for the
   * current millisecond, as UTF-8. It is built once per millisecond and level.
   */
  #start(level: LogLevel, nowMs: number): Buffer {
    const time = this.#isoTime(nowMs);
    let start = this.#starts.get(level);
    if (start === undefined || start.time !== time) {
      start = { time, bytes: Buffer.from(['{"level":"', level, '","time":"', time, '"', this.#bindings, ',"requestId":"'].join(''), 'utf8') };
      this.#starts.set(level, start);
    }
    return start.bytes;
  }

  /**
   * Returns the fields from the quote that closes the last string value up to
   * `"durationMs":`: method, result, and reason and HTTP status. They take
   * values from closed sets, so each combination is built once, unescaped.
   */
  #outcome(decision: Decision): Buffer {
    const method = decision.method ?? '';
    const reason = decision.kind === 'deny' ? decision.reason : '';
    const httpStatus = decision.kind === 'deny' ? decision.httpStatus : 200;
    let byReason = this.#outcomes.get(method);
    if (byReason === undefined) {
      byReason = new Map();
      this.#outcomes.set(method, byReason);
    }
    let cached = byReason.get(reason);
    // deny() gives each reason one status, but the type allows any, so cached bytes are reused only for the same status.
    if (cached === undefined || cached.httpStatus !== httpStatus) {
      const methodField = method === '' ? '' : `,"method":"${method}"`;
      const reasonField = reason === '' ? '' : `,"reason":"${reason}"`;
      const text = ['"', methodField, ',"result":"', decision.kind, '"', reasonField, ',"httpStatus":', String(httpStatus), ',"durationMs":'].join('');
      cached = { httpStatus, bytes: Buffer.from(text, 'utf8') };
      byReason.set(reason, cached);
    }
    return cached.bytes;
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
const LINE_ENDS = { allow: Buffer.from(',"msg":"allow"}\n'), deny: Buffer.from(',"msg":"deny"}\n') } as const;
const AUDIT_LINE_ENDS = { allow: Buffer.from(',"mode":"audit","msg":"allow"}\n'), deny: Buffer.from(',"mode":"audit","msg":"deny"}\n') } as const;
/** The pieces between the string value before them and the tenant or controller id value. */
const TENANT_FIELD = Buffer.from('","tenant":"');
const CONTROLLER_ID_FIELD = Buffer.from('","controllerId":"');
/** Upper bound on the bytes of a durationMs value: 16 digits, a point and 3, or the longest number JavaScript prints. */
const MAX_MILLISECONDS_BYTES = 32;

/** Characters that JSON.stringify may escape: `"`, `\`, control characters, and surrogates when they are lone. */
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

/**
 * Returns a string as JSON.stringify writes it between the quotes, without
 * calling it for strings that need no escaping.
 */
export function escapeJsonText(value: string): string {
  return NEEDS_ESCAPE.test(value) ? JSON.stringify(value).slice(1, -1) : value;
}

function putBytes(buffer: Buffer, offset: number, bytes: Buffer): number {
  buffer.set(bytes, offset);
  return offset + bytes.length;
}

/**
 * Writes a string as UTF-8 at `offset` and returns the offset after it. ASCII,
 * as request ids, tenants and controller ids usually are, is copied code unit
 * by code unit, which costs less than a call into Buffer.write for strings this short.
 */
function putText(buffer: Buffer, offset: number, text: string): number {
  for (let index = 0; index < text.length; index++) {
    const code = text.charCodeAt(index);
    if (code >= 0x80) {
      return offset + buffer.write(text, offset, 'utf8');
    }
    buffer[offset + index] = code;
  }
  return offset + text.length;
}

/**
 * Writes a duration of zero or more seconds as milliseconds rounded to whole
 * microseconds and returns the offset after it. Below 2^43 ms (about 278
 * years), the text is what `String(Math.round(seconds * 1e6) / 1000)` gives.
 * Digits are written with integer arithmetic, because formatting a fraction
 * took about 0.3 µs per line in a micro-benchmark on Node.js 20.
 */
export function putMilliseconds(buffer: Buffer, offset: number, seconds: number): number {
  const micros = Math.round(seconds * 1e6);
  if (!Number.isFinite(micros)) {
    // JSON has no NaN or Infinity, so the value is null, as JSON.stringify writes it.
    return putBytes(buffer, offset, JSON_NULL);
  }
  if (!(micros >= 0 && micros <= Number.MAX_SAFE_INTEGER)) {
    // A negative duration, or one beyond 285 years: written as JavaScript prints the number.
    return putText(buffer, offset, String(micros / 1000));
  }
  const whole = Math.floor(micros / 1000);
  const fraction = micros - whole * 1000;
  let end = putInteger(buffer, offset, whole);
  if (fraction === 0) {
    return end;
  }
  buffer[end++] = DECIMAL_POINT;
  buffer[end++] = DIGIT_ZERO + Math.floor(fraction / 100);
  if (fraction % 100 === 0) {
    return end;
  }
  buffer[end++] = DIGIT_ZERO + (Math.floor(fraction / 10) % 10);
  if (fraction % 10 === 0) {
    return end;
  }
  buffer[end++] = DIGIT_ZERO + (fraction % 10);
  return end;
}

const JSON_NULL = Buffer.from('null');
const DIGIT_ZERO = 0x30;
const DECIMAL_POINT = 0x2e;

/** Writes a safe non-negative integer in decimal and returns the offset after it. */
function putInteger(buffer: Buffer, offset: number, value: number): number {
  let digits = 1;
  for (let rest = value; rest >= 10; rest = Math.floor(rest / 10)) {
    digits++;
  }
  let rest = value;
  for (let index = offset + digits - 1; index >= offset; index--) {
    buffer[index] = DIGIT_ZERO + (rest % 10);
    rest = Math.floor(rest / 10);
  }
  return offset + digits;
}

function threeDigits(value: number): string {
  if (value < 10) {
    return `00${value}`;
  }
  return value < 100 ? `0${value}` : `${value}`;
}
