/**
 * Publish benchmark, in one run, against a real mosquitto on an ephemeral loopback port:
 *   1. end-to-end readings/s with raw publishing on: bodies encoded, spooled (SQLite WAL),
 *      published at QoS 1 by TelemetryPublisher, received and parsed by a subscriber;
 *      zero loss checked by seq and by counting readings;
 *   1b. the agent side alone (pre-encoded bodies, no subscriber): spool + publish + PUBACK;
 *   2. the naive way: one QoS 1 message per reading (same in-flight window of 16);
 *   3. an outage under steady load (10,000 readings/s) in this process: the replay rate of
 *      the backlog after the broker returns (its RSS includes the bench's own encoding);
 *   4. the agent's own process through a 60 s outage at 10,000 readings/s (bench/lib/
 *      agent-outage.ts): the RSS figure for issue #5, like with like, and zero loss.
 * Prints JSON. Default in-process outage 30 s (BENCH_OUTAGE_SEC); the agent's, 60 s
 * (BENCH_AGENT_OUTAGE_SEC). Phase 4 runs dist/agent/cli.js: `npm run build` first. The
 * in-process phases run the spool in its own thread as the agent does (BENCH_SPOOL=inline:
 * on the bench's main thread, for a side-by-side of the two).
 *
 *   npx tsx bench/publish.ts
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, createConnection } from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { Worker } from 'node:worker_threads';
import mqtt from 'mqtt';
import { configSchema } from '../agent/config/schema.js';
import { silentLogger } from '../agent/ops/logger.js';
import { TelemetryPublisher } from '../agent/publish/publisher.js';
import { Spool } from '../agent/publish/spool/spool.js';
import { SpoolClient } from '../agent/publish/spool/spool-client.js';
import type { SpoolPort } from '../agent/publish/spool/spool-port.js';
import { agentOutage } from './lib/agent-outage.js';
import { procCpuMs } from './lib/machine.js';
import { repoRoot } from './lib/repo-root.js';
import { sleep } from '../drivers/time.js';
import { subscriberProcess, until } from './lib/subscriber-process.js';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

const E2E_READINGS = Number(process.env.BENCH_READINGS ?? 3_000_000);
const READINGS_PER_BATCH = 2500; // ≈ 170 KB of JSON, under batch.maxBytes (256 KiB)
const NAIVE_READINGS = Number(process.env.BENCH_NAIVE_READINGS ?? 40_000);
const OUTAGE_SEC = Number(process.env.BENCH_OUTAGE_SEC ?? 30);
/** The agent-process outage (the RSS target's figure): 60 s, as issue #5 says. */
const AGENT_OUTAGE_SEC = Number(process.env.BENCH_AGENT_OUTAGE_SEC ?? 60);
const LOAD_READINGS_PER_SEC = 10_000;
const SENSORS = 100;
/** mqtt.inflight for the batched runs (config default 16). */
const INFLIGHT = Number(process.env.BENCH_INFLIGHT ?? 16);
/** The spool's synchronous mode (config spool.synchronous); full is the default. */
const SYNC = process.env.BENCH_SYNC === 'normal' ? 'normal' : 'full';
/**
 * Where the batched phase encodes its bodies: `worker` (default: a worker thread, as the
 * agent's aggregation worker does, so encoding goes on while the main thread waits in an
 * fsync) or `main` (the bench's main thread, with the publisher).
 */
const PRODUCER = process.env.BENCH_PRODUCER === 'main' ? 'main' : 'worker';
/**
 * Where the in-process phases run the spool: `thread` (default: its own worker thread through
 * SpoolClient, as the agent does) or `inline` (the Spool on the bench's main thread).
 */
const SPOOL_MODE = process.env.BENCH_SPOOL === 'inline' ? 'inline' : 'thread';

/**
 * Which phases run (comma-separated): batched, agentSide, naive, outage (in-process),
 * agentOutage (the agent's own process, the figure reported against the RSS target).
 * Default: all of them.
 */
const PHASES = new Set(
  (process.env.BENCH_PHASES ?? 'batched,agentSide,naive,outage,agentOutage').split(','),
);
const ROOT = repoRoot(import.meta.url);

const mb = (bytes: number) => Math.round((bytes / 1048576) * 10) / 10;

// --- a mosquitto of our own ------------------------------------------------------------

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
    });
  });
}
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = createConnection({ host: '127.0.0.1', port });
    c.once('connect', () => (c.destroy(), resolve(true)));
    c.once('error', () => resolve(false));
  });
}
async function mosquitto(dir: string) {
  const port = await freePort();
  const conf = join(dir, 'mosquitto.conf');
  writeFileSync(
    conf,
    [
      'user root',
      `listener ${port} 127.0.0.1`,
      'allow_anonymous true',
      'persistence true',
      `persistence_location ${dir}/`,
      'max_queued_messages 0',
      'max_inflight_messages 100',
      'message_size_limit 0',
    ].join('\n') + '\n',
  );
  let child: ChildProcess | undefined;
  const start = async () => {
    child = spawn('mosquitto', ['-c', conf], { stdio: 'ignore' });
    for (let i = 0; i < 400 && !(await accepts(port)); i++) await sleep(25);
  };
  const stop = async () => {
    const c = child;
    if (!c || c.exitCode !== null) return;
    const gone = new Promise((r) => c.once('exit', r));
    c.kill('SIGTERM');
    await gone;
  };
  await start();
  return { url: `mqtt://127.0.0.1:${port}`, start, stop, pid: () => child?.pid };
}

const ownCpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

// --- load ------------------------------------------------------------------------------

let clock = Date.now();
/** One batch body as the aggregation worker encodes it, raw readings included. */
function encodeBatch(n: number): Uint8Array {
  const readings = new Array<{ sensor: string; quantity: string; t: number; v: number }>(n);
  for (let i = 0; i < n; i++) {
    readings[i] = {
      sensor: `sensor-${i % SENSORS}`,
      quantity: 'temperature',
      t: clock++,
      v: Math.round((20 + Math.sin(i / 50) * 5) * 100) / 100,
    };
  }
  const windows = Array.from({ length: 4 }, (_, i) => ({
    sensor: `sensor-${i}`,
    quantity: 'temperature',
    unit: 'Cel',
    start: clock - 1000,
    end: clock,
    count: 25,
    min: 15,
    max: 25,
    mean: 20,
    stddev: 3.5,
    last: 21,
    faults: 0,
    flags: { range: 0, stuck: 0, spike: 0, powerOn: 0 },
  }));
  return Buffer.from(JSON.stringify({ windows, readings }));
}

interface Tally {
  /** Distinct telemetry seqs (or messages, for the naive topic). */
  seqs: number;
  messages: number;
  /** Readings in distinct messages. */
  readings: number;
  /** The subscriber process' CPU time so far. */
  cpuMs: number;
}

/**
 * The subscriber runs in its own process, as it would on another machine: it parses every
 * payload, dedupes by seq, counts readings, and reports its tally every 50 ms on stdout.
 */
const SUBSCRIBER_SOURCE = `
import mqtt from 'mqtt';
const [url, clientId, topic, mode] = process.argv.slice(1);
const seqs = new Set();
let messages = 0, readings = 0;
const client = await mqtt.connectAsync(url, { clientId, clean: false, reconnectPeriod: 200 });
client.on('error', () => undefined);
client.on('message', (_t, payload) => {
  messages++;
  const msg = JSON.parse(payload.toString('utf8'));
  if (mode === 'naive') { readings++; seqs.add(messages); return; }
  if (seqs.has(msg.seq)) return;
  seqs.add(msg.seq);
  readings += msg.readings ? msg.readings.length : 0;
});
await client.subscribeAsync(topic, { qos: 1 });
process.stdout.write('ready\\n');
const cpuMs = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };
setInterval(() => process.stdout.write(JSON.stringify({ seqs: seqs.size, messages, readings, cpuMs: cpuMs() }) + '\\n'), 50);
process.stdin.on('end', () => client.endAsync(true).then(() => process.exit(0)));
process.stdin.resume();
`;

async function subscriber(
  url: string,
  clientId: string,
  topic: string,
  mode: 'telemetry' | 'naive',
) {
  const tally: Tally = { seqs: 0, messages: 0, readings: 0, cpuMs: 0 };
  return subscriberProcess(SUBSCRIBER_SOURCE, [url, clientId, topic, mode], tally);
}

async function makePublisher(url: string, stateDir: string, gateway: string) {
  const mqttConfig = configSchema.parse({
    gateway: { id: gateway },
    mqtt: { url, inflight: INFLIGHT },
  }).mqtt;
  const options = { maxBytes: 256 << 20, maxAgeSec: 86400, synchronous: SYNC } as const;
  const spool: SpoolPort & { close(): unknown } =
    SPOOL_MODE === 'thread'
      ? await SpoolClient.open(stateDir, options, silentLogger)
      : Spool.open(stateDir, options, silentLogger);
  const publisher = new TelemetryPublisher({
    gateway,
    mqtt: mqttConfig,
    spool,
    logger: silentLogger,
    status: { version: 'bench', startedAt: Date.now(), sensors: [] },
  });
  return { spool, publisher, mqtt: mqttConfig };
}

// --- 1. batched, end to end -------------------------------------------------------------

async function batched(url: string, dir: string, brokerPid: number | undefined) {
  const batches = Math.ceil(E2E_READINGS / READINGS_PER_BATCH);
  const sub = await subscriber(url, 'bench-e2e', 'edge/e2e/telemetry', 'telemetry');
  const { spool, publisher } = await makePublisher(url, join(dir, 'e2e'), 'e2e');
  publisher.start();
  await until(() => publisher.stats().connected, 10_000);
  await sleep(100); // a fresh subscriber CPU figure
  const cpu0 = { own: ownCpuMs(), sub: sub.tally.cpuMs, broker: procCpuMs(brokerPid) };
  const t0 = performance.now();
  let bytes = 0;
  if (PRODUCER === 'worker') {
    bytes = await produceInWorker(batches, (body) => void publisher.submit(body), spool);
  } else {
    for (let i = 0; i < batches; i++) {
      const body = encodeBatch(READINGS_PER_BATCH);
      bytes += body.length;
      void publisher.submit(body);
      // Like the worker, the producer keeps going; yield so the publisher and subscriber run.
      if (spool.stats().depth > 32) await until(() => spool.stats().depth <= 16, 60_000);
      else await new Promise((r) => setImmediate(r));
    }
  }
  const complete = await until(() => sub.tally.seqs >= batches, 120_000);
  const seconds = (performance.now() - t0) / 1000;
  const ownMs = ownCpuMs() - cpu0.own;
  const brokerMs = procCpuMs(brokerPid) - cpu0.broker;
  await sleep(100); // the subscriber's last CPU report
  const subMs = sub.tally.cpuMs - cpu0.sub;
  const perBatch = (ms: number) => Math.round((ms / batches) * 100) / 100;
  const commits = spool.stats().commits;
  await publisher.stop({ drainMs: 2000 });
  await spool.close();
  await sub.close();
  return {
    readings: batches * READINGS_PER_BATCH,
    readingsPerBatch: READINGS_PER_BATCH,
    inflight: INFLIGHT,
    spoolSynchronous: SYNC,
    spool: SPOOL_MODE,
    producer: PRODUCER,
    batches,
    meanBatchBytes: Math.round(bytes / batches),
    seconds: Math.round(seconds * 100) / 100,
    readingsPerSec: Math.round((batches * READINGS_PER_BATCH) / seconds),
    mbPerSec: mb(bytes / seconds),
    received: sub.tally.readings,
    lost: batches * READINGS_PER_BATCH - sub.tally.readings,
    duplicateMessages: sub.tally.messages - sub.tally.seqs,
    complete,
    // Group commit: SQLite transactions (inserts and acks' deletes), one fsync each with FULL.
    spoolCommits: commits,
    batchesPerCommit: Math.round((batches / commits) * 100) / 100,
    // Where the 2 cores went: CPU ms per batch of each process (wall ms per batch for scale).
    wallMsPerBatch: perBatch(seconds * 1000),
    cpuMsPerBatch: {
      agentProcess: perBatch(ownMs),
      subscriber: perBatch(subMs),
      broker: perBatch(brokerMs),
    },
  };
}

/**
 * Encode the bodies in a worker thread (the same encodeBatch) and hand them over as
 * transferred buffers, as the aggregation worker does; at most 32 batches spooled or on
 * their way. Returns the bytes produced.
 */
async function produceInWorker(
  batches: number,
  submit: (body: Uint8Array) => void,
  spool: SpoolPort,
): Promise<number> {
  const source = `
    const { parentPort, workerData } = require('node:worker_threads');
    const __name = (f) => f;
    let clock = workerData.clock;
    const SENSORS = workerData.sensors;
    const encodeBatch = ${encodeBatch.toString()};
    parentPort.on('message', (n) => {
      for (let i = 0; i < n; i++) {
        const b = encodeBatch(workerData.perBatch);
        const ab = b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
        parentPort.postMessage(ab, [ab]);
      }
    });`;
  const worker = new Worker(source, {
    eval: true,
    workerData: { clock, sensors: SENSORS, perBatch: READINGS_PER_BATCH },
  });
  let requested = 0;
  let received = 0;
  let bytes = 0;
  worker.on('message', (ab: ArrayBuffer) => {
    received++;
    bytes += ab.byteLength;
    submit(new Uint8Array(ab));
  });
  while (received < batches) {
    const want = Math.min(batches - requested, 32 - spool.stats().depth - (requested - received));
    if (want > 0) {
      worker.postMessage(want);
      requested += want;
    }
    await sleep(1);
  }
  clock += batches * READINGS_PER_BATCH;
  await worker.terminate();
  return bytes;
}

// --- 1b. agent side alone: spool + publish + PUBACK, bodies encoded beforehand ---------

/**
 * The publisher's own capacity: pre-encoded bodies (encoding is the aggregation worker's
 * job), every batch spooled and published at QoS 1, the clock stops at the last PUBACK.
 * No subscriber: the broker acknowledges and discards.
 */
async function agentSide(url: string, dir: string, brokerPid: number | undefined) {
  const batches = Math.ceil(E2E_READINGS / READINGS_PER_BATCH);
  const bodies = Array.from({ length: 8 }, () => encodeBatch(READINGS_PER_BATCH));
  const { spool, publisher } = await makePublisher(url, join(dir, 'agent-side'), 'agent-side');
  publisher.start();
  await until(() => publisher.stats().connected, 10_000);
  const cpu0 = { own: ownCpuMs(), broker: procCpuMs(brokerPid) };
  const t0 = performance.now();
  for (let i = 0; i < batches; i++) {
    void publisher.submit(bodies[i % bodies.length]!);
    if (spool.stats().depth > 32) await until(() => spool.stats().depth <= 16, 60_000);
    else await new Promise((r) => setImmediate(r));
  }
  const complete = await until(() => publisher.stats().published >= batches, 120_000);
  const seconds = (performance.now() - t0) / 1000;
  const ownMs = ownCpuMs() - cpu0.own;
  const brokerMs = procCpuMs(brokerPid) - cpu0.broker;
  const commits = spool.stats().commits;
  await publisher.stop({ drainMs: 2000 });
  await spool.close();
  const perBatch = (ms: number) => Math.round((ms / batches) * 100) / 100;
  return {
    batches,
    seconds: Math.round(seconds * 100) / 100,
    ackedReadingsPerSec: Math.round((batches * READINGS_PER_BATCH) / seconds),
    complete,
    spoolCommits: commits,
    batchesPerCommit: Math.round((batches / commits) * 100) / 100,
    wallMsPerBatch: perBatch(seconds * 1000),
    cpuMsPerBatch: { agentProcess: perBatch(ownMs), broker: perBatch(brokerMs) },
  };
}

// --- 2. naive: one message per reading ---------------------------------------------------

async function naive(url: string) {
  const sub = await subscriber(url, 'bench-naive', 'edge/naive/reading', 'naive');
  const client = await mqtt.connectAsync(url, { clientId: 'bench-naive-pub' });
  const window = 16;
  let inflight = 0;
  let acked = 0;
  const t0 = performance.now();
  for (let i = 0; i < NAIVE_READINGS; i++) {
    while (inflight >= window) await new Promise((r) => setImmediate(r));
    inflight++;
    const reading = {
      sensor: `sensor-${i % SENSORS}`,
      quantity: 'temperature',
      t: clock++,
      v: 21.5,
    };
    client.publish('edge/naive/reading', JSON.stringify(reading), { qos: 1 }, () => {
      inflight--;
      acked++;
    });
  }
  await until(() => sub.tally.readings >= NAIVE_READINGS && acked >= NAIVE_READINGS, 120_000);
  const seconds = (performance.now() - t0) / 1000;
  await client.endAsync();
  await sub.close();
  return {
    readings: NAIVE_READINGS,
    seconds: Math.round(seconds * 100) / 100,
    readingsPerSec: Math.round(NAIVE_READINGS / seconds),
    received: sub.tally.readings,
  };
}

// --- 3. outage under steady load: RSS, then replay ---------------------------------------

async function outage(broker: Awaited<ReturnType<typeof mosquitto>>, dir: string) {
  const sub = await subscriber(broker.url, 'bench-outage', 'edge/outage/telemetry', 'telemetry');
  const { spool, publisher } = await makePublisher(broker.url, join(dir, 'outage'), 'outage');
  publisher.start();
  await until(() => publisher.stats().connected, 10_000);
  // Steady load: 10,000 readings/s as 4 batches of 2,500 per second.
  const periodMs = (READINGS_PER_BATCH / LOAD_READINGS_PER_SEC) * 1000;
  let submitted = 0;
  const load = setInterval(() => {
    void publisher.submit(encodeBatch(READINGS_PER_BATCH));
    submitted++;
  }, periodMs);
  await sleep(5000); // warm: caches, JIT, SQLite pages
  gc();
  const rssBefore = process.memoryUsage().rss;
  let rssMax = rssBefore;
  const rssSamples: number[] = [];
  await broker.stop();
  const outageStart = performance.now();
  const startSeq = spool.stats().lastSeq;
  while (performance.now() - outageStart < OUTAGE_SEC * 1000) {
    await sleep(500);
    const rss = process.memoryUsage().rss;
    rssSamples.push(mb(rss));
    rssMax = Math.max(rssMax, rss);
  }
  const outageSeconds = (performance.now() - outageStart) / 1000;
  // RSS saw-tooths with the producer's garbage; after a full GC it shows what was retained.
  gc();
  const rssAfterOutageGc = process.memoryUsage().rss;
  const tenth = Math.max(1, Math.floor(rssSamples.length / 10));
  const avg = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const rssTrend = avg(rssSamples.slice(-tenth)) - avg(rssSamples.slice(0, tenth));
  const backlog = spool.stats().depth;
  const backlogBytes = spool.stats().bytes;
  const accumulatedBatches = spool.stats().lastSeq - startSeq;
  await broker.start();
  const replayStart = performance.now();
  const arrivedBefore = submitted;
  await until(() => publisher.stats().connected, 60_000);
  const reconnectMs = Math.round(performance.now() - replayStart);
  // The backoff decides when we reconnect; the replay rate counts from the reconnect.
  const connectedAt = performance.now();
  const arrivedBeforeConnect = submitted;
  const backlogAtConnect = spool.stats().depth;
  const drained = await until(
    () => spool.stats().depth <= 1 && publisher.stats().inflight === 0,
    300_000,
  );
  const replaySeconds = (performance.now() - connectedAt) / 1000;
  const arrivedDuring = submitted - arrivedBeforeConnect;
  const arrivedDuringOutageAndReconnect = arrivedBeforeConnect - arrivedBefore;
  clearInterval(load);
  const lastSeq = spool.stats().lastSeq;
  await publisher.stop({ drainMs: 10_000 });
  await until(() => sub.tally.seqs >= lastSeq, 60_000);
  await spool.close();
  await sub.close();
  const accumulationRate = accumulatedBatches / outageSeconds;
  // Net drain: the backlog plus what kept arriving, over the time it took.
  const drainRate = (backlogAtConnect + arrivedDuring) / replaySeconds;
  return {
    loadReadingsPerSec: LOAD_READINGS_PER_SEC,
    outageSeconds: Math.round(outageSeconds * 10) / 10,
    backlogBatches: backlog,
    backlogMB: mb(backlogBytes),
    accumulationBatchesPerSec: Math.round(accumulationRate * 10) / 10,
    reconnectMs,
    arrivedWhileReconnecting: arrivedDuringOutageAndReconnect,
    backlogAtReconnect: backlogAtConnect,
    arrivedDuringReplay: arrivedDuring,
    replaySeconds: Math.round(replaySeconds * 100) / 100,
    drainBatchesPerSec: Math.round(drainRate * 10) / 10,
    drainVsAccumulation: Math.round((drainRate / accumulationRate) * 10) / 10,
    drained,
    rssBeforeMB: mb(rssBefore),
    rssMaxDuringOutageMB: mb(rssMax),
    rssGrowthMB: mb(rssMax - rssBefore),
    rssAfterOutageGcMB: mb(rssAfterOutageGc),
    rssGrowthAfterGcMB: mb(rssAfterOutageGc - rssBefore),
    rssTrendFirstToLastTenthMB: Math.round(rssTrend * 10) / 10,
    rssSampleRangeMB: [Math.min(...rssSamples), Math.max(...rssSamples)],
    rssSamplesMB: rssSamples,
    lastSeq,
    receivedDistinctSeqs: sub.tally.seqs,
    lostBatches: lastSeq - sub.tally.seqs,
  };
}

async function main() {
  const dir = mkdtempSync(join(os.tmpdir(), 'bench-publish-'));
  const broker = await mosquitto(dir);
  try {
    const e2e = PHASES.has('batched') ? await batched(broker.url, dir, broker.pid()) : undefined;
    const agent = PHASES.has('agentSide')
      ? await agentSide(broker.url, dir, broker.pid())
      : undefined;
    const naiveResult = PHASES.has('naive') ? await naive(broker.url) : undefined;
    const out = PHASES.has('outage') ? await outage(broker, dir) : undefined;
    const agentOut = PHASES.has('agentOutage')
      ? await agentOutage(broker, dir, process.env.BENCH_AGENT_ROOT ?? ROOT, AGENT_OUTAGE_SEC)
      : undefined;
    const result = {
      bench: 'publish',
      date: new Date().toISOString(),
      node: process.version,
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model,
      loadavg: os.loadavg().map((l) => Math.round(l * 100) / 100),
      batched: e2e,
      agentSide: agent,
      naive: naiveResult,
      batchedVsNaive:
        e2e && naiveResult
          ? Math.round((e2e.readingsPerSec / naiveResult.readingsPerSec) * 10) / 10
          : undefined,
      // In-process: the bench's own encoding garbage is in this RSS; kept for the replay rate.
      outage: out,
      // The agent's own process: the RSS figure for issue #5 (docs/benchmarks/publish.md).
      agentOutage: agentOut,
      targets: {
        e2eReadingsPerSec500k: e2e ? e2e.readingsPerSec >= 500_000 && e2e.lost === 0 : undefined,
        atLeast20xNaive:
          e2e && naiveResult ? e2e.readingsPerSec >= 20 * naiveResult.readingsPerSec : undefined,
        drains10xFaster: out ? out.drainVsAccumulation >= 10 : undefined,
        // Peak vs peak and median vs median of the agent process, broker up vs outage.
        rssGrowthAtMost10MB: agentOut
          ? agentOut.rssGrowthMaxMB <= 10 && agentOut.rssGrowthMedianMB <= 10
          : undefined,
        zeroLossAcrossOutage:
          out || agentOut
            ? (out ? out.lostBatches === 0 : true) && (agentOut ? agentOut.zeroLoss : true)
            : undefined,
      },
    };
    process.stdout.write(JSON.stringify(result, null, 2) + '\n');
  } finally {
    await broker.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
