/**
 * Shared Modbus TCP connections, one (or a few) per host:port, each carrying many
 * outstanding transactions at once, matched to their replies by MBAP transaction id.
 *
 * Why not modbus-serial's TCP client: it sends one request per connection and waits for its
 * reply before the next. Real installations put many units behind one TCP gateway; at
 * 10,000 sensors × 1 Hz with 100 ms latency ~1,000 requests are in flight at any moment,
 * which a serialising client cannot carry without ~1,000 connections. So the MBAP layer is
 * written here (mbap.ts), small and tested.
 *
 * Failure model: a request whose signal aborts is forgotten (a late reply is dropped and
 * counted) and the connection stays up. A refused, reset or closed connection fails every
 * request outstanding on it with DISCONNECTED and is forgotten; the next request dials again.
 */
import net from 'node:net';
import { SensorError, type Logger } from '../types.js';
import { BatchedWriter } from './batched-writer.js';
import { encodeMbap, MbapFramingError, MbapReader, type MbapFrame } from './mbap.js';

export interface ModbusTcpPoolOptions {
  /** Connections per host:port; requests go to the least busy one. Default 1. */
  connectionsPerEndpoint?: number;
  /** A connection that is not up after this long is dropped. Default 5000 ms. */
  connectTimeoutMs?: number;
  /**
   * A connection on which requests time out while nothing at all has arrived for this long
   * (and nothing since the timed-out request left) is taken for dead (gateway power-cycled
   * without a reset) and dialled again. One unit that never answers does not trigger it as
   * long as other replies arrive. Default 10 s.
   */
  silentAfterMs?: number;
  logger?: Logger;
}

export interface ModbusTcpPoolStats {
  /** Connections dialled (including failed attempts). */
  connects: number;
  /** Connections lost or refused. */
  disconnects: number;
  requests: number;
  /** Replies whose transaction had already timed out, or never existed. */
  unmatchedReplies: number;
  /** Requests outstanding right now, over all connections. */
  inFlight: number;
  /** Connections open or opening right now. */
  open: number;
}

interface Outstanding {
  unitId: number;
  signal: AbortSignal;
  /** dataChunks when the request left: did anything arrive since? */
  chunksAtSend: number;
  resolve(pdu: Buffer): void;
  reject(err: SensorError): void;
}

/** One TCP connection with its table of outstanding transactions. */
class Connection {
  readonly outstanding = new Map<number, Outstanding>();
  private readonly socket: net.Socket;
  private readonly reader = new MbapReader();
  private readonly writer: BatchedWriter;
  private nextTid = 0;
  private closed = false;
  /** When the last byte arrived (or the connection was dialled). */
  private lastDataAt = Date.now();
  /** Chunks received so far: tells whether anything arrived since a request was sent. */
  private dataChunks = 0;
  /**
   * Signals this connection listens to: one abort listener per signal, not per request.
   * The sampler lends one signal to many rounds in turn, and EventTarget's add/remove cost
   * ~350 bytes and a measurable share of a round's CPU each. A connection that fails takes
   * its listeners off, so a reused signal does not keep one per dead connection.
   */
  private readonly watched = new Map<AbortSignal, () => void>();

  constructor(
    readonly endpoint: string,
    host: string,
    port: number,
    connectTimeoutMs: number,
    private readonly silentAfterMs: number,
    private readonly onUnmatched: () => void,
    private readonly onGone: (conn: Connection, err: SensorError) => void,
  ) {
    // TCP keep-alive probes find a dead peer on an idle connection within about a minute.
    this.socket = net.connect({
      host,
      port,
      noDelay: true,
      keepAlive: true,
      keepAliveInitialDelay: 30_000,
    });
    this.writer = new BatchedWriter(this.socket);
    this.socket.setTimeout(connectTimeoutMs, () => {
      this.fail(new SensorError('TIMEOUT', `connect to ${endpoint} timed out`));
    });
    this.socket.once('connect', () => this.socket.setTimeout(0));
    this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    this.socket.on('error', (err: NodeJS.ErrnoException) => {
      this.fail(
        new SensorError('DISCONNECTED', `${err.code ?? 'error'} from ${endpoint}: ${err.message}`, {
          cause: err,
        }),
      );
    });
    this.socket.on('close', () => {
      this.fail(new SensorError('DISCONNECTED', `connection to ${endpoint} closed`));
    });
  }

  send(unitId: number, pdu: Buffer, signal: AbortSignal): Promise<Buffer> {
    if (this.closed)
      return Promise.reject(new SensorError('DISCONNECTED', `${this.endpoint} closed`));
    if (this.outstanding.size >= 0xffff)
      return Promise.reject(
        new SensorError('PROTOCOL', `65535 transactions outstanding on ${this.endpoint}`),
      );
    let tid = this.nextTid;
    while (this.outstanding.has(tid)) tid = (tid + 1) & 0xffff;
    this.nextTid = (tid + 1) & 0xffff;

    const chunksAtSend = this.dataChunks;
    if (signal.aborted) return Promise.reject(this.timedOut(unitId, chunksAtSend));
    if (!this.watched.has(signal)) {
      const onAbort = () => {
        this.watched.delete(signal);
        this.abortAll(signal);
      };
      this.watched.set(signal, onAbort);
      signal.addEventListener('abort', onAbort, { once: true });
    }
    return new Promise<Buffer>((resolve, reject) => {
      // Only a connection with work to do keeps the process alive.
      if (this.outstanding.size === 0) this.socket.ref();
      this.outstanding.set(tid, { unitId, signal, chunksAtSend, resolve, reject });
      this.writer.write(encodeMbap({ transactionId: tid, unitId, pdu }));
    });
  }

  /** The signal aborted: forget every request it carried (a late reply is dropped). */
  private abortAll(signal: AbortSignal): void {
    for (const [tid, o] of this.outstanding) {
      if (o.signal !== signal) continue;
      this.outstanding.delete(tid);
      o.reject(this.timedOut(o.unitId, o.chunksAtSend));
    }
    this.unrefWhenIdle();
  }

  private timedOut(unitId: number, chunksAtSend: number): SensorError {
    // Dead only if nothing at all arrived since this request left. Checked after the
    // poll phase (setImmediate), so replies that waited in the kernel while the event
    // loop was busy are counted first.
    setImmediate(() => {
      const silentMs = Date.now() - this.lastDataAt;
      if (this.dataChunks === chunksAtSend && silentMs > this.silentAfterMs) {
        this.fail(
          new SensorError('DISCONNECTED', `nothing from ${this.endpoint} for ${silentMs} ms`),
        );
      }
    });
    return new SensorError('TIMEOUT', `no reply from ${this.endpoint} unit ${unitId} in time`);
  }

  close(): void {
    this.fail(
      new SensorError('DISCONNECTED', `connection to ${this.endpoint} closed by the agent`),
    );
  }

  private onData(chunk: Buffer): void {
    this.lastDataAt = Date.now();
    this.dataChunks++;
    let frames: MbapFrame[];
    try {
      frames = this.reader.push(chunk);
    } catch (err) {
      if (!(err instanceof MbapFramingError)) throw err;
      // Lost framing: nothing after this point can be matched, so start over.
      this.fail(new SensorError('PROTOCOL', `garbage from ${this.endpoint}: ${err.message}`));
      return;
    }
    for (const f of frames) {
      const waiting = this.outstanding.get(f.transactionId);
      if (!waiting || waiting.unitId !== f.unitId) {
        this.onUnmatched();
        continue;
      }
      this.outstanding.delete(f.transactionId);
      this.unrefWhenIdle();
      waiting.resolve(f.pdu);
    }
  }

  private unrefWhenIdle(): void {
    if (this.outstanding.size === 0) this.socket.unref();
  }

  private fail(err: SensorError): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.destroy();
    for (const [signal, onAbort] of this.watched) signal.removeEventListener('abort', onAbort);
    this.watched.clear();
    const waiting = [...this.outstanding.values()];
    this.outstanding.clear();
    for (const w of waiting) w.reject(err);
    this.onGone(this, err);
  }
}

export class ModbusTcpPool {
  private readonly byEndpoint = new Map<string, Connection[]>();
  private readonly perEndpoint: number;
  private readonly connectTimeoutMs: number;
  private readonly silentAfterMs: number;
  private readonly log: Logger | undefined;
  private counts = { connects: 0, disconnects: 0, requests: 0, unmatchedReplies: 0 };
  private closing = false;

  constructor(options: ModbusTcpPoolOptions = {}) {
    this.perEndpoint = Math.max(1, options.connectionsPerEndpoint ?? 1);
    this.connectTimeoutMs = options.connectTimeoutMs ?? 5000;
    this.silentAfterMs = options.silentAfterMs ?? 10_000;
    this.log = options.logger;
  }

  /**
   * Send one PDU to a unit and resolve with the reply PDU (exception replies included:
   * interpreting the PDU is the caller's job). Rejects with SensorError TIMEOUT when the
   * signal aborts first, DISCONNECTED when the connection fails.
   */
  request(
    host: string,
    port: number,
    unitId: number,
    pdu: Buffer,
    signal: AbortSignal,
  ): Promise<Buffer> {
    this.counts.requests++;
    return this.connectionFor(host, port).send(unitId, pdu, signal);
  }

  stats(): ModbusTcpPoolStats {
    let inFlight = 0;
    let open = 0;
    for (const conns of this.byEndpoint.values()) {
      open += conns.length;
      for (const c of conns) inFlight += c.outstanding.size;
    }
    return { ...this.counts, inFlight, open };
  }

  /** Close every connection; outstanding requests fail with DISCONNECTED. */
  async close(): Promise<void> {
    const all = [...this.byEndpoint.values()].flat();
    this.byEndpoint.clear();
    this.closing = true;
    for (const c of all) c.close();
  }

  private connectionFor(host: string, port: number): Connection {
    const endpoint = `${host}:${port}`;
    let conns = this.byEndpoint.get(endpoint);
    if (!conns) this.byEndpoint.set(endpoint, (conns = []));
    if (conns.length < this.perEndpoint) {
      // Dial lazily up to the limit; a new connection queues writes until it is up.
      const least = conns.find((c) => c.outstanding.size === 0);
      if (least) return least;
      this.counts.connects++;
      const conn = new Connection(
        endpoint,
        host,
        port,
        this.connectTimeoutMs,
        this.silentAfterMs,
        () => this.counts.unmatchedReplies++,
        (gone, err) => this.forget(gone, err),
      );
      conns.push(conn);
      this.log?.debug({ endpoint }, 'modbus tcp: connecting');
      return conn;
    }
    let best = conns[0];
    for (const c of conns) if (c.outstanding.size < best.outstanding.size) best = c;
    return best;
  }

  private forget(conn: Connection, err: SensorError): void {
    this.counts.disconnects++;
    const conns = this.byEndpoint.get(conn.endpoint);
    if (conns) {
      const i = conns.indexOf(conn);
      if (i >= 0) conns.splice(i, 1);
      if (conns.length === 0) this.byEndpoint.delete(conn.endpoint);
    }
    // Connections we close on shutdown are not news.
    if (!this.closing) {
      this.log?.warn({ endpoint: conn.endpoint, err: err.message }, 'modbus tcp: connection lost');
    }
  }
}
