import { fstatSync, writeSync } from 'node:fs';

/** Size of one buffer that log lines are copied into, in bytes: room for FLUSH_BYTES and the lines of one more event-loop turn. */
const CHUNK_BYTES = 512 * 1024;
/** Bytes (counted as UTF-16 units, so about) buffered while the destination is slower than the logging; lines beyond are dropped and counted. */
export const DEFAULT_MAX_BUFFERED_BYTES = 16 * 1024 * 1024;
/**
 * Length of joined lines, in UTF-16 code units, at which they are encoded into the buffer. Encoding
 * once per 64 KiB instead of once per line saved about 0.15 µs per Check in-process (2-core VM).
 */
const ENCODE_UNITS = 64 * 1024;
/** Maximum time a line waits in the buffer before a write starts, in milliseconds. */
export const FLUSH_INTERVAL_MS = 20;
/**
 * Buffered bytes at which a write starts without waiting for the interval.
 * Each write to a file cost a fixed 30 µs or so of kernel time besides its
 * bytes (ext4 on a 2-core VM). At 20,000 lines a second, 256 KiB writes then
 * cost about 0.2 µs less per line than 32 KiB ones (an estimate from one machine).
 */
export const FLUSH_BYTES = 256 * 1024;
/** Wait before retrying a write that a full non-blocking pipe rejected with EAGAIN, in milliseconds. */
const RETRY_DELAY_MS = 10;
/**
 * Largest write that POSIX makes atomic on a pipe (PIPE_BUF, 4096 bytes on Linux): it is
 * written whole or, on a full non-blocking pipe, not at all, so it never interleaves with
 * another process's write.
 */
const PIPE_ATOMIC_BYTES = 4096;
/** Maximum time `flushSync` waits for a full pipe to take the remaining bytes, in milliseconds. */
const SYNC_FLUSH_TIMEOUT_MS = 3_000;

/**
 * A log destination that copies lines into buffers and writes them to the
 * file descriptor in batches: after FLUSH_INTERVAL_MS, or in the same
 * event-loop turn once FLUSH_BYTES are buffered.
 *
 * pino's own destination (sonic-boom 4) measures the whole pending string
 * again on every line while a write is in flight, which cost several µs per
 * line under load. Every write handed to libuv's thread pool also costs the
 * event loop several µs. Here lines given as text are joined as a string and
 * encoded into a buffer per 64 KiB, the decision log puts each line's bytes
 * straight into that buffer (`beginLine`), and a batch costs one `write` system call.
 *
 * Writes are synchronous, so lines keep their order and `flushSync` can write
 * the rest at exit without racing a write in flight. A full pipe does not
 * block the event loop: Node opens stdout and stderr pipes non-blocking, so a
 * write that does not fit fails with EAGAIN or writes part, and the rest is
 * retried after RETRY_DELAY_MS. A regular file takes the write into the page
 * cache. When the destination falls behind by more than `maxBufferedBytes`,
 * new lines are dropped rather than growing memory without bound, and a line
 * saying how many were dropped follows once it catches up.
 *
 * NOTE: a write to a file on a stalled disk, or to a blocking pipe whose
 * reader stopped, blocks the event loop as long as the write takes.
 */
export class LogStream {
  readonly #fd: number;
  readonly #maxBufferedBytes: number;
  /**
   * Whether the destination is a pipe or socket, where writes go in whole lines of at most
   * PIPE_ATOMIC_BYTES, because `serve --workers N` has every worker write to the same pipe.
   */
  readonly #pipe: boolean;
  /** Filled buffers not yet written, oldest first. */
  #queued: Buffer[] = [];
  #queuedBytes = 0;
  /**
   * Buffer that lines go into while nothing is queued. Writes are synchronous,
   * so an empty queue means the kernel has its bytes, and the next lines reuse it.
   * Reusing it saved about 70 ns per decision line (a micro-benchmark on a 2-core VM).
   */
  readonly #home: Buffer = Buffer.allocUnsafe(CHUNK_BYTES);
  /** Buffer that the next line is copied into, from `#offset` on: `#home` or what is left of a filled buffer. */
  #chunk: Buffer = this.#home;
  #offset = 0;
  /** Text of the lines not yet encoded into `#chunk`. */
  #text = '';
  #timer: NodeJS.Timeout | undefined;
  #immediate = false;
  /** Whether the last write met a full pipe, so the next one waits for RETRY_DELAY_MS. */
  #backingOff = false;
  #droppedSinceReport = 0;
  #droppedTotal = 0;
  #failedWrites = 0;
  readonly #drainWaiters: (() => void)[] = [];

  constructor(fd: number, options: { maxBufferedBytes?: number } = {}) {
    this.#fd = fd;
    this.#maxBufferedBytes = options.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED_BYTES;
    this.#pipe = isPipe(fd);
  }

  /** Lines dropped since start because the destination fell behind. */
  get droppedLines(): number {
    return this.#droppedTotal;
  }

  /** Writes that failed with an error other than EAGAIN, whose bytes were given up. */
  get failedWrites(): number {
    return this.#failedWrites;
  }

  /** Queues one or more complete lines. Always returns true: when too much is buffered, the line is dropped instead. */
  write(data: string): boolean {
    // Joined lines count one byte per UTF-16 unit until encoded, and a unit takes up to 3. Near the
    // limit they are encoded first, so that lines are dropped by their encoded size.
    if (this.#pendingBytes() + 2 * this.#text.length + data.length > this.#maxBufferedBytes) {
      this.#encodeText();
    }
    if (this.#pendingBytes() + data.length > this.#maxBufferedBytes) {
      this.#droppedSinceReport++;
      this.#droppedTotal++;
      return true;
    }
    this.#text += data;
    if (this.#text.length >= ENCODE_UNITS) {
      this.#encodeText();
    }
    this.#schedule(this.#pendingBytes() >= FLUSH_BYTES);
    return true;
  }

  /**
   * Returns the buffer that the bytes of one line of at most `maxBytes` go
   * into, from `lineStart` on. The writer then calls `endLine` with the offset
   * after the line's last byte, and nothing else may write to the stream in
   * between. Writing a line's bytes in place skips the string that `write`
   * joins and then encodes: about 400 bytes per decision line in a sampling
   * allocation profile of the Check handler (Node.js 20).
   */
  beginLine(maxBytes: number): Buffer {
    this.#encodeText();
    this.#reserve(maxBytes);
    return this.#chunk;
  }

  /** Offset in the buffer that `beginLine` returned where the line starts. */
  get lineStart(): number {
    return this.#offset;
  }

  /** Queues the line written since `beginLine`, up to `end`, or drops it when too much is buffered. */
  endLine(end: number): void {
    if (!(end >= this.#offset && end <= this.#chunk.length)) {
      // A line past the buffer's end lost its last bytes, so it must not be written.
      throw new RangeError(`log line end ${end} is outside the reserved buffer (${this.#offset} to ${this.#chunk.length}); beginLine reserved too few bytes`);
    }
    if (this.#pendingBytes() + (end - this.#offset) > this.#maxBufferedBytes) {
      this.#droppedSinceReport++;
      this.#droppedTotal++;
      return;
    }
    this.#offset = end;
    this.#schedule(this.#pendingBytes() >= FLUSH_BYTES);
  }

  /** Calls `callback` once every line queued so far is written, or given up after a write error. */
  flush(callback?: (error?: Error) => void): void {
    if (callback) {
      this.#drainWaiters.push(() => callback());
    }
    this.#schedule(true);
  }

  /**
   * Writes every queued line now, blocking, for a process that is about to
   * exit. A full pipe gets up to SYNC_FLUSH_TIMEOUT_MS to take the rest.
   */
  flushSync(): void {
    const deadline = Date.now() + SYNC_FLUSH_TIMEOUT_MS;
    while (this.#writeOnce() === 'again' && Date.now() < deadline) {
      sleepSync(1);
    }
  }

  #pendingBytes(): number {
    return this.#queuedBytes + this.#offset + this.#text.length;
  }

  /** Encodes the joined lines into the current chunk, or into a new one when they may not fit. */
  #encodeText(): void {
    const text = this.#text;
    if (text === '') {
      return;
    }
    this.#text = '';
    // A UTF-16 code unit takes at most 3 bytes in UTF-8.
    this.#reserve(text.length * 3);
    this.#offset += this.#chunk.write(text, this.#offset, 'utf8');
  }

  /** Makes room for `bytes` more in the current chunk, moving its filled part to the queue and taking a new buffer when they may not fit. */
  #reserve(bytes: number): void {
    if (this.#offset + bytes > this.#chunk.length) {
      this.#takeChunk();
      this.#chunk = Buffer.allocUnsafe(Math.max(CHUNK_BYTES, bytes));
    }
  }

  /** Moves the filled part of the current chunk, joined lines included, to the queue. Later lines go to the rest of the chunk. */
  #takeChunk(): void {
    this.#encodeText();
    if (this.#offset === 0) {
      return;
    }
    this.#queued.push(this.#chunk.subarray(0, this.#offset));
    this.#queuedBytes += this.#offset;
    // When the remaining space is too small for the next line, `write` takes a new buffer.
    // A write pass that empties the queue returns to `#home`.
    this.#chunk = this.#chunk.subarray(this.#offset);
    this.#offset = 0;
  }

  /** Starts a write after the flush interval, or in this event-loop turn's check phase when `now` is set. */
  #schedule(now: boolean): void {
    if (this.#immediate) {
      return;
    }
    if (now && !this.#backingOff) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#immediate = true;
      setImmediate(this.#onImmediate);
      return;
    }
    if (this.#timer === undefined) {
      this.#timer = setTimeout(this.#onTimer, this.#backingOff ? RETRY_DELAY_MS : FLUSH_INTERVAL_MS);
      // Exit writes what is left (see logDestination), so a pending write need not keep the process alive.
      this.#timer.unref();
    }
  }

  /**
   * Callbacks of the scheduled write, made once per stream. With arrow functions
   * inside `#schedule`, V8 allocated a context on every call of it, once per line,
   * even when no write was scheduled (96 bytes per Check in a sampling allocation
   * profile, Node.js 20).
   */
  readonly #onImmediate = (): void => {
    this.#immediate = false;
    this.#writeAndReschedule();
  };

  readonly #onTimer = (): void => {
    this.#timer = undefined;
    this.#writeAndReschedule();
  };

  #writeAndReschedule(): void {
    const result = this.#writeOnce();
    this.#backingOff = result === 'again';
    if (result === 'again') {
      this.#schedule(false);
    } else {
      this.#settleWaiters();
    }
  }

  /**
   * Writes the queue until it is empty ('done') or the destination takes no
   * more for now ('again'). A write error gives up the bytes of that write.
   */
  #writeOnce(): 'done' | 'again' {
    for (;;) {
      this.#queueDropReport();
      this.#takeChunk();
      if (this.#queued.length === 0) {
        this.#chunk = this.#home;
        return 'done';
      }
      const buffer = this.#queued.length === 1 ? this.#queued[0] : Buffer.concat(this.#queued, this.#queuedBytes);
      this.#queued = [buffer];
      const length = this.#pipe ? atomicLength(buffer) : buffer.length;
      let written: number;
      try {
        written = writeSync(this.#fd, buffer, 0, length);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'EAGAIN') {
          return 'again';
        }
        // The destination rejected the bytes (a closed pipe, a full disk): they are given up and later lines are tried.
        this.#failedWrites++;
        written = buffer.length;
      }
      this.#queuedBytes -= written;
      this.#queued = written < buffer.length ? [buffer.subarray(written)] : [];
      if (written < length) {
        // A pipe took part of the batch because it is full.
        return 'again';
      }
    }
  }

  /** Queues a line that reports the lines dropped since the last report, once the backlog has room again. */
  #queueDropReport(): void {
    if (this.#droppedSinceReport === 0 || this.#pendingBytes() > this.#maxBufferedBytes / 2) {
      return;
    }
    const line = `{"level":"warn","time":"${new Date().toISOString()}","droppedLines":${this.#droppedSinceReport},"msg":"the log destination fell behind, so lines were dropped"}\n`;
    this.#droppedSinceReport = 0;
    this.#takeChunk();
    const buffer = Buffer.from(line, 'utf8');
    this.#queued.push(buffer);
    this.#queuedBytes += buffer.length;
  }

  #settleWaiters(): void {
    for (const waiter of this.#drainWaiters.splice(0)) {
      waiter();
    }
  }
}

/** Returns the length of the longest run of whole lines that fits in one atomic pipe write, or of the first line when it is longer. */
function atomicLength(buffer: Buffer): number {
  if (buffer.length <= PIPE_ATOMIC_BYTES) {
    return buffer.length;
  }
  const lastNewline = buffer.lastIndexOf(0x0a, PIPE_ATOMIC_BYTES - 1);
  if (lastNewline >= 0) {
    return lastNewline + 1;
  }
  // NOTE: a line longer than PIPE_BUF cannot be written atomically; it may interleave with another worker's lines.
  const firstNewline = buffer.indexOf(0x0a);
  return firstNewline >= 0 ? firstNewline + 1 : buffer.length;
}

function isPipe(fd: number): boolean {
  try {
    const stats = fstatSync(fd);
    return stats.isFIFO() || stats.isSocket();
  } catch {
    return false;
  }
}

const sleepCell = new Int32Array(new SharedArrayBuffer(4));

/** Blocks the thread for `milliseconds`; only for the exit path, where nothing else runs. */
function sleepSync(milliseconds: number): void {
  Atomics.wait(sleepCell, 0, 0, milliseconds);
}
