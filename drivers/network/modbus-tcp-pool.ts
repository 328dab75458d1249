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
import { SensorError, type Logger, type ResultSink } from '../types.js';
import { BatchedWriter } from './batched-writer.js';
import {
  encodeMbapInto,
  MBAP_HEADER_LENGTH,
  MbapFramingError,
  MbapReader,
  type MbapFrameSink,
} from './mbap.js';

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

/** Turns a reply PDU (a view valid during the call) into what the request resolves with. */
export type ReplyDecoder<T> = (pdu: Buffer) => T;

/** A copy of the reply PDU, for callers that decode it themselves. */
const copyOfPdu: ReplyDecoder<Buffer> = (pdu) => Buffer.from(pdu);

/** A promise's resolvers as a request's sink, for request(); taken through one module executor. */
class PromisedReply<T> implements ResultSink<T> {
  readonly promise: Promise<T>;
  readonly measured: (value: T) => void;
  readonly failed: (err: unknown) => void;

  constructor() {
    this.promise = new Promise<T>(captureResolvers);
    this.measured = capturedResolve as (value: T) => void;
    this.failed = capturedReject!;
    capturedResolve = capturedReject = undefined;
  }
}

let capturedResolve: ((value: never) => void) | undefined;
let capturedReject: ((err: unknown) => void) | undefined;
function captureResolvers(resolve: (value: never) => void, reject: (err: unknown) => void) {
  capturedResolve = resolve;
  capturedReject = reject;
}

/** One request waiting for its reply, decoded in place by the caller's decoder. */
class Outstanding {
  /** dataChunks of its connection when it left: did anything arrive since? */
  chunksAtSend = 0;

  constructor(
    readonly unitId: number,
    readonly signal: AbortSignal,
    readonly decode: ReplyDecoder<unknown>,
    readonly sink: ResultSink<unknown>,
  ) {}
}

/** One TCP connection with its table of outstanding transactions. */
class Connection implements MbapFrameSink {
  readonly outstanding = new Map<number, Outstanding>();
  private readonly socket: net.Socket;
  private readonly reader = new MbapReader();
  readonly writer: BatchedWriter;
  private nextTid = 0;
  private closed = false;
  /** When the last byte arrived (or the connection was dialled). */
  private lastDataAt = performance.now();
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

  /** Send one request; its reply (or failure) goes to its sink, at once when it cannot leave. */
  send(pdu: Buffer, waiting: Outstanding): void {
    const { sink, signal, unitId } = waiting;
    if (this.closed) {
      sink.failed(new SensorError('DISCONNECTED', `${this.endpoint} closed`));
      return;
    }
    if (this.outstanding.size >= 0xffff) {
      sink.failed(
        new SensorError('PROTOCOL', `65535 transactions outstanding on ${this.endpoint}`),
      );
      return;
    }
    let tid = this.nextTid;
    while (this.outstanding.has(tid)) tid = (tid + 1) & 0xffff;
    this.nextTid = (tid + 1) & 0xffff;

    waiting.chunksAtSend = this.dataChunks;
    if (signal.aborted) {
      sink.failed(this.timedOut(unitId, waiting.chunksAtSend));
      return;
    }
    if (!this.watched.has(signal)) {
      const onAbort = () => {
        this.watched.delete(signal);
        this.abortAll(signal);
      };
      this.watched.set(signal, onAbort);
      signal.addEventListener('abort', onAbort, { once: true });
    }
    // Only a connection with work to do keeps the process alive.
    if (this.outstanding.size === 0) this.socket.ref();
    this.outstanding.set(tid, waiting);
    const at = this.writer.reserve(MBAP_HEADER_LENGTH + pdu.length);
    encodeMbapInto(this.writer.buffer, at, tid, unitId, pdu);
  }

  /** The signal aborted: forget every request it carried (a late reply is dropped). */
  private abortAll(signal: AbortSignal): void {
    for (const [tid, o] of this.outstanding) {
      if (o.signal !== signal) continue;
      this.outstanding.delete(tid);
      o.sink.failed(this.timedOut(o.unitId, o.chunksAtSend));
    }
    this.unrefWhenIdle();
  }

  private timedOut(unitId: number, chunksAtSend: number): SensorError {
    // Dead only if nothing at all arrived since this request left. Checked after the
    // poll phase (setImmediate), so replies that waited in the kernel while the event
    // loop was busy are counted first.
    setImmediate(() => {
      const silentMs = Math.round(performance.now() - this.lastDataAt);
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
    this.lastDataAt = performance.now();
    this.dataChunks++;
    try {
      this.reader.read(chunk, this);
    } catch (err) {
      if (!(err instanceof MbapFramingError)) throw err;
      // Lost framing: nothing after this point can be matched, so start over.
      this.fail(new SensorError('PROTOCOL', `garbage from ${this.endpoint}: ${err.message}`));
    }
  }

  /** @internal One reply frame (MbapFrameSink): settle its request with the decoded PDU. */
  onFrame(transactionId: number, unitId: number, pdu: Buffer): void {
    const waiting = this.outstanding.get(transactionId);
    if (!waiting || waiting.unitId !== unitId) {
      this.onUnmatched();
      return;
    }
    this.outstanding.delete(transactionId);
    this.unrefWhenIdle();
    let value: unknown;
    try {
      value = waiting.decode(pdu);
    } catch (err) {
      waiting.sink.failed(err);
      return;
    }
    waiting.sink.measured(value);
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
    for (const w of waiting) w.sink.failed(err);
    this.onGone(this, err);
  }
}

/**
 * A connection with a batch leaving this tick takes the next request unless it has more than
 * this many outstanding beyond the least busy connection: requests due together leave in one
 * write and come back in one burst instead of one per connection, and the connections still
 * even out from tick to tick.
 */
const STICKY_SLACK = 16;

/**
 * One host:port and its connections; a driver looks it up once (ModbusTcpPool.endpoint) and
 * sends every round through it.
 */
export class ModbusTcpEndpoint {
  readonly conns: Connection[] = [];
  /** The connection the last request went to. */
  private last: Connection | undefined;

  constructor(
    private readonly pool: ModbusTcpPool,
    readonly name: string,
    readonly host: string,
    readonly port: number,
  ) {}

  /**
   * Send one PDU to a unit and resolve with `decode` of the reply PDU (exception replies
   * included: interpreting the PDU is the decoder's job; what it throws rejects the
   * request). Rejects with SensorError TIMEOUT when the signal aborts first, DISCONNECTED
   * when the connection fails.
   */
  request<T>(
    unitId: number,
    pdu: Buffer,
    signal: AbortSignal,
    decode: ReplyDecoder<T>,
  ): Promise<T> {
    const reply = new PromisedReply<T>();
    this.requestInto(unitId, pdu, signal, decode, reply);
    return reply.promise;
  }

  /** request() with the decoded reply or the failure handed to `sink` instead of a promise. */
  requestInto<T>(
    unitId: number,
    pdu: Buffer,
    signal: AbortSignal,
    decode: ReplyDecoder<T>,
    sink: ResultSink<T>,
  ): void {
    this.pool.onRequest();
    const conn = this.connection();
    this.last = conn;
    conn.send(pdu, new Outstanding(unitId, signal, decode, sink as ResultSink<unknown>));
  }

  private connection(): Connection {
    const { conns } = this;
    if (conns.length < this.pool.perEndpoint) {
      // Dial lazily up to the limit; a new connection queues writes until it is up.
      for (const c of conns) if (c.outstanding.size === 0) return c;
      return this.pool.dial(this);
    }
    let best = conns[0];
    for (const c of conns) if (c.outstanding.size < best.outstanding.size) best = c;
    const last = this.last;
    if (
      last !== undefined &&
      last !== best &&
      last.writer.pending &&
      conns.includes(last) &&
      last.outstanding.size <= best.outstanding.size + STICKY_SLACK
    ) {
      return last;
    }
    return best;
  }
}

export class ModbusTcpPool {
  private readonly endpoints = new Map<string, ModbusTcpEndpoint>();
  /** @internal Connections per endpoint. */
  readonly perEndpoint: number;
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

  /** The handle of host:port, the same for every caller; a driver keeps it. */
  endpoint(host: string, port: number): ModbusTcpEndpoint {
    const name = `${host}:${port}`;
    let endpoint = this.endpoints.get(name);
    if (endpoint === undefined) {
      endpoint = new ModbusTcpEndpoint(this, name, host, port);
      this.endpoints.set(name, endpoint);
    }
    return endpoint;
  }

  /** endpoint(host, port).request() resolving with a copy of the reply PDU. */
  request(
    host: string,
    port: number,
    unitId: number,
    pdu: Buffer,
    signal: AbortSignal,
  ): Promise<Buffer> {
    return this.endpoint(host, port).request(unitId, pdu, signal, copyOfPdu);
  }

  stats(): ModbusTcpPoolStats {
    let inFlight = 0;
    let open = 0;
    for (const { conns } of this.endpoints.values()) {
      open += conns.length;
      for (const c of conns) inFlight += c.outstanding.size;
    }
    return { ...this.counts, inFlight, open };
  }

  /** Close every connection; outstanding requests fail with DISCONNECTED. */
  async close(): Promise<void> {
    this.closing = true;
    for (const endpoint of this.endpoints.values()) for (const c of [...endpoint.conns]) c.close();
  }

  /** @internal A new connection to `endpoint`. */
  dial(endpoint: ModbusTcpEndpoint): Connection {
    this.counts.connects++;
    const conn = new Connection(
      endpoint.name,
      endpoint.host,
      endpoint.port,
      this.connectTimeoutMs,
      this.silentAfterMs,
      this.onUnmatched,
      (gone, err) => this.forget(endpoint, gone, err),
    );
    endpoint.conns.push(conn);
    this.log?.debug({ endpoint: endpoint.name }, 'modbus tcp: connecting');
    return conn;
  }

  /** @internal Counted for every request sent. */
  readonly onRequest = (): void => {
    this.counts.requests++;
  };

  private readonly onUnmatched = (): void => {
    this.counts.unmatchedReplies++;
  };

  private forget(endpoint: ModbusTcpEndpoint, conn: Connection, err: SensorError): void {
    this.counts.disconnects++;
    const i = endpoint.conns.indexOf(conn);
    if (i >= 0) endpoint.conns.splice(i, 1);
    // Connections we close on shutdown are not news.
    if (!this.closing) {
      this.log?.warn({ endpoint: conn.endpoint, err: err.message }, 'modbus tcp: connection lost');
    }
  }
}
