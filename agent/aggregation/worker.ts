/**
 * The aggregation worker thread: drains the ring in chunks into the Aggregator, ticks it
 * with the steady wall clock (the one the sampler labels readings with), and posts encoded batches (transferred, not copied) to the host.
 *
 * It runs one synchronous loop and never returns to its event loop, so control messages
 * come through a MessagePort polled with receiveMessageOnPort between chunks; the host
 * wakes a sleeping worker with ring.wakeConsumer() after posting one. Each loop bumps the
 * ring's heartbeat, which the host watches to detect a worker that stopped draining.
 *
 * Order matters for restarts: drain() frees ring slots only after the chunk was visited,
 * and batches are posted after that — so a reading is either still in the ring, or in this
 * worker's windows (lost if it dies: its open windows and closed-but-unposted ones), or in
 * a posted batch.
 */
import { parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import { RingBuffer } from '../queue/ring-buffer.js';
import { SteadyClock } from '../../drivers/steady-clock.js';
import { Aggregator } from './aggregator.js';
import type { ControlMessage, WorkerInit, WorkerMessage } from './protocol.js';

const CHUNK = 4096;
/** Chunks taken per loop before control messages are looked at again. */
const CHUNKS_PER_LOOP = 16;
/** Housekeeping cadence while busy: tick at most every this many ms. */
const TICK_MS = 50;

const init = workerData as WorkerInit;
const port = parentPort!;
const ring = RingBuffer.attach(init.ring);
const encoder = new TextEncoder();
const clock = new SteadyClock();

const post = (m: WorkerMessage, transfer?: ArrayBuffer[]) => port.postMessage(m, transfer);

type Batch = { text: string; windows: number; readings: number };

function postBatch(b: Batch): void {
  const bytes = encoder.encode(b.text);
  // encode() may return a view on a larger buffer; transfer exactly the body.
  const body =
    bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength
      ? (bytes.buffer as ArrayBuffer)
      : (bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer);
  post({ type: 'batch', body, windows: b.windows, readings: b.readings }, [body]);
}

/**
 * A batch can fill up while a chunk is being visited (byte budget reached mid-chunk). It is
 * held until drain() has freed the chunk's slots: a worker that dies in between must not
 * have posted windows whose readings its successor reads again (double counting).
 */
let inChunk = false;
const heldBatches: Batch[] = [];
const aggregator = new Aggregator(
  init.sensors,
  init.settings,
  (b) => {
    if (inChunk) heldBatches.push(b);
    else postBatch(b);
  },
  clock,
);
const visit = aggregator.add.bind(aggregator);
/**
 * Once drained, the worker sleeps until idleMs has passed or half the ring is unread, not
 * until the next push: readings are taken in batches, one wake-up per period instead of one
 * (and a futex call) per reading. A window closes graceMs after its end, on a tick that
 * follows a drain, so a reading waiting in the ring meanwhile still lands in its window.
 */
const FILL_MARK = Math.max(1, ring.capacity >>> 1);

function drainAll(maxChunks: number): number {
  let total = 0;
  for (let i = 0; i < maxChunks; i++) {
    inChunk = true;
    let n: number;
    try {
      n = ring.drain(CHUNK, visit);
    } finally {
      inChunk = false;
    }
    for (const b of heldBatches.splice(0)) postBatch(b);
    total += n;
    if (n < CHUNK) break;
  }
  return total;
}

/** Returns false when the worker should stop. */
function handle(msg: ControlMessage): boolean {
  switch (msg.type) {
    case 'flush':
      // Everything pushed before the flush request is in the ring now: take it all.
      drainAll(Math.ceil(ring.capacity / CHUNK) + 1);
      aggregator.flush();
      post({ type: 'done', id: msg.id });
      return true;
    case 'stats':
      // Only when the process runs with --expose-gc (benchmarks measuring heap growth).
      if (msg.collectGarbage) (globalThis as { gc?: () => void }).gc?.();
      post({
        type: 'done',
        id: msg.id,
        stats: aggregator.stats(),
        heapUsedBytes: process.memoryUsage().heapUsed,
      });
      return true;
    case 'sensors':
      // Readings pushed before the update belong to the old list.
      drainAll(Math.ceil(ring.capacity / CHUNK) + 1);
      aggregator.updateSensors(msg.sensors);
      post({ type: 'done', id: msg.id });
      return true;
    case 'stop':
      post({ type: 'done', id: msg.id, stats: aggregator.stats() });
      return false;
    case 'fault':
      if (!init.faultInjection) return true;
      if (msg.kind === 'crash') throw new Error('injected worker crash');
      post({ type: 'done', id: msg.id });
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, msg.ms ?? 60_000);
      return true;
  }
}

function run(): void {
  let lastTick = 0;
  for (;;) {
    ring.beat();
    for (let m = receiveMessageOnPort(init.control); m; m = receiveMessageOnPort(init.control)) {
      if (!handle(m.message as ControlMessage)) return;
    }
    const n = drainAll(CHUNKS_PER_LOOP);
    const now = performance.now();
    if (now - lastTick >= TICK_MS || n === 0) {
      aggregator.tick(clock.now());
      lastTick = now;
    }
    if (n < CHUNKS_PER_LOOP * CHUNK) ring.waitForFill(FILL_MARK, init.idleMs);
  }
}

run();
init.control.close();
