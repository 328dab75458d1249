/**
 * Pipeline benchmark: readings per second through ring → aggregation worker → encoded
 * batches, side by side in one run with
 *   (a) postMessage per reading into a worker doing the same aggregation, and
 *   (b) the bare SharedArrayBuffer ring with no aggregation (the practical limit);
 * plus loss accounting under each overflow policy and heap growth. Prints JSON.
 *
 *   npm run bench:pipeline               (tsx bench/pipeline.ts)
 *   BENCH_READINGS=4000000 BENCH_ROUNDS=3 BENCH_POSTMESSAGE_READINGS=300000 (the defaults)
 */
import os from 'node:os';
import v8 from 'node:v8';
import vm from 'node:vm';
import { once } from 'node:events';
import { AggregationWorker, type EncodedBatch } from '../agent/aggregation/aggregation-worker.js';
import type { AggregationSettings, SensorSpec } from '../agent/aggregation/aggregator.js';
import { RingBuffer, type OverflowPolicy } from '../agent/queue/ring-buffer.js';
import { sibling, spawnWorker } from './lib/spawn.js';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

const N = Number(process.env.BENCH_READINGS ?? 4_000_000);
const N_POSTMESSAGE = Number(process.env.BENCH_POSTMESSAGE_READINGS ?? 300_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const SENSORS = 100;
const CAPACITY = 65_536;
const WINDOW_MS = 10_000;

const sensors: SensorSpec[] = Array.from({ length: SENSORS }, (_, i) => ({
  id: `sensor-${i}`,
  driver: i % 2 === 0 ? 'tmp102' : 'ds18b20',
}));
const settings: AggregationSettings = {
  windowMs: WINDOW_MS,
  stuckCount: 30,
  spikeZ: 8,
  spikeHistory: 31,
  maxBytes: 256 * 1024,
  maxDelayMs: 10_000,
  raw: false,
};
// A day ahead, and 1 ms of sensor time per round of all sensors: windows close as readings
// flow (every 1,000,000 readings), never by the wall clock.
const T0 = Math.ceil((Date.now() + 86_400_000) / WINDOW_MS) * WINDOW_MS;
const NOISE = Float64Array.from({ length: 1024 }, (_, i) => 20 + Math.sin(i * 0.37) * 0.5);

const tOf = (i: number) => T0 + Math.floor(i / SENSORS);
const heapMb = () => {
  gc();
  return round(process.memoryUsage().heapUsed / 1048576, 2);
};
const round = (x: number, d = 0) => Math.round(x * 10 ** d) / 10 ** d;

function startAggregation(ring: RingBuffer) {
  const bodies: Uint8Array[] = [];
  const worker = AggregationWorker.start({ ring: ring.shared, sensors, ...settings });
  worker.onBatch((b: EncodedBatch) => bodies.push(b.body));
  worker.onError((e) => console.error('worker error:', e.message));
  return { worker, bodies };
}

const countIn = (bodies: Uint8Array[]) => {
  let readings = 0;
  let windows = 0;
  for (const b of bodies) {
    const j = JSON.parse(Buffer.from(b).toString('utf8')) as { windows: Array<{ count: number }> };
    windows += j.windows.length;
    for (const w of j.windows) readings += w.count;
  }
  return { readings, windows };
};

/** Pushes n readings (from index `from`), awaiting space under block. */
async function produce(ring: RingBuffer, from: number, n: number): Promise<void> {
  for (let i = from; i < from + n; i++) {
    const s = i % SENSORS;
    const v = NOISE[i & 1023];
    if (!ring.push(s, 0, tOf(i), v, 0)) {
      if (ring.policy !== 'block') continue;
      while (!ring.push(s, 0, tOf(i), v, 0)) await ring.waitForSpace(1000);
    }
  }
}

async function ringPipeline() {
  const ring = RingBuffer.create(CAPACITY, 'block');
  const { worker, bodies } = startAggregation(ring);
  await worker.flush(); // worker up and warm
  const heap: number[] = [heapMb()];
  const workerHeap: number[] = [
    round((await worker.stats({ collectGarbage: true })).heapUsedBytes / 1048576, 2),
  ];
  const t0 = performance.now();
  await produce(ring, 0, N);
  await worker.flush();
  const seconds = (performance.now() - t0) / 1000;
  // Heap after the run, and after a second run of the same size: it must not grow with N.
  heap.push(heapMb());
  workerHeap.push(round((await worker.stats({ collectGarbage: true })).heapUsedBytes / 1048576, 2));
  const counted = countIn(bodies);
  bodies.length = 0;
  await produce(ring, N, N);
  await worker.flush();
  heap.push(heapMb());
  workerHeap.push(round((await worker.stats({ collectGarbage: true })).heapUsedBytes / 1048576, 2));
  const again = countIn(bodies);
  const c = ring.counters();
  await worker.stop();
  return {
    readings: N,
    seconds: round(seconds, 3),
    readingsPerSec: round(N / seconds),
    windowsEmitted: counted.windows,
    readingsInWindows: counted.readings,
    lost: N - counted.readings,
    secondRun: { readingsInWindows: again.readings, lost: N - again.readings },
    ring: c,
    mainHeapMb: { before: heap[0], afterRun1: heap[1], afterRun2: heap[2] },
    workerHeapMb: { before: workerHeap[0], afterRun1: workerHeap[1], afterRun2: workerHeap[2] },
  };
}

async function postMessageBaseline() {
  const w = spawnWorker(sibling('postmessage-worker', import.meta.url), { sensors, settings });
  const t0 = performance.now();
  for (let i = 0; i < N_POSTMESSAGE; i++) {
    w.postMessage({ s: i % SENSORS, q: 0, t: tOf(i), v: NOISE[i & 1023], st: 0 });
  }
  w.postMessage('end');
  const [r] = (await once(w, 'message')) as [{ readings: number; windows: number }];
  const seconds = (performance.now() - t0) / 1000;
  await w.terminate();
  return {
    readings: N_POSTMESSAGE,
    seconds: round(seconds, 3),
    readingsPerSec: round(N_POSTMESSAGE / seconds),
    readingsAggregated: r.readings,
    windowsEmitted: r.windows,
  };
}

async function bareCopy() {
  const ring = RingBuffer.create(CAPACITY, 'block');
  const w = spawnWorker(sibling('copy-worker', import.meta.url), { sab: ring.shared, expected: N });
  await once(w, 'message'); // ready
  const t0 = performance.now();
  const done = once(w, 'message') as Promise<[{ received: number }]>;
  await produce(ring, 0, N);
  const [r] = await done;
  const seconds = (performance.now() - t0) / 1000;
  await w.terminate();
  return {
    readings: N,
    seconds: round(seconds, 3),
    readingsPerSec: round(N / seconds),
    received: r.received,
  };
}

/** Overflow on purpose (small ring, producer never waits): missing must equal dropped. */
async function lossAccounting(policy: OverflowPolicy) {
  const n = 2_000_000;
  const ring = RingBuffer.create(1024, policy);
  const { worker, bodies } = startAggregation(ring);
  await worker.flush();
  await produce(ring, 0, n);
  await worker.flush();
  const c = ring.counters();
  const { readings } = countIn(bodies);
  await worker.stop();
  return {
    pushed: n,
    aggregated: readings,
    missing: n - readings,
    dropped: c.dropped,
    missingEqualsDropped: n - readings === c.dropped,
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main() {
  const cpus = os.cpus();
  const machine = {
    nproc: os.availableParallelism(),
    cpuModel: cpus[0]?.model ?? 'unknown',
    node: process.version,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    loadAvgAtStart: os.loadavg().map((x) => round(x, 2)),
  };
  // Rounds alternate the pipeline and the bare copy, so each ratio compares neighbours in
  // time on a machine whose load changes; the medians are the headline figures.
  const rounds = [];
  for (let r = 0; r < ROUNDS; r++) {
    const pipeline = await ringPipeline();
    const copy = await bareCopy();
    rounds.push({
      pipeline,
      copy,
      ofBareCopy: round(pipeline.readingsPerSec / copy.readingsPerSec, 3),
    });
  }
  const postMessage = await postMessageBaseline();
  const pipelineRate = median(rounds.map((r) => r.pipeline.readingsPerSec));
  const copyRate = median(rounds.map((r) => r.copy.readingsPerSec));
  const ofBareCopy = median(rounds.map((r) => r.ofBareCopy));
  const lost = rounds.reduce((n, r) => n + r.pipeline.lost + r.pipeline.secondRun.lost, 0);
  const block = {
    pushed: rounds.reduce((n, r) => n + 2 * r.pipeline.readings, 0),
    lost,
    dropped: rounds.reduce((n, r) => n + r.pipeline.ring.dropped, 0),
  };
  const dropOldest = await lossAccounting('drop-oldest');
  const dropNewest = await lossAccounting('drop-newest');
  const result = {
    machine: { ...machine, loadAvgAtEnd: os.loadavg().map((x) => round(x, 2)) },
    config: {
      sensors: SENSORS,
      ringCapacity: CAPACITY,
      windowMs: WINDOW_MS,
      readingsPerRun: N,
      rounds: ROUNDS,
    },
    summary: {
      ringAggregationPerSec: pipelineRate,
      postMessagePerSec: postMessage.readingsPerSec,
      bareCopyPerSec: copyRate,
      vsPostMessage: round(pipelineRate / postMessage.readingsPerSec, 1),
      ofBareCopy,
    },
    targets: {
      atLeast5MPerSec: pipelineRate >= 5_000_000,
      atLeast10xPostMessage: pipelineRate >= 10 * postMessage.readingsPerSec,
      atLeastHalfOfBareCopy: ofBareCopy >= 0.5,
      zeroLossUnderBlock: block.lost === 0 && block.dropped === 0,
      dropCounterEqualsMissing: dropOldest.missingEqualsDropped && dropNewest.missingEqualsDropped,
      heapFlat: rounds.every(
        (r) =>
          r.pipeline.mainHeapMb.afterRun2 - r.pipeline.mainHeapMb.afterRun1 < 1 &&
          r.pipeline.workerHeapMb.afterRun2 - r.pipeline.workerHeapMb.afterRun1 < 1,
      ),
    },
    rounds,
    postMessagePerReading: postMessage,
    loss: { block, dropOldest, dropNewest },
  };
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
}

await main();
