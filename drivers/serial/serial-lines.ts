/**
 * One shared serial port per device path. Several sensors (Modbus slaves on one RS-485
 * line) use the same port: requests take turns through a priority-ordered Turns ("serial:<path>"), and
 * the wire stays quiet for the Modbus inter-frame silence (3.5 characters) between frames.
 *
 * The port is opened on first use through a serialport binding (the real one from
 * `serialport`'s `SerialPort.binding`, or the simulator's). When the adapter disappears the
 * stream closes with a DisconnectedError (`disconnected: true`); the line then answers
 * SensorError('DISCONNECTED') and reopens with exponential backoff while anyone uses it.
 */
import { performance } from 'node:perf_hooks';
import { SerialPortStream, type OpenOptions } from '@serialport/stream';
import { Turns, TurnsRegistry } from '../turns.js';
import { sleep } from '../time.js';
import { nullLogger, SensorError, type Logger } from '../types.js';
import { characterTimeMs, interFrameSilenceMs } from './modbus-rtu-frame.js';

/**
 * A serialport binding (BindingInterface of @serialport/bindings-interface, whose package
 * exports hide its types from NodeNext resolution, hence the detour through the stream).
 */
export type SerialBinding = OpenOptions['binding'];

export interface SerialLineOptions {
  path: string;
  baudRate: number;
  parity?: 'none' | 'even' | 'odd';
  dataBits?: 7 | 8;
  stopBits?: 1 | 2;
}

export interface SerialLinesOptions {
  /** Share turn-taking with other users of the same resource names. */
  turns?: TurnsRegistry;
  /** Reopen backoff after a disconnect or failed open: min · 2^(n-1), capped at max. */
  reopenMinMs?: number;
  reopenMaxMs?: number;
}

export interface SerialLineCounters {
  opens: number;
  openFailures: number;
  disconnects: number;
}

type LineState = 'closed' | 'opening' | 'open' | 'down';

interface PendingReply {
  chunks: Buffer[];
  length: number;
  wake: () => void;
}

export class SerialLine {
  readonly resource: string;
  readonly turns: Turns;
  /** Time to send one character, and the quiet time between frames (ms). */
  readonly characterMs: number;
  readonly silenceMs: number;
  readonly counters: SerialLineCounters = { opens: 0, openFailures: 0, disconnects: 0 };

  private state: LineState = 'closed';
  private port: SerialPortStream | undefined;
  private opening: Promise<void> | undefined;
  private lastError: Error | undefined;
  private users = 0;
  private reopenTimer: NodeJS.Timeout | undefined;
  private reopenAttempts = 0;
  /** performance.now() after which the wire is quiet. */
  private quietAt = 0;
  private pending: PendingReply | undefined;
  private readonly dataListeners = new Set<(chunk: Buffer) => void>();
  private readonly log: Logger;

  constructor(
    private readonly binding: SerialBinding,
    readonly options: Readonly<SerialLineOptions>,
    logger: Logger,
    turns: Turns,
    private readonly reopenMinMs: number,
    private readonly reopenMaxMs: number,
  ) {
    this.resource = `serial:${options.path}`;
    this.turns = turns;
    this.characterMs = characterTimeMs(options);
    this.silenceMs = interFrameSilenceMs(options);
    this.log = logger.child({ port: options.path });
  }

  get isOpen(): boolean {
    return this.state === 'open';
  }

  /** Start using the line; the first user opens the port. Pair with release(). */
  acquire(): void {
    this.users++;
    if (this.state === 'closed') this.startOpen();
  }

  /** Stop using the line; the last user closes the port and stops reopening. */
  async release(): Promise<void> {
    if (this.users === 0) return;
    this.users--;
    if (this.users === 0) await this.shutdown();
  }

  /** Resolves once the port is open; SensorError('DISCONNECTED') if it cannot be opened now. */
  async ready(signal?: AbortSignal): Promise<void> {
    if (this.state === 'opening' && this.opening) await abortable(this.opening, signal);
    if (this.state === 'open') return;
    const why = this.state === 'closed' ? 'not in use' : (this.lastError?.message ?? 'closed');
    throw new SensorError('DISCONNECTED', `${this.options.path}: ${why}`, {
      cause: this.lastError,
    });
  }

  /** Every received chunk, for line-oriented devices. Returns the unsubscribe function. */
  onData(listener: (chunk: Buffer) => void): () => void {
    this.dataListeners.add(listener);
    return () => this.dataListeners.delete(listener);
  }

  /**
   * One request/reply exchange, in turn with the other users of the line: waits for the
   * inter-frame silence, writes `request`, and collects bytes until `replyLength` (given
   * the bytes so far) says the reply is complete. Rejects with TIMEOUT when `signal`
   * aborts first, DISCONNECTED when the port goes away.
   */
  transact(
    request: Buffer,
    replyLength: (partial: Buffer) => number | undefined,
    signal: AbortSignal,
  ): Promise<Buffer> {
    return this.turns.run(async () => {
      if (signal.aborted) throw timeoutError(this.options.path, 0, signal);
      await this.ready(signal);
      // Node's timers can fire early against performance.now() (the loop caches its clock),
      // so check the silence again after each sleep (bounded).
      for (let i = 0; i < 20 && this.quietAt > performance.now() && !signal.aborted; i++)
        await sleep(this.quietAt - performance.now(), signal).catch(() => undefined);
      if (signal.aborted) throw timeoutError(this.options.path, 0, signal);
      await this.ready();

      const pending: PendingReply = { chunks: [], length: 0, wake: () => undefined };
      this.pending = pending;
      const onAbort = () => pending.wake();
      signal.addEventListener('abort', onAbort, { once: true });
      try {
        // A write stuck in a wedged adapter must not hold the line past the timeout.
        await abortable(this.write(request), signal).catch((err: unknown) => {
          throw signal.aborted ? timeoutError(this.options.path, 0, signal) : err;
        });
        // The bytes leave the UART after the OS took them; no reply can come earlier.
        this.quietAt = performance.now() + request.length * this.characterMs + this.silenceMs;
        for (let guard = 0; guard < 1_000_000; guard++) {
          const got = Buffer.concat(pending.chunks);
          const need = got.length > 0 ? replyLength(got) : undefined;
          if (need !== undefined && got.length >= need) {
            if (got.length > need)
              this.log.debug({ extra: got.length - need }, 'bytes after the reply ignored');
            return got.subarray(0, need);
          }
          if (signal.aborted) throw timeoutError(this.options.path, got.length, signal);
          if (this.state !== 'open') await this.ready();
          await new Promise<void>((r) => {
            pending.wake = r;
            if (signal.aborted || this.state !== 'open') r();
          });
        }
        throw new SensorError('PROTOCOL', 'reply never completed');
      } finally {
        signal.removeEventListener('abort', onAbort);
        if (this.pending === pending) this.pending = undefined;
        this.quietAt = Math.max(this.quietAt, performance.now() + this.silenceMs);
      }
    });
  }

  /** Close the port and stop reopening, whoever still uses it. */
  async shutdown(): Promise<void> {
    this.users = 0;
    clearTimeout(this.reopenTimer);
    this.reopenTimer = undefined;
    if (this.opening) await this.opening;
    const port = this.port;
    this.port = undefined;
    this.state = 'closed';
    this.pending?.wake();
    if (port?.isOpen) await new Promise<void>((r) => port.close(() => r()));
  }

  private write(data: Buffer): Promise<void> {
    const port = this.port;
    if (!port) return Promise.reject(new SensorError('DISCONNECTED', 'port closed'));
    return new Promise((resolve, reject) => {
      port.write(data, (err) =>
        err
          ? reject(new SensorError('DISCONNECTED', `write failed: ${err.message}`, { cause: err }))
          : resolve(),
      );
    });
  }

  private startOpen(): void {
    this.state = 'opening';
    const o = this.options;
    const port = new SerialPortStream({
      binding: this.binding,
      path: o.path,
      baudRate: o.baudRate,
      dataBits: o.dataBits ?? 8,
      parity: o.parity ?? 'none',
      stopBits: o.stopBits ?? 1,
      autoOpen: false,
    });
    // An 'error' event without a listener would crash the process.
    port.on('error', (err: Error) => this.log.warn({ err: err.message }, 'serial port error'));
    this.opening = new Promise<void>((resolve) => {
      port.open((err) => {
        this.opening = undefined;
        if (this.state !== 'opening') {
          // Shut down while opening.
          if (!err) port.close(() => undefined);
          return resolve();
        }
        if (err) {
          this.counters.openFailures++;
          this.lastError = err;
          this.state = 'down';
          this.log.warn({ err: err.message }, 'serial port open failed');
          this.scheduleReopen();
          return resolve();
        }
        this.counters.opens++;
        this.reopenAttempts = 0;
        this.port = port;
        this.state = 'open';
        port.on('data', (chunk: Buffer) => this.onChunk(chunk));
        port.on('close', (closeErr?: Error | null) => this.onClose(port, closeErr));
        this.log.info({ baudRate: o.baudRate }, 'serial port open');
        resolve();
      });
    });
  }

  private onChunk(chunk: Buffer): void {
    this.quietAt = performance.now() + this.silenceMs;
    const p = this.pending;
    if (p) {
      p.chunks.push(chunk);
      p.length += chunk.length;
      p.wake();
    }
    for (const l of this.dataListeners) l(chunk);
  }

  private onClose(port: SerialPortStream, err: Error | null | undefined): void {
    if (port !== this.port) return;
    this.port = undefined;
    const disconnected = (err as { disconnected?: boolean } | null | undefined)?.disconnected;
    this.state = this.users > 0 ? 'down' : 'closed';
    this.lastError = err ?? new Error('port closed');
    if (disconnected) this.counters.disconnects++;
    this.log.warn({ err: err?.message }, 'serial port closed; reopening with backoff');
    this.pending?.wake();
    this.scheduleReopen();
  }

  private scheduleReopen(): void {
    if (this.users === 0 || this.reopenTimer) {
      if (this.users === 0) this.state = 'closed';
      return;
    }
    this.reopenAttempts++;
    const delay = Math.min(this.reopenMaxMs, this.reopenMinMs * 2 ** (this.reopenAttempts - 1));
    this.reopenTimer = setTimeout(() => {
      this.reopenTimer = undefined;
      if (this.users > 0 && this.state === 'down') this.startOpen();
    }, delay);
    this.reopenTimer.unref();
  }
}

/** The serial ports of one agent, one SerialLine per path. */
export class SerialLines {
  private readonly lines = new Map<string, SerialLine>();
  private readonly turns: TurnsRegistry;

  constructor(
    private readonly binding: SerialBinding,
    private readonly logger: Logger = nullLogger,
    private readonly options: SerialLinesOptions = {},
  ) {
    this.turns = options.turns ?? new TurnsRegistry();
  }

  /** The line for this path; the first caller's settings win (a mismatch is logged). */
  line(o: SerialLineOptions): SerialLine {
    const existing = this.lines.get(o.path);
    if (existing) {
      const e = existing.options;
      if (
        e.baudRate !== o.baudRate ||
        (e.parity ?? 'none') !== (o.parity ?? 'none') ||
        (e.dataBits ?? 8) !== (o.dataBits ?? 8) ||
        (e.stopBits ?? 1) !== (o.stopBits ?? 1)
      ) {
        this.logger.warn(
          { port: o.path, kept: e, asked: o },
          'sensors on one serial port disagree on its settings; keeping the first',
        );
      }
      return existing;
    }
    const line = new SerialLine(
      this.binding,
      { ...o },
      this.logger,
      this.turns.get(`serial:${o.path}`),
      this.options.reopenMinMs ?? 250,
      this.options.reopenMaxMs ?? 10_000,
    );
    this.lines.set(o.path, line);
    return line;
  }

  async closeAll(): Promise<void> {
    await Promise.all([...this.lines.values()].map((l) => l.shutdown()));
  }
}

function timeoutError(path: string, received: number, signal: AbortSignal): SensorError {
  return new SensorError('TIMEOUT', `${path}: no complete reply in time (${received} B)`, {
    cause: signal.reason,
  });
}

function abortable<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  return new Promise<T>((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason as Error);
    const onAbort = () => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
