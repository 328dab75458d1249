/**
 * Host side of the aggregation worker (main thread): starts the worker on the shared ring,
 * forwards batches, answers flush/stats/stop, and keeps it alive.
 *
 * Liveness: the worker bumps the ring's heartbeat on every loop (at least every idleMs while
 * idle). The host samples it every checkMs; the worker "is draining" when the heartbeat
 * advanced within hangMs or the ring is empty. A worker that exits, throws, or stops
 * draining is terminated and a new one attached to the SAME ring, so every reading still in
 * the ring is aggregated by the successor.
 *
 * What a restart loses, exactly: the readings the dead worker had already taken out of the
 * ring but not yet posted in a batch — its open windows, its closed windows still waiting
 * to be coalesced, and (raw mode) its unsent raw readings. Nothing in the ring, nothing
 * posted. Its statistics count as last reported (batch messages carry no stats; the host
 * keeps the last stats() answer of each generation).
 */
import { MessageChannel, type MessagePort, type Worker } from 'node:worker_threads';
import { startModuleWorker } from '../ops/worker-module.js';
import { RingBuffer } from '../queue/ring-buffer.js';
import type {
  AggregationSettings,
  AggregatorStats,
  SensorSpec,
  SensorStats,
} from './aggregator.js';
import type { ControlMessage, WorkerInit, WorkerMessage } from './protocol.js';

export interface AggregatorOptions extends AggregationSettings {
  ring: SharedArrayBuffer;
  /** Index = sensorIndex in the ring records. null/undefined for an unused index. */
  sensors: Array<SensorSpec | null | undefined>;
  onBatch?: (batch: EncodedBatch) => void;
  onError?: (err: Error) => void;
  /** Liveness sampling period (default 1000 ms). */
  checkMs?: number;
  /** No heartbeat for this long with data in the ring = hung (default 10 000 ms). */
  hangMs?: number;
  /** Longest idle sleep of the worker (default 100 ms). */
  idleMs?: number;
  /** Accept injectFault() (tests only). */
  faultInjection?: boolean;
}

export interface EncodedBatch {
  /** UTF-8 JSON `{"windows":[…]}` (+ `"readings"` when raw), from a transferred buffer. */
  body: Uint8Array;
  windows: number;
  readings: number;
}

export interface WorkerStats extends AggregatorStats {
  restarts: number;
  /** Batches received by the host over all worker generations. */
  batchesReceived: number;
  /** V8 heap in use by the live worker thread. */
  heapUsedBytes: number;
}

interface WorkerAnswer {
  stats?: AggregatorStats;
  heapUsedBytes?: number;
}

interface Pending {
  msg: ControlMessage & { id: number };
  resolve: (answer: WorkerAnswer) => void;
  reject: (err: Error) => void;
}

const MAX_RESTART_DELAY_MS = 30_000;

export class AggregationWorker {
  private worker!: Worker;
  private control!: MessagePort;
  private readonly ring: RingBuffer;
  private sensors: Array<SensorSpec | null | undefined>;
  private readonly batchHandlers: Array<(b: EncodedBatch) => void> = [];
  private readonly errorHandlers: Array<(e: Error) => void> = [];
  private readonly pending = new Map<number, Pending>();
  private readonly faultAcks = new Map<number, () => void>();
  private nextId = 1;
  private stopping = false;
  /** stop() in progress: an exit now is expected, not a failure. */
  private closing = false;
  private restarting = false;
  private restartCount = 0;
  private consecutiveFailures = 0;
  private startedAt = 0;
  private lastBeat = -1;
  private lastBeatAt = performance.now();
  private readonly timer: NodeJS.Timeout;
  private readonly hangMs: number;
  private batchesReceived = 0;
  /** Stats of dead generations, as last reported. */
  private carried: AggregatorStats | undefined;
  private lastStats: AggregatorStats | undefined;
  private exited: Promise<void> = Promise.resolve();

  private constructor(private readonly options: AggregatorOptions) {
    this.ring = RingBuffer.attach(options.ring);
    this.sensors = [...options.sensors];
    this.hangMs = options.hangMs ?? 10_000;
    if (options.onBatch) this.batchHandlers.push(options.onBatch);
    if (options.onError) this.errorHandlers.push(options.onError);
    this.spawn();
    this.timer = setInterval(() => this.checkLiveness(), options.checkMs ?? 1000);
    this.timer.unref();
  }

  static start(options: AggregatorOptions): AggregationWorker {
    return new AggregationWorker(options);
  }

  onBatch(handler: (batch: EncodedBatch) => void): void {
    this.batchHandlers.push(handler);
  }

  onError(handler: (err: Error) => void): void {
    this.errorHandlers.push(handler);
  }

  /** Worker restarts so far (crash, exit or hang). */
  get restarts(): number {
    return this.restartCount;
  }

  /** Heartbeat advanced within hangMs, or nothing to drain. */
  isDraining(): boolean {
    this.sampleHeartbeat();
    if (this.restarting) return this.ring.counters().fill === 0;
    return performance.now() - this.lastBeatAt < this.hangMs || this.ring.counters().fill === 0;
  }

  /** Closes every open window now and resolves once its batches reached onBatch. */
  async flush(): Promise<void> {
    await this.request('flush');
  }

  /**
   * New sensor list (SIGHUP reload). Indices of unchanged sensors must stay, and an index is
   * never reused for another sensor: the list applies to readings the worker drains after it
   * received it (readings already in the ring are drained first). Resolves once applied —
   * await it before sampling new sensors, or their first readings may meet the old list.
   */
  async updateSensors(sensors: Array<SensorSpec | null | undefined>): Promise<void> {
    this.sensors = [...sensors];
    // A stopped worker has no list to update: never reject (callers may not await this).
    await this.request('sensors').catch(() => undefined);
  }

  /** `collectGarbage` (with --expose-gc only) makes heapUsedBytes exclude garbage. */
  async stats(options: { collectGarbage?: boolean } = {}): Promise<WorkerStats> {
    const live = await this.request('stats', options.collectGarbage === true);
    this.lastStats = live.stats;
    return {
      ...addStats(this.carried, live.stats),
      restarts: this.restartCount,
      batchesReceived: this.batchesReceived,
      heapUsedBytes: live.heapUsedBytes ?? 0,
    };
  }

  /** Stops the worker (call flush() first to emit open windows). */
  async stop(): Promise<void> {
    if (this.stopping || this.closing) return this.exited;
    this.closing = true;
    clearInterval(this.timer);
    try {
      await Promise.race([this.request('stop'), timeout(5000)]);
    } catch {
      // A worker that cannot answer is terminated all the same.
    }
    this.stopping = true;
    for (const p of this.pending.values()) p.reject(new Error('aggregation worker stopped'));
    this.pending.clear();
    await this.worker.terminate();
    await this.exited;
  }

  /**
   * Tests/diagnostics only (options.faultInjection): make the worker throw, or block it for
   * `ms`. For a hang, resolves once the worker is about to block.
   */
  async injectFault(kind: 'crash' | 'hang', ms?: number): Promise<void> {
    const id = this.nextId++;
    if (kind === 'crash') {
      this.send({ type: 'fault', id, kind, ms });
      return;
    }
    // Not kept in `pending`: a successor must not be told to hang again.
    await new Promise<void>((resolve) => {
      this.faultAcks.set(id, resolve);
      this.send({ type: 'fault', id, kind, ms });
    });
  }

  /** Terminates the current worker as if it died (tests/diagnostics). */
  async killWorker(): Promise<void> {
    await this.worker.terminate();
  }

  // ---------------------------------------------------------------- internals

  private spawn(): void {
    const channel = new MessageChannel();
    const o = this.options;
    const settings: AggregationSettings = {
      windowMs: o.windowMs,
      stuckCount: o.stuckCount,
      spikeZ: o.spikeZ,
      spikeHistory: o.spikeHistory,
      maxBytes: o.maxBytes,
      maxDelayMs: o.maxDelayMs,
      raw: o.raw,
      graceMs: o.graceMs,
      coalesceMs: o.coalesceMs,
    };
    const init: WorkerInit = {
      ring: o.ring,
      sensors: this.sensors,
      settings,
      control: channel.port2,
      idleMs: o.idleMs ?? 100,
      faultInjection: o.faultInjection ?? false,
    };
    const worker = startModuleWorker(import.meta.url, 'worker', {
      workerData: init,
      transferList: [channel.port2],
      name: 'aggregation',
    });
    this.worker = worker;
    this.control = channel.port1;
    this.startedAt = performance.now();
    this.lastBeatAt = performance.now();
    let resolveExit!: () => void;
    this.exited = new Promise((r) => (resolveExit = r));
    worker.on('message', (m: WorkerMessage) => this.receive(m));
    worker.on('error', (err) => this.fail(err));
    worker.on('exit', (code) => {
      resolveExit();
      if (this.worker !== worker || this.stopping || this.closing) return;
      this.fail(new Error(`aggregation worker exited with code ${code}`));
      this.restart().catch((err: Error) => this.fail(err));
    });
    // Requests the dead worker never answered go to its successor.
    for (const p of this.pending.values()) this.send(p.msg);
  }

  private receive(m: WorkerMessage): void {
    if (m.type === 'batch') {
      this.batchesReceived++;
      const batch: EncodedBatch = {
        body: new Uint8Array(m.body),
        windows: m.windows,
        readings: m.readings,
      };
      for (const h of this.batchHandlers) h(batch);
      return;
    }
    const ack = this.faultAcks.get(m.id);
    if (ack) {
      this.faultAcks.delete(m.id);
      ack();
      return;
    }
    const p = this.pending.get(m.id);
    if (!p) return;
    this.pending.delete(m.id);
    p.resolve({ stats: m.stats, heapUsedBytes: m.heapUsedBytes });
  }

  private request(
    type: 'flush' | 'stats' | 'stop' | 'sensors',
    collectGarbage = false,
  ): Promise<WorkerAnswer> {
    if (this.stopping) return Promise.reject(new Error('aggregation worker stopped'));
    const id = this.nextId++;
    const msg: ControlMessage & { id: number } =
      type === 'sensors'
        ? { type, id, sensors: this.sensors }
        : type === 'stats'
          ? { type, id, collectGarbage }
          : { type, id };
    return new Promise((resolve, reject) => {
      this.pending.set(id, { msg, resolve, reject });
      if (!this.restarting) this.send(msg);
    });
  }

  private send(msg: ControlMessage): void {
    if (this.restarting || this.stopping) return;
    this.control.postMessage(msg);
    this.ring.wakeConsumer();
  }

  private fail(err: Error): void {
    if (this.stopping) return;
    for (const h of this.errorHandlers) {
      try {
        h(err);
      } catch {
        // A failing error handler must not stop the restart.
      }
    }
  }

  private sampleHeartbeat(): void {
    const beat = this.ring.heartbeat();
    if (beat !== this.lastBeat) {
      this.lastBeat = beat;
      this.lastBeatAt = performance.now();
    }
  }

  private checkLiveness(): void {
    if (this.stopping || this.restarting) return;
    if (this.isDraining()) {
      if (performance.now() - this.startedAt > 10_000) this.consecutiveFailures = 0;
      return;
    }
    this.fail(
      new Error(`aggregation worker stopped draining (no heartbeat for ${this.hangMs} ms)`),
    );
    this.restart().catch((err: Error) => this.fail(err));
  }

  private async restart(): Promise<void> {
    if (this.restarting || this.stopping) return;
    this.restarting = true;
    this.restartCount++;
    this.consecutiveFailures++;
    const old = this.worker;
    // Single consumer: the successor may touch the ring only once the old one is gone.
    await old.terminate().catch(() => undefined);
    await this.exited;
    if (this.lastStats) this.carried = addStats(this.carried, this.lastStats);
    this.lastStats = undefined;
    this.control.close();
    const delay = Math.min(MAX_RESTART_DELAY_MS, 50 * 2 ** (this.consecutiveFailures - 1));
    if (this.consecutiveFailures > 1) await timeout(delay).catch(() => undefined);
    this.restarting = false;
    if (this.stopping) return;
    this.spawn();
  }
}

function timeout(ms: number): Promise<never> {
  return new Promise((_, reject) => {
    const t = setTimeout(() => reject(new Error('timeout')), ms);
    t.unref();
  });
}

function addStats(a: AggregatorStats | undefined, b: AggregatorStats | undefined): AggregatorStats {
  const empty: AggregatorStats = {
    readings: 0,
    faults: 0,
    unknownSensor: 0,
    late: 0,
    periodsSkipped: 0,
    clockSteps: 0,
    windowsEmitted: 0,
    batchesEmitted: 0,
    sensors: [],
  };
  const x = a ?? empty;
  const y = b ?? empty;
  const byId = new Map<string, SensorStats>();
  for (const s of [...x.sensors, ...y.sensors]) {
    const prev = byId.get(s.id);
    if (!prev) {
      byId.set(s.id, { ...s, flags: { ...s.flags } });
      continue;
    }
    prev.readings += s.readings;
    prev.faults += s.faults;
    prev.flags.range += s.flags.range;
    prev.flags.stuck += s.flags.stuck;
    prev.flags.spike += s.flags.spike;
    prev.flags.powerOn += s.flags.powerOn;
  }
  return {
    readings: x.readings + y.readings,
    faults: x.faults + y.faults,
    unknownSensor: x.unknownSensor + y.unknownSensor,
    late: x.late + y.late,
    periodsSkipped: x.periodsSkipped + y.periodsSkipped,
    clockSteps: x.clockSteps + y.clockSteps,
    windowsEmitted: x.windowsEmitted + y.windowsEmitted,
    batchesEmitted: x.batchesEmitted + y.batchesEmitted,
    sensors: [...byId.values()],
  };
}
