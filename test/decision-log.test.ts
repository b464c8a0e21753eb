import { expect } from 'chai';
import fc from 'fast-check';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { deny, type AllowDecision, type Decision, type DenyDecision } from '../src/auth/decision.js';
import type { LogLevel } from '../src/config/schema.js';
import { DecisionLog, escapeJsonText, putMilliseconds, type DecisionLogEntry } from '../src/observability/decision-log.js';
import { LogStream } from '../src/observability/log-stream.js';
import { createLogger } from '../src/observability/logger.js';
import { fuzzParameters } from './helpers/fuzz.js';

/** A destination that keeps every chunk written to it, as pino writes one line per chunk. */
class LineCapture extends Writable {
  readonly chunks: Buffer[] = [];

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.chunks.push(chunk);
    callback();
  }

  /** Everything written so far, decoded as UTF-8. */
  get text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }

  /** Parses each complete line written so far as JSON. */
  records(): Record<string, unknown>[] {
    return this.text
      .split('\n')
      .slice(0, -1)
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  }
}

const ALLOW: AllowDecision = { kind: 'allow', tenant: 'DEFAULT', controllerId: 'device-01', method: 'target-token' };

const DENY: DenyDecision = {
  kind: 'deny',
  httpStatus: 401,
  reason: 'token_mismatch',
  tenant: 'DEFAULT',
  controllerId: 'device-01',
  method: 'gateway-token',
};

function entry(decision: Decision, overrides: Partial<DecisionLogEntry> = {}): DecisionLogEntry {
  return { requestId: 'req-1', decision, durationSeconds: 0.0012345678, audit: false, ...overrides };
}

function setup(level: string): { capture: LineCapture; decisionLog: DecisionLog; logger: ReturnType<typeof createLogger> } {
  const capture = new LineCapture();
  const logger = createLogger(level, capture);
  return { capture, decisionLog: new DecisionLog(logger), logger };
}

const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

describe('DecisionLog', () => {
  it('writes allow line fields', () => {
    const { capture, decisionLog } = setup('info');

    const before = Date.now();
    decisionLog.write('info', entry(ALLOW));
    const after = Date.now();

    const records = capture.records();
    expect(records).to.have.length(1);
    const [record] = records;
    expect(record.level).to.equal('info');
    expect(record.time).to.match(ISO_TIME);
    expect(Date.parse(String(record.time))).to.be.within(before, after);
    expect(record.service).to.equal('hawkbit-ext-authz');
    expect(record.requestId).to.equal('req-1');
    expect(record.tenant).to.equal('DEFAULT');
    expect(record.controllerId).to.equal('device-01');
    expect(record.method).to.equal('target-token');
    expect(record.result).to.equal('allow');
    expect(record.httpStatus).to.equal(200);
    expect(record.durationMs).to.equal(1.235);
    expect(record.msg).to.equal('allow');
    expect(record).to.not.have.property('reason');
    expect(record).to.not.have.property('mode');
    expect(Object.keys(record)).to.deep.equal([
      'level',
      'time',
      'service',
      'requestId',
      'tenant',
      'controllerId',
      'method',
      'result',
      'httpStatus',
      'durationMs',
      'msg',
    ]);
  });

  it('matches pino line format', () => {
    const { capture, decisionLog, logger } = setup('info');

    decisionLog.write('info', entry(ALLOW));
    logger.info(
      {
        requestId: 'req-1',
        tenant: 'DEFAULT',
        controllerId: 'device-01',
        method: 'target-token',
        result: 'allow',
        httpStatus: 200,
        durationMs: 1.235,
      },
      'allow',
    );

    const withoutTime = capture.text.replace(/"time":"[^"]*"/g, '"time":""').split('\n');
    expect(withoutTime).to.have.length(3);
    expect(withoutTime[0]).to.equal(withoutTime[1]);
  });

  it('rounds durationMs to microseconds', () => {
    const cases: [number, number][] = [
      [0, 0],
      [0.0000004, 0],
      [0.0000006, 0.001],
      [0.000001, 0.001],
      [0.123456789, 123.457],
      [0.5, 500],
      [2, 2000],
    ];
    const { capture, decisionLog } = setup('info');

    for (const [durationSeconds] of cases) {
      decisionLog.write('info', entry(ALLOW, { durationSeconds }));
    }

    const durations = capture.records().map((record) => record.durationMs);
    expect(durations).to.deep.equal(cases.map(([, durationMs]) => durationMs));
  });

  it('writes deny line fields', () => {
    const { capture, decisionLog } = setup('info');

    decisionLog.write('warn', entry(DENY));

    const [record] = capture.records();
    expect(record.level).to.equal('warn');
    expect(record.service).to.equal('hawkbit-ext-authz');
    expect(record.tenant).to.equal('DEFAULT');
    expect(record.controllerId).to.equal('device-01');
    expect(record.method).to.equal('gateway-token');
    expect(record.result).to.equal('deny');
    expect(record.reason).to.equal('token_mismatch');
    expect(record.httpStatus).to.equal(401);
    expect(record.msg).to.equal('deny');
  });

  it('keeps fields per decision', () => {
    const { capture, decisionLog } = setup('info');
    const otherStatus: DenyDecision = { ...DENY, httpStatus: 403 };
    const otherMethod: DenyDecision = { ...DENY, method: 'target-token' };

    for (const decision of [DENY, otherStatus, otherMethod, ALLOW, DENY]) {
      decisionLog.write('info', entry(decision));
    }

    const records = capture.records();
    expect(records.map((record) => record.httpStatus)).to.deep.equal([401, 403, 401, 200, 401]);
    expect(records.map((record) => record.method)).to.deep.equal(['gateway-token', 'gateway-token', 'target-token', 'target-token', 'gateway-token']);
    expect(records.map((record) => record.result)).to.deep.equal(['deny', 'deny', 'deny', 'allow', 'deny']);
  });

  it('omits absent deny fields', () => {
    const { capture, decisionLog } = setup('info');
    const decision: DenyDecision = { kind: 'deny', httpStatus: 403, reason: 'path_not_ddi' };

    decisionLog.write('info', entry(decision, { requestId: '' }));

    const [record] = capture.records();
    expect(record.requestId).to.equal('');
    expect(record).to.not.have.property('method');
    expect(record).to.not.have.property('tenant');
    expect(record).to.not.have.property('controllerId');
    expect(record.reason).to.equal('path_not_ddi');
    expect(record.httpStatus).to.equal(403);
  });

  it('marks audit mode only when audit', () => {
    const { capture, decisionLog } = setup('info');

    decisionLog.write('info', entry(DENY, { audit: true }));
    decisionLog.write('info', entry(DENY, { audit: false }));

    const [audited, enforced] = capture.records();
    expect(audited.mode).to.equal('audit');
    expect(enforced).to.not.have.property('mode');
  });

  it('skips disabled levels', () => {
    const { capture, decisionLog } = setup('warn');

    decisionLog.write('debug', entry(ALLOW));
    const afterDebug = capture.text;
    decisionLog.write('info', entry(ALLOW));
    const afterInfo = capture.text;
    decisionLog.write('error', entry(DENY));

    expect(afterDebug).to.equal('');
    expect(afterInfo).to.equal('');
    expect(capture.records().map((record) => record.level)).to.deep.equal(['error']);
  });

  it('silent writes nothing', () => {
    const { capture, decisionLog } = setup('trace');
    const silentLogger = setup('silent');

    decisionLog.write('silent', entry(ALLOW));
    silentLogger.decisionLog.write('fatal', entry(DENY));

    expect(capture.text).to.equal('');
    expect(silentLogger.capture.text).to.equal('');
  });

  it('follows later level change', () => {
    const { capture, decisionLog, logger } = setup('info');

    logger.level = 'warn';
    decisionLog.write('info', entry(ALLOW));
    const afterRaise = capture.text;
    decisionLog.write('warn', entry(DENY));
    logger.level = 'debug';
    decisionLog.write('debug', entry(ALLOW));

    expect(afterRaise).to.equal('');
    expect(capture.records().map((record) => record.level)).to.deep.equal(['warn', 'debug']);
  });

  it('includes child logger bindings', () => {
    const { capture, logger } = setup('info');
    const child = logger.child({ worker: 3 });

    new DecisionLog(child).write('info', entry(ALLOW));
    new DecisionLog(logger).write('info', entry(ALLOW));

    const [fromChild, fromParent] = capture.records();
    expect(fromChild.worker).to.equal(3);
    expect(fromChild.service).to.equal('hawkbit-ext-authz');
    expect(Object.keys(fromChild).slice(0, 5)).to.deep.equal(['level', 'time', 'service', 'worker', 'requestId']);
    expect(fromParent).to.not.have.property('worker');
  });

  it('keeps redacted child bindings', () => {
    const { capture, logger } = setup('info');
    const child = logger.child({ token: 'secret-token-value' });

    new DecisionLog(child).write('info', entry(ALLOW));

    const [record] = capture.records();
    expect(record.token).to.equal('[redacted]');
    expect(capture.text).to.not.include('secret-token-value');
  });

  it('follows child logger level', () => {
    const { capture, logger } = setup('info');
    const child = logger.child({ worker: 3 });
    const decisionLog = new DecisionLog(child);

    child.level = 'error';
    decisionLog.write('warn', entry(DENY));

    expect(capture.text).to.equal('');
  });

  it('escapes client-controlled strings', () => {
    const values = [
      'say "hi"',
      'back\\slash\\',
      'line\nbreak',
      'carriage\rreturn',
      '\t\b\f\v',
      '\u0000\u0001\u001f\u007f',
      'separators\u2028\u2029',
      'lone high \ud800',
      'lone low \udfff',
      '\ude00\ud83d reversed pair',
      'é € 😀',
      '","result":"allow',
      '</script>',
      '',
    ];

    for (const value of values) {
      const { capture, decisionLog } = setup('info');
      const decision: DenyDecision = { ...DENY, tenant: value, controllerId: value };

      decisionLog.write('info', entry(decision, { requestId: value }));

      const text = capture.text;
      const label = JSON.stringify(value);
      expect(text.endsWith('\n'), label).to.equal(true);
      expect(text.slice(0, -1), label).to.not.include('\n');
      expect(text.slice(0, -1), label).to.not.include('\r');
      const record = JSON.parse(text) as Record<string, unknown>;
      expect(record.requestId, label).to.equal(value);
      expect(record.tenant, label).to.equal(value);
      expect(record.controllerId, label).to.equal(value);
      expect(record.result, label).to.equal('deny');
    }
  });

  it('round-trips any UTF-16 string', () => {
    const anyCodeUnit = fc.integer({ min: 0, max: 0xffff }).map((code) => String.fromCharCode(code));
    const { capture, decisionLog } = setup('info');

    fc.assert(
      fc.property(fc.string({ unit: anyCodeUnit, maxLength: 40 }), fc.string({ unit: anyCodeUnit, maxLength: 40 }), (requestId, controllerId) => {
        capture.chunks.length = 0;
        decisionLog.write('info', entry({ ...ALLOW, controllerId }, { requestId }));

        const lines = capture.text.split('\n');
        expect(lines).to.have.length(2);
        const record = JSON.parse(lines[0]) as Record<string, unknown>;
        expect(record.requestId).to.equal(requestId);
        expect(record.controllerId).to.equal(controllerId);
      }),
      fuzzParameters(),
    );
  });

  it('escapeJsonText matches JSON.stringify', () => {
    const anyCodeUnit = fc.integer({ min: 0, max: 0xffff }).map((code) => String.fromCharCode(code));
    fc.assert(
      fc.property(fc.string({ unit: anyCodeUnit, maxLength: 40 }), (value) => {
        expect(`"${escapeJsonText(value)}"`).to.equal(JSON.stringify(value));
      }),
      fuzzParameters(),
    );
    expect(escapeJsonText('f81d4fae-7dec-11d0-a765-00a0c91e6bf6')).to.equal('f81d4fae-7dec-11d0-a765-00a0c91e6bf6');
    expect(escapeJsonText('a"b')).to.equal('a\\"b');
  });

  it('putMilliseconds matches number formatting', () => {
    const buffer = Buffer.alloc(64);
    const written = (seconds: number): string => buffer.toString('latin1', 3, putMilliseconds(buffer, 3, seconds));
    fc.assert(
      fc.property(fc.double({ min: 0, max: 100_000, noNaN: true }), (seconds) => {
        expect(written(seconds)).to.equal(String(Math.round(seconds * 1e6) / 1000));
      }),
      fuzzParameters(),
    );
    for (const micros of [0, 1, 9, 10, 99, 100, 101, 110, 999, 1000, 1001, 1010, 1100, 123456, 9_876_543_210]) {
      expect(written(micros / 1e6), String(micros)).to.equal(String(micros / 1000));
    }
    for (const seconds of [Number.MAX_SAFE_INTEGER / 1e6, 1e10, 1e12, 1e300, -0.0015]) {
      expect(written(seconds), String(seconds)).to.equal(String(Math.round(seconds * 1e6) / 1000));
    }
    for (const seconds of [Number.NaN, Number.POSITIVE_INFINITY, Number.MAX_VALUE]) {
      expect(written(seconds), String(seconds)).to.equal('null');
    }
  });

  it('writes the current time', () => {
    const { capture, decisionLog } = setup('info');
    const times: number[] = [];
    for (let index = 0; index < 3; index++) {
      const before = Date.now();
      decisionLog.write('info', entry(ALLOW));
      const after = Date.now();
      const time = capture.records()[index].time as string;
      expect(time).to.match(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
      expect(Date.parse(time)).to.be.within(before, after);
      times.push(Date.parse(time));
      const wait = Date.now() + 3;
      while (Date.now() < wait) {
        // Lets the clock move to another millisecond.
      }
    }
    expect(new Set(times).size).to.equal(3);
  });

  it('writes the given time', () => {
    const { capture, decisionLog } = setup('info');
    const times = [Date.UTC(2026, 0, 2, 3, 4, 5, 6), Date.UTC(2026, 0, 2, 3, 4, 5, 789), Date.UTC(2026, 11, 31, 23, 59, 59, 999)];
    for (const timeMs of times) {
      decisionLog.write('info', entry(ALLOW, { timeMs }));
    }
    expect(capture.records().map((record) => record.time)).to.deep.equal(times.map((timeMs) => new Date(timeMs).toISOString()));
  });

  it('writes levels as labels', () => {
    const levels: LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'];
    const { capture, decisionLog } = setup('trace');

    for (const level of levels) {
      decisionLog.write(level, entry(ALLOW));
    }

    expect(capture.records().map((record) => record.level)).to.deep.equal(levels);
  });

  it('alternates levels and times', () => {
    const { capture, decisionLog } = setup('info');
    const first = Date.UTC(2026, 0, 2, 3, 4, 5, 6);
    const written: { level: LogLevel; timeMs: number }[] = [
      { level: 'info', timeMs: first },
      { level: 'warn', timeMs: first },
      { level: 'info', timeMs: first },
      { level: 'warn', timeMs: first + 1 },
      { level: 'info', timeMs: first + 1 },
      { level: 'warn', timeMs: first },
    ];

    for (const { level, timeMs } of written) {
      decisionLog.write(level, entry(level === 'info' ? ALLOW : DENY, { timeMs }));
    }

    const records = capture.records();
    expect(records.map((record) => record.level)).to.deep.equal(written.map(({ level }) => level));
    expect(records.map((record) => record.time)).to.deep.equal(written.map(({ timeMs }) => new Date(timeMs).toISOString()));
  });
});

describe('DecisionLog to a LogStream', () => {
  let folder: string;
  let fileCount = 0;

  before(() => {
    folder = mkdtempSync(join(tmpdir(), 'decision-log-test-'));
  });

  after(() => {
    rmSync(folder, { recursive: true, force: true });
  });

  /** Writes each entry through a DecisionLog on a LogStream to a new file and returns the file's text. */
  function writtenToFile(entries: readonly [LogLevel, DecisionLogEntry][]): string {
    fileCount++;
    const path = join(folder, `decisions-${fileCount}.jsonl`);
    const fd = openSync(path, 'a');
    try {
      const stream = new LogStream(fd);
      const decisionLog = new DecisionLog(createLogger('debug', stream));
      let textWrites = 0;
      const write = stream.write.bind(stream);
      stream.write = (data: string): boolean => {
        textWrites++;
        return write(data);
      };
      for (const [level, logged] of entries) {
        decisionLog.write(level, logged);
      }
      stream.flushSync();
      // Decision lines go into the buffer in place, never through write().
      expect(textWrites).to.equal(0);
    } finally {
      closeSync(fd);
    }
    return readFileSync(path, 'utf8');
  }

  it('writes the bytes a string destination gets', () => {
    const timeMs = Date.parse('2026-12-06T01:02:03.004Z');
    const entries: [LogLevel, DecisionLogEntry][] = [
      ['info', entry(ALLOW, { timeMs })],
      ['warn', entry(DENY, { timeMs, durationSeconds: 0 })],
      ['info', entry(DENY, { timeMs: timeMs + 1, audit: true, durationSeconds: 12.5 })],
      ['warn', entry(deny('path_not_ddi'), { timeMs, requestId: '' })],
      ['info', entry({ ...ALLOW, tenant: 'é € 😀', controllerId: 'line\nbreak "quoted"' }, { timeMs, requestId: 'lone \ud800' })],
      ['debug', entry({ ...DENY, controllerId: 'x'.repeat(5000) }, { timeMs, durationSeconds: 0.0000004 })],
      ['info', entry(ALLOW, { timeMs, durationSeconds: Number.NaN })],
    ];
    const { capture, decisionLog } = setup('debug');
    for (const [level, logged] of entries) {
      decisionLog.write(level, logged);
    }

    const text = writtenToFile(entries);

    expect(capture.records()).to.have.length(entries.length);
    expect(text).to.equal(capture.text);
  });

  it('round-trips any UTF-16 string', () => {
    const anyCodeUnit = fc.integer({ min: 0, max: 0xffff }).map((code) => String.fromCharCode(code));
    const pairs = fc.sample(fc.tuple(fc.string({ unit: anyCodeUnit, maxLength: 40 }), fc.string({ unit: anyCodeUnit, maxLength: 40 })), fuzzParameters(2000));

    const lines = writtenToFile(pairs.map(([requestId, controllerId]) => ['info', entry({ ...ALLOW, controllerId }, { requestId })])).split('\n');

    expect(lines.pop()).to.equal('');
    expect(lines).to.have.length(pairs.length);
    lines.forEach((line, index) => {
      const record = JSON.parse(line) as Record<string, unknown>;
      expect(record.requestId, `line ${index}`).to.equal(pairs[index][0]);
      expect(record.controllerId, `line ${index}`).to.equal(pairs[index][1]);
    });
  });
});
