import { write as writeAsync, writeSync, writev as writevAsync } from 'node:fs';

/** Size of one buffer that log lines are copied into, in bytes. */
const CHUNK_BYTES = 64 * 1024;
/** Bytes (counted as UTF-16 units, so about) buffered while the destination is slower than the logging; lines beyond are dropped and counted. */
export const DEFAULT_MAX_BUFFERED_BYTES = 16 * 1024 * 1024;
/** Maximum time a line waits in the buffer before a write starts, in milliseconds. */
export const FLUSH_INTERVAL_MS = 20;
/** Buffered bytes at which a write starts without waiting for the interval. */
const FLUSH_BYTES = 32 * 1024;
/** Wait before retrying a write that a non-blocking pipe rejected with EAGAIN, in milliseconds. */
const RETRY_DELAY_MS = 10;
/** Attempts of a synchronous flush against EAGAIN before it gives up on the remaining bytes. */
const SYNC_FLUSH_ATTEMPTS = 1000;

/**
 * A log destination that copies lines into buffers and writes them to the file
 * descriptor in batches: after FLUSH_INTERVAL_MS, or at once when FLUSH_BYTES
 * are buffered, with one asynchronous write.
 *
 * pino's own destination (sonic-boom 4) measures the whole pending string
 * again on every line while a write is in flight, which cost several µs per
 * line under load. Every write handed to libuv's thread pool also costs the
 * event loop several µs. Here a line costs one UTF-8 encode into a buffer.
 * A process killed with SIGKILL loses the lines of the last interval; any
 * other exit writes them (see logDestination).
 *
 * Lines stay in order. When the destination falls behind by more than
 * `maxBufferedBytes`, new lines are dropped rather than growing memory without
 * bound, and a line saying how many were dropped follows once it catches up.
 */
export class LogStream {
  readonly #fd: number;
  readonly #maxBufferedBytes: number;
  /** Filled buffers not yet handed to a write, oldest first. */
  #queued: Buffer[] = [];
  #queuedBytes = 0;
  /** Buffer that the next line is copied into, from `#offset` on. */
  #chunk: Buffer = Buffer.allocUnsafe(CHUNK_BYTES);
  #offset = 0;
  /** Bytes handed to the write in flight, not yet confirmed. */
  #inFlightBytes = 0;
  #writing = false;
  #timer: NodeJS.Timeout | undefined;
  #immediate = false;
  #droppedSinceReport = 0;
  #droppedTotal = 0;
  #failedWrites = 0;
  readonly #drainWaiters: (() => void)[] = [];

  constructor(fd: number, options: { maxBufferedBytes?: number } = {}) {
    this.#fd = fd;
    this.#maxBufferedBytes = options.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED_BYTES;
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
    if (this.#pendingBytes() + data.length > this.#maxBufferedBytes) {
      this.#droppedSinceReport++;
      this.#droppedTotal++;
      return true;
    }
    // A UTF-16 code unit takes at most 3 bytes in UTF-8.
    if (this.#offset + data.length * 3 > this.#chunk.length) {
      this.#takeChunk();
      this.#chunk = Buffer.allocUnsafe(Math.max(CHUNK_BYTES, data.length * 3));
    }
    this.#offset += this.#chunk.write(data, this.#offset, 'utf8');
    this.#schedule(this.#queuedBytes + this.#offset >= FLUSH_BYTES);
    return true;
  }

  /** Calls `callback` once every line queued so far is written, or given up after a write error. */
  flush(callback?: (error?: Error) => void): void {
    if (callback) {
      this.#drainWaiters.push(() => callback());
    }
    if (!this.#writing) {
      this.#queueDropReport();
    }
    if (this.#pendingBytes() === 0 && !this.#writing) {
      process.nextTick(() => this.#settleWaiters());
      return;
    }
    this.#schedule(true);
  }

  /**
   * Writes every queued line now, blocking, for a process that is about to
   * exit. A write still in flight may then land after these lines.
   */
  flushSync(): void {
    this.#queueDropReport();
    this.#takeChunk();
    let eagainLeft = SYNC_FLUSH_ATTEMPTS;
    while (this.#queued.length > 0) {
      const buffers = this.#takeQueued();
      let written = 0;
      try {
        written = writeSync(this.#fd, buffers[0]);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'EAGAIN' && --eagainLeft > 0) {
          this.#requeueUnwritten(buffers, 0);
          continue;
        }
        this.#failedWrites++;
        return;
      }
      this.#requeueUnwritten(buffers, written);
    }
  }

  #pendingBytes(): number {
    return this.#queuedBytes + this.#offset + this.#inFlightBytes;
  }

  /** Moves the filled part of the current chunk to the queue; later lines go to the rest of the chunk. */
  #takeChunk(): void {
    if (this.#offset === 0) {
      return;
    }
    this.#queued.push(this.#chunk.subarray(0, this.#offset));
    this.#queuedBytes += this.#offset;
    this.#chunk = this.#chunk.length - this.#offset < 1024 ? Buffer.allocUnsafe(CHUNK_BYTES) : this.#chunk.subarray(this.#offset);
    this.#offset = 0;
  }

  /** Empties the queue and returns what it held. */
  #takeQueued(): Buffer[] {
    const buffers = this.#queued;
    this.#queued = [];
    this.#queuedBytes = 0;
    return buffers;
  }

  /** Puts back, at the front of the queue, what a write of `buffers` left unwritten. */
  #requeueUnwritten(buffers: Buffer[], written: number): void {
    let skip = written;
    const rest: Buffer[] = [];
    for (const buffer of buffers) {
      if (skip >= buffer.length) {
        skip -= buffer.length;
        continue;
      }
      rest.push(skip > 0 ? buffer.subarray(skip) : buffer);
      skip = 0;
    }
    if (rest.length > 0) {
      this.#queued = rest.concat(this.#queued);
      this.#queuedBytes += rest.reduce((sum, buffer) => sum + buffer.length, 0);
    }
  }

  /** Starts a write after the flush interval, or in this event-loop turn's check phase when `now` is set. */
  #schedule(now: boolean): void {
    if (this.#writing || this.#immediate) {
      return;
    }
    if (now) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#immediate = true;
      setImmediate(() => {
        this.#immediate = false;
        this.#writeQueued();
      });
      return;
    }
    if (this.#timer === undefined) {
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.#writeQueued();
      }, FLUSH_INTERVAL_MS);
      // Exit writes what is left (see logDestination), so a pending write need not keep the process alive.
      this.#timer.unref();
    }
  }

  #writeQueued(): void {
    if (this.#writing) {
      return;
    }
    this.#queueDropReport();
    this.#takeChunk();
    if (this.#queued.length === 0) {
      this.#settleWaiters();
      return;
    }
    const buffers = this.#takeQueued();
    const bytes = buffers.reduce((sum, buffer) => sum + buffer.length, 0);
    this.#writing = true;
    this.#inFlightBytes = bytes;
    writev(this.#fd, buffers, (error, written) => {
      this.#writing = false;
      this.#inFlightBytes = 0;
      if (error?.code === 'EAGAIN') {
        // A non-blocking pipe whose reader is behind: retry the same bytes shortly.
        this.#requeueUnwritten(buffers, 0);
        setTimeout(() => this.#writeQueued(), RETRY_DELAY_MS).unref();
        return;
      }
      if (error) {
        // The destination rejected the bytes (a closed pipe, a full disk): they are given up and later lines are tried.
        this.#failedWrites++;
      } else {
        this.#requeueUnwritten(buffers, written);
      }
      if (this.#drainWaiters.length > 0 || this.#queuedBytes + this.#offset >= FLUSH_BYTES) {
        this.#writeQueued();
      } else if (this.#queuedBytes + this.#offset > 0 || this.#droppedSinceReport > 0) {
        this.#schedule(false);
      }
    });
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

function writev(fd: number, buffers: Buffer[], callback: (error: NodeJS.ErrnoException | null, written: number) => void): void {
  if (buffers.length === 1) {
    writeAsync(fd, buffers[0], 0, buffers[0].length, null, callback);
  } else {
    writevAsync(fd, buffers, null, callback);
  }
}
