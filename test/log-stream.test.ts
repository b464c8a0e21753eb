import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, existsSync, fstatSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LogStream, FLUSH_BYTES, FLUSH_INTERVAL_MS } from '../src/observability/log-stream.js';
import { createLogger, logDestination } from '../src/observability/logger.js';

let folder: string;
let fileCount = 0;
const openFds: number[] = [];
const children: ChildProcess[] = [];

/** Creates an empty file in the test folder and opens it for appending. */
function openLogFile(): { path: string; fd: number } {
  fileCount++;
  const path = join(folder, `log-${fileCount}.jsonl`);
  const fd = openSync(path, 'a');
  openFds.push(fd);
  return { path, fd };
}

function flushStream(stream: LogStream): Promise<void> {
  return new Promise((resolve) => stream.flush(() => resolve()));
}

function sleep(milliseconds: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, milliseconds));
}

/** Resolves in the check phase of the current event-loop turn, after immediates queued before it. */
function nextImmediate(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * Blocks the event loop until the file has `expectedSize` bytes or `milliseconds` pass, so no timer or
 * immediate can start a write meanwhile. Returns the last size read.
 */
function waitForSizeBlocking(fd: number, expectedSize: number, milliseconds: number): number {
  const deadline = Date.now() + milliseconds;
  let size = fstatSync(fd).size;
  while (size !== expectedSize && Date.now() < deadline) {
    size = fstatSync(fd).size;
  }
  return size;
}

/** Polls the file size without blocking until it reaches `expectedSize` or `milliseconds` pass. Returns the last size read. */
async function waitForSize(path: string, expectedSize: number, milliseconds: number): Promise<number> {
  const deadline = Date.now() + milliseconds;
  let size = statSync(path).size;
  while (size !== expectedSize && Date.now() < deadline) {
    await sleep(5);
    size = statSync(path).size;
  }
  return size;
}

/** Returns the first byte offset where the two buffers differ, or -1 when they are equal. */
function firstDifference(actual: Buffer, expected: Buffer): number {
  const length = Math.min(actual.length, expected.length);
  for (let index = 0; index < length; index++) {
    if (actual[index] !== expected[index]) {
      return index;
    }
  }
  return actual.length === expected.length ? -1 : length;
}

/** Deterministic pseudo-random numbers in [0, 1) (mulberry32), so a failing case can be rerun. */
function randomNumbers(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let value = state;
    value = Math.imul(value ^ (value >>> 15), value | 1);
    value ^= value + Math.imul(value ^ (value >>> 7), value | 61);
    return ((value ^ (value >>> 14)) >>> 0) / 4294967296;
  };
}

/** Builds a JSON log line numbered `index` of exactly `bytes` bytes, newline included. */
function fixedSizeLine(index: number, bytes: number): string {
  const head = `{"level":"info","n":${index},"pad":"`;
  const tail = '"}\n';
  return head + 'x'.repeat(bytes - head.length - tail.length) + tail;
}

/** Writes a line through `beginLine` and `endLine`, reserving 3 bytes per UTF-16 code unit as the decision log does. */
function writeInPlace(stream: LogStream, line: string): void {
  const bytes = Buffer.from(line, 'utf8');
  const buffer = stream.beginLine(3 * line.length);
  const start = stream.lineStart;
  bytes.copy(buffer, start);
  stream.endLine(start + bytes.length);
}

/** Starts `sh -c script` with a pipe on its stdin and returns the child and the parent's fd of that pipe. */
async function spawnWithStdinPipe(script: string, stdout: number | 'pipe'): Promise<{ child: ChildProcess; fd: number }> {
  const child = spawn('sh', ['-c', script], { stdio: ['pipe', stdout, 'inherit'] });
  children.push(child);
  await once(child, 'spawn');
  const handle = (child.stdin as unknown as { _handle?: { fd?: number } })._handle;
  const fd = handle?.fd;
  if (typeof fd !== 'number' || fd < 0) {
    throw new Error('the child stdin pipe has no file descriptor on this platform');
  }
  return { child, fd };
}

/** Leaves a child's stdout pipe unread for `delayMs`, so it fills, then reads it to the end and returns it with the exit code. */
async function readAfterDelay(child: ChildProcess, delayMs: number): Promise<{ code: number; text: string }> {
  children.push(child);
  const stdout = child.stdout!;
  stdout.pause();
  await new Promise((resolve) => setTimeout(resolve, delayMs));
  let text = '';
  stdout.setEncoding('utf8');
  stdout.on('data', (chunk: string) => (text += chunk));
  stdout.resume();
  const [code] = (await once(child, 'close')) as [number];
  return { code, text };
}

describe('log files', () => {
  before(() => {
    folder = mkdtempSync(join(tmpdir(), 'log-stream-test-'));
  });

  after(() => {
    for (const fd of openFds) {
      closeSync(fd);
    }
    for (const child of children) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill();
      }
    }
    rmSync(folder, { recursive: true, force: true });
  });

  describe('LogStream', () => {
    it('writes lines in order after flush', async () => {
      const { path, fd } = openLogFile();
      const stream = new LogStream(fd);
      const lines = Array.from({ length: 1000 }, (_, index) => `{"level":"info","n":${index}}\n`);

      for (const line of lines) {
        stream.write(line);
      }
      await flushStream(stream);

      expect(readFileSync(path, 'utf8')).to.equal(lines.join(''));
    });

    it('keeps in-place and text lines in order', async () => {
      const { path, fd } = openLogFile();
      const stream = new LogStream(fd);
      const lines = Array.from({ length: 3000 }, (_, index) => `{"level":"info","n":${index},"text":"${'é€'.repeat(index % 7)}"}\n`);

      lines.forEach((line, index) => (index % 3 === 0 ? stream.write(line) : writeInPlace(stream, line)));
      await flushStream(stream);

      expect(readFileSync(path, 'utf8')).to.equal(lines.join(''));
    });

    it('takes an in-place line longer than a buffer', async () => {
      const { path, fd } = openLogFile();
      const stream = new LogStream(fd);
      const long = `{"pad":"${'€'.repeat(300_000)}"}\n`;

      writeInPlace(stream, '{"n":1}\n');
      writeInPlace(stream, long);
      writeInPlace(stream, '{"n":2}\n');
      await flushStream(stream);

      expect(readFileSync(path, 'utf8')).to.equal(`{"n":1}\n${long}{"n":2}\n`);
    });

    it('rejects an in-place line past its reservation', () => {
      const { fd } = openLogFile();
      const stream = new LogStream(fd);

      stream.beginLine(10);

      expect(() => stream.endLine(stream.lineStart - 1)).to.throw(RangeError, /outside the reserved buffer/);
      expect(() => stream.endLine(stream.lineStart + 64 * 1024 * 1024)).to.throw(RangeError, /beginLine reserved too few bytes/);
    });

    it('drops in-place lines past maxBufferedBytes', async () => {
      const { path, fd } = openLogFile();
      const maxBufferedBytes = 10_000;
      const stream = new LogStream(fd, { maxBufferedBytes });
      const lines = Array.from({ length: 1000 }, (_, index) => fixedSizeLine(index, 100));

      for (const line of lines) {
        writeInPlace(stream, line);
      }
      const droppedBeforeFlush = stream.droppedLines;
      await flushStream(stream);

      const written = readFileSync(path, 'utf8').split('\n');
      expect(written.pop()).to.equal('');
      const report = JSON.parse(written.pop() ?? '{}') as Record<string, unknown>;
      expect(written.length).to.equal(maxBufferedBytes / 100);
      expect(written.map((line) => `${line}\n`)).to.deep.equal(lines.slice(0, written.length));
      expect(droppedBeforeFlush).to.equal(lines.length - written.length);
      expect(report.droppedLines).to.equal(lines.length - written.length);
    });

    it('writes 200,000 mixed lines byte-exact', async function () {
      this.timeout(60_000);
      const { path, fd } = openLogFile();
      // Large enough that nothing is dropped while the batches below run ahead of the writes.
      const stream = new LogStream(fd, { maxBufferedBytes: 512 * 1024 * 1024 });
      const random = randomNumbers(20240607);
      // Pieces take 1 to 4 bytes in UTF-8. A lone surrogate becomes U+FFFD (3 bytes) both here and in Buffer.from.
      const pieces = ['a', 'Z', '0', ' ', '"', '\\', 'é', '€', '😀', '\u2028', '\ud800'];
      const lines: string[] = [];
      for (let index = 0; index < 200_000; index++) {
        // Every 20,000th line needs a buffer of its own: 3 bytes per UTF-16 code unit exceed one 512 KiB buffer.
        const length = index % 20_000 === 7 ? 180_000 + Math.floor(random() * 40_000) : Math.floor(random() * 200);
        let line = `${index}:`;
        for (let count = 0; count < length; count++) {
          line += pieces[Math.floor(random() * pieces.length)];
        }
        lines.push(`${line}\n`);
      }

      // Batches let the writes of earlier lines run while later lines are copied in. Every third line goes in place.
      for (let start = 0; start < lines.length; start += 500) {
        for (let index = start; index < Math.min(start + 500, lines.length); index++) {
          if (index % 3 === 2) {
            writeInPlace(stream, lines[index]);
          } else {
            stream.write(lines[index]);
          }
        }
        await nextImmediate();
      }
      await flushStream(stream);

      const expected = Buffer.from(lines.join(''), 'utf8');
      const actual = readFileSync(path);
      expect(stream.droppedLines).to.equal(0);
      expect(stream.failedWrites).to.equal(0);
      expect(actual.length).to.equal(expected.length);
      expect(firstDifference(actual, expected)).to.equal(-1);
    });

    it('waits for flush interval', async () => {
      const { path, fd } = openLogFile();
      const stream = new LogStream(fd);
      const text = `{"level":"info","msg":"one"}\n{"level":"info","msg":"two"}\n`;

      stream.write(`{"level":"info","msg":"one"}\n`);
      stream.write(`{"level":"info","msg":"two"}\n`);
      const sizeRightAfter = statSync(path).size;
      await nextImmediate();
      // Blocking keeps the interval timer from firing, so only a write already started could land here.
      const sizeAfterFirstTurn = waitForSizeBlocking(fd, Buffer.byteLength(text), 50);
      await sleep(FLUSH_INTERVAL_MS + 30);
      const sizeAfterInterval = await waitForSize(path, Buffer.byteLength(text), 1000);

      expect(sizeRightAfter).to.equal(0);
      expect(sizeAfterFirstTurn).to.equal(0);
      expect(sizeAfterInterval).to.equal(Buffer.byteLength(text));
      expect(readFileSync(path, 'utf8')).to.equal(text);
    });

    it('writes at once past FLUSH_BYTES', async () => {
      const { path, fd } = openLogFile();
      const stream = new LogStream(fd);
      const lines = Array.from({ length: Math.ceil(FLUSH_BYTES / 100) + 1 }, (_, index) => fixedSizeLine(index, 100));
      const text = lines.join('');

      for (const line of lines) {
        stream.write(line);
      }
      const sizeRightAfter = statSync(path).size;
      await nextImmediate();
      // Blocking keeps the interval timer from firing, so the bytes can only come from a write started in the first turn.
      const sizeAfterFirstTurn = waitForSizeBlocking(fd, text.length, 1000);

      expect(sizeRightAfter).to.equal(0);
      expect(sizeAfterFirstTurn).to.equal(text.length);
      expect(readFileSync(path, 'utf8')).to.equal(text);
    });

    it('flushSync writes everything synchronously', async () => {
      const { path, fd } = openLogFile();
      const stream = new LogStream(fd);
      // More than two 512 KiB buffers, so flushSync has to write more than one.
      const lines = Array.from({ length: 12_000 }, (_, index) => fixedSizeLine(index, 100));
      const text = lines.join('');

      for (const line of lines) {
        stream.write(line);
      }
      stream.flushSync();
      const contentRightAfter = readFileSync(path, 'utf8');
      // The write that was scheduled before flushSync must find nothing left to write.
      await sleep(FLUSH_INTERVAL_MS + 30);
      await flushStream(stream);

      expect(contentRightAfter).to.equal(text);
      expect(readFileSync(path, 'utf8')).to.equal(text);
    });

    it('flushSync after a flush', async () => {
      const { path, fd } = openLogFile();
      const stream = new LogStream(fd);

      stream.write('{"n":1}\n');
      await flushStream(stream);
      stream.write('{"n":2}\n');
      stream.flushSync();

      expect(readFileSync(path, 'utf8')).to.equal('{"n":1}\n{"n":2}\n');
    });

    it('drops lines past maxBufferedBytes', async () => {
      const { path, fd } = openLogFile();
      const maxBufferedBytes = 10_000;
      const stream = new LogStream(fd, { maxBufferedBytes });
      const lines = Array.from({ length: 1000 }, (_, index) => fixedSizeLine(index, 100));

      for (const line of lines) {
        stream.write(line);
      }
      const droppedBeforeFlush = stream.droppedLines;
      await flushStream(stream);

      const written = readFileSync(path, 'utf8').split('\n');
      expect(written.pop()).to.equal('');
      const report = JSON.parse(written.pop() ?? '{}') as Record<string, unknown>;
      const kept = written.length;
      expect(kept).to.be.greaterThan(0);
      expect(kept * 100).to.be.at.most(maxBufferedBytes);
      // The buffer was full, so one more line would have passed the cap.
      expect((kept + 1) * 100).to.be.greaterThan(maxBufferedBytes);
      expect(written.map((line) => `${line}\n`)).to.deep.equal(lines.slice(0, kept));
      expect(droppedBeforeFlush).to.equal(lines.length - kept);
      expect(stream.droppedLines).to.equal(lines.length - kept);
      expect(report.level).to.equal('warn');
      expect(report.droppedLines).to.equal(lines.length - kept);
      expect(report.msg).to.be.a('string');
      expect(Date.parse(String(report.time))).to.not.be.NaN;
    });

    it('counts dropped multi-byte lines', async () => {
      const { path, fd } = openLogFile();
      const stream = new LogStream(fd, { maxBufferedBytes: 10_000 });
      const line = `${'€'.repeat(99)}\n`;

      for (let index = 0; index < 100; index++) {
        stream.write(line);
      }
      await flushStream(stream);

      const written = readFileSync(path, 'utf8').split('\n').slice(0, -1);
      const report = JSON.parse(written.at(-1) ?? '{}') as Record<string, unknown>;
      const kept = written.slice(0, -1);
      expect(kept.every((text) => `${text}\n` === line)).to.equal(true);
      expect(kept.length + stream.droppedLines).to.equal(100);
      expect(report.droppedLines).to.equal(stream.droppedLines);
    });

    it('reports drops after interval write', async () => {
      const { path, fd } = openLogFile();
      const stream = new LogStream(fd, { maxBufferedBytes: 10_000 });
      const lines = Array.from({ length: 1000 }, (_, index) => fixedSizeLine(index, 100));

      for (const line of lines) {
        stream.write(line);
      }
      await sleep(FLUSH_INTERVAL_MS + 80);
      await flushStream(stream);

      const written = readFileSync(path, 'utf8').split('\n').slice(0, -1);
      const report = JSON.parse(written.at(-1) ?? '{}') as Record<string, unknown>;
      expect(stream.droppedLines).to.equal(900);
      expect(report.level).to.equal('warn');
      expect(report.droppedLines).to.equal(900);
    });

    it('reports drops again later', async () => {
      const { path, fd } = openLogFile();
      const stream = new LogStream(fd, { maxBufferedBytes: 10_000 });

      for (let round = 0; round < 2; round++) {
        for (let index = 0; index < 150; index++) {
          stream.write(fixedSizeLine(index, 100));
        }
        await flushStream(stream);
      }

      const reports = readFileSync(path, 'utf8')
        .split('\n')
        .slice(0, -1)
        .map((line) => JSON.parse(line) as Record<string, unknown>)
        .filter((record) => record.droppedLines !== undefined);
      expect(reports.map((report) => report.droppedLines)).to.deep.equal([50, 50]);
      expect(stream.droppedLines).to.equal(100);
    });

    it('counts failed write on read-only fd', async () => {
      const { path } = openLogFile();
      const readOnlyFd = openSync(path, 'r');
      openFds.push(readOnlyFd);
      const stream = new LogStream(readOnlyFd);

      expect(() => stream.write('{"n":1}\n')).to.not.throw();
      await flushStream(stream);

      expect(stream.failedWrites).to.equal(1);
      expect(statSync(path).size).to.equal(0);
    });

    it('keeps going after failed write', async () => {
      const { path } = openLogFile();
      const readOnlyFd = openSync(path, 'r');
      openFds.push(readOnlyFd);
      const stream = new LogStream(readOnlyFd);

      stream.write('{"n":1}\n');
      await flushStream(stream);
      stream.write('{"n":2}\n');
      await flushStream(stream);
      // A flush with nothing queued still calls back.
      await flushStream(stream);

      expect(stream.failedWrites).to.equal(2);
    });

    it('flushSync counts failed write', () => {
      const { path } = openLogFile();
      const readOnlyFd = openSync(path, 'r');
      openFds.push(readOnlyFd);
      const stream = new LogStream(readOnlyFd);

      stream.write('{"n":1}\n');
      expect(() => stream.flushSync()).to.not.throw();

      expect(stream.failedWrites).to.equal(1);
    });

    it('writes through slow pipe byte-exact', async function () {
      this.timeout(30_000);
      const { path, fd: outputFd } = openLogFile();
      // The reader starts late, so the socket buffer fills and writes return EAGAIN or write only part.
      const { child, fd } = await spawnWithStdinPipe('sleep 0.3; exec cat', outputFd);
      const stream = new LogStream(fd);
      const lines = Array.from({ length: 40_000 }, (_, index) => fixedSizeLine(index, 50 + (index % 150)));

      for (let start = 0; start < lines.length; start += 1000) {
        for (let index = start; index < start + 1000; index++) {
          if (index % 2 === 1) {
            writeInPlace(stream, lines[index]);
          } else {
            stream.write(lines[index]);
          }
        }
        await nextImmediate();
      }
      await flushStream(stream);
      const exited = once(child, 'close');
      child.stdin?.end();
      const [exitCode] = await exited;

      const expected = Buffer.from(lines.join(''), 'utf8');
      const actual = readFileSync(path);
      expect(exitCode).to.equal(0);
      expect(stream.failedWrites).to.equal(0);
      expect(stream.droppedLines).to.equal(0);
      expect(actual.length).to.equal(expected.length);
      expect(firstDifference(actual, expected)).to.equal(-1);
    });

    it('counts failed write on closed pipe', async () => {
      // The child closes its end of the pipe, so a write fails with EPIPE.
      const { child, fd } = await spawnWithStdinPipe('exec 0<&-; echo closed; exec sleep 10', 'pipe');
      child.stdout?.setEncoding('utf8');
      const [output] = (await once(child.stdout!, 'data')) as [string];
      expect(output).to.equal('closed\n');
      const stream = new LogStream(fd);

      expect(() => stream.write('{"n":1}\n')).to.not.throw();
      await flushStream(stream);

      expect(stream.failedWrites).to.equal(1);
      child.kill();
      await once(child, 'close');
    });
  });

  describe('logDestination', () => {
    it('keeps lines whole from two writers on one pipe', async () => {
      const loggerModule = new URL('../src/observability/logger.js', import.meta.url).href;
      const writer = (name: string) =>
        `node --input-type=module -e "const { createLogger, logDestination } = await import('${loggerModule}'); const logger = createLogger('info', logDestination('stdout')); for (let n = 0; n < 20000; n++) logger.info({ writer: '${name}', n, pad: 'p'.repeat(150) }, 'line');"`;
      // Both writers share the shell's stdout pipe, as the workers of `serve --workers N` do.
      const { code, text } = await readAfterDelay(spawn('sh', ['-c', `${writer('a')} & ${writer('b')} & wait`], { stdio: ['ignore', 'pipe', 'inherit'] }), 500);

      expect(code).to.equal(0);
      const records = text
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as { writer: string; n: number });
      for (const name of ['a', 'b']) {
        const numbers = records.filter((record) => record.writer === name).map((record) => record.n);
        expect(numbers, `writer ${name}`).to.have.length(20000);
        expect(numbers.every((n, index) => n === index), `writer ${name} in order`).to.equal(true);
      }
    });

    it('writes every line at exit into a full pipe', async () => {
      const loggerModule = new URL('../src/observability/logger.js', import.meta.url).href;
      // The child logs 20,000 lines (about 3 MB) and exits at once; the pipe takes 64 KiB until the reader starts.
      const script = `
        const { createLogger, logDestination } = await import(${JSON.stringify(loggerModule)});
        const logger = createLogger('info', logDestination('stdout'));
        for (let n = 0; n < 20000; n++) logger.info({ n, pad: 'p'.repeat(100) }, 'line');
        process.exit(0);
      `;
      const { code, text } = await readAfterDelay(spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] }), 300);

      expect(code).to.equal(0);
      const numbers = text
        .trim()
        .split('\n')
        .map((line) => (JSON.parse(line) as { n: number }).n);
      expect(numbers).to.have.length(20000);
      expect(numbers.every((n, index) => n === index), 'lines in order').to.equal(true);
    });

    it('creates missing folders', async () => {
      const path = join(folder, 'missing', 'nested', 'service.log');

      const stream = logDestination(path);
      stream.write('{"n":1}\n');
      await flushStream(stream);

      expect(existsSync(path)).to.equal(true);
      expect(readFileSync(path, 'utf8')).to.equal('{"n":1}\n');
    });

    it('appends to existing file', async () => {
      const path = join(folder, 'existing.log');
      writeFileSync(path, '{"n":0}\n');

      const stream = logDestination(path);
      stream.write('{"n":1}\n');
      await flushStream(stream);

      expect(readFileSync(path, 'utf8')).to.equal('{"n":0}\n{"n":1}\n');
    });

    it('rejects unwritable path with name', () => {
      const blocker = join(folder, 'not-a-folder');
      writeFileSync(blocker, '');
      const path = join(blocker, 'service.log');

      expect(() => logDestination(path)).to.throw(`cannot open log.destination ${path}`);
    });

    it('logger lines reach file', async () => {
      const path = join(folder, 'logger', 'service.log');
      const logger = createLogger('info', logDestination(path));

      logger.info({ requestId: 'r-1' }, 'first');
      logger.debug('below the level');
      logger.warn('second');
      await new Promise<void>((resolve, reject) => logger.flush((error) => (error ? reject(error) : resolve())));

      const lines = readFileSync(path, 'utf8').split('\n');
      expect(lines.pop()).to.equal('');
      const records = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
      expect(records).to.have.length(2);
      expect(records[0].level).to.equal('info');
      expect(records[0].service).to.equal('hawkbit-ext-authz');
      expect(records[0].requestId).to.equal('r-1');
      expect(records[0].msg).to.equal('first');
      expect(records[1].level).to.equal('warn');
      expect(records[1].msg).to.equal('second');
    });
  });
});
