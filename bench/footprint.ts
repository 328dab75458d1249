/**
 * bench/footprint — what the agent costs a small gateway: memory, CPU, disk writes and
 * start-up, for N network sensors at 1 Hz, side by side with the floor (node alone; node
 * plus one idle worker thread) and with Node-RED 4.x doing the same job, all in one run.
 *
 * Processes, so that every figure belongs to one of them alone: this orchestrator; a
 * mosquitto on an ephemeral loopback port; the simulated Modbus TCP gateway in its own
 * process (bench/lib/sensor-server-process.ts); one persistent subscriber process counting
 * payload bytes (bench/lib/telemetry-tally.ts); and the measured process — the built agent
 * as the service runs it (`node <AGENT_NODE_FLAGS> dist/agent/cli.js run --config FILE`,
 * NOTIFY_SOCKET set to a socket this bench listens on, the unit's environment), a floor
 * process, or Node-RED (bench/lib/node-red.ts, installed by npm into a scratch dir).
 *
 * Per agent run: start-up from exec to READY=1 and to the first telemetry message at the
 * subscriber; after the warm-up (counted from READY), one window starting just after a
 * batch arrived: RSS median and peak (VmRSS every 0.5 s), CPU % of one core and µs per
 * reading (/proc/PID/stat), write_bytes (/proc/PID/io) against the telemetry payload bytes
 * that arrived in the same window; then the broker is stopped for an outage window
 * (write_bytes against the payload of the batches created meanwhile, delivered after the
 * broker returns), and a graceful stop. Every seq must arrive (at-least-once, no gap).
 * Then, in this process, the agent's Spool class on one real body per N: bytes written per
 * batch stored as is and deflated (bench/lib/spool-writes.ts).
 *
 *   npm run bench:footprint                       # builds, then the full run (~15 min)
 *   BENCH_FOOTPRINT_QUICK=1 npx tsx bench/footprint.ts   # 3 s warm-up, 5 s windows
 *
 * Environment: BENCH_FOOTPRINT_WARMUP_SEC (20), _MEASURE_SEC (60), _OUTAGE_SEC (30),
 * _NS (10,100,1000), _NODE_RED_NS (10,100), _PARTS (floor,modules,agent,spool,node-red),
 * _SPOOL_ROUNDS (100),
 * _NODE_FLAGS (replace the agent's node flags), _NODE_ARGS (append to them),
 * _SPOOL_SYNC (full|normal), _START_SPREAD_MS (0, the agent's default; 1000 spreads the
 * reads over the second), _AGENTS (label=root[#node args],…: several agent builds or
 * node flags side by side, e.g. "before=/tmp/base,after=." or "s8=.,s1=.#--max-semi-space-size=1";
 * each root holds a built dist/ and node_modules), _REPEAT (runs of
 * each build per N, interleaved A B A B; default 1), _DIR (work dir on a disk, not tmpfs: write_bytes does not
 * count tmpfs), _NODE_RED_DIR (scratch install), _WRITE (1: docs/benchmarks/footprint.json
 * and .svg; default on for a full run with default settings, else bench/out/).
 * Prints the report as JSON on stdout and Markdown tables on stderr.
 */
import {
  existsSync,
  mkdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  statfsSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { AGENT_NODE_FLAGS } from '../agent/ops/node-flags.js';
import { SPOOL_FILE } from '../agent/publish/spool/sqlite-store.js';
import { sleep } from '../drivers/time.js';
import { spawnMosquitto, type MosquittoBroker } from '../test/helpers/mosquitto.js';
import { freePort } from '../test/helpers/ports.js';
import { machine } from './lib/machine.js';
import { SERVICE_ENV, spawnMeasured } from './lib/measured-process.js';
import { moduleCosts, type ModuleCost } from './lib/module-cost.js';
import {
  ensureNodeRed,
  NODE_RED_NODE_FLAGS,
  nodeRedFlows,
  startNodeRed,
  type NodeRedInstall,
} from './lib/node-red.js';
import { listenNotifySocket, readyAt as notifiedReadyAt } from '../test/helpers/notify-socket.js';
import { lineChartSvg } from './lib/plot.js';
import { procIo, procMemory, procSmaps, sampleWindow, type WindowStats } from './lib/proc-stats.js';
import { startSensorServerProcess, type SensorServerProcess } from './lib/sensor-server-process.js';
import { until } from './lib/subscriber-process.js';
import { spoolWrites, type SpoolWrites } from './lib/spool-writes.js';
import { gatewayTally, telemetryTally, type Tally } from './lib/telemetry-tally.js';
import {
  INTERVAL_MS,
  jobConfig,
  SENSOR_LATENCY_MS,
  SENSORS_PER_UNIT,
  WINDOW_MS,
} from './lib/footprint-job.js';
import { cleanups, load, r1, r2, runBench, watchLoad } from './lib/run-kit.js';

const env = process.env;
const QUICK = env.BENCH_FOOTPRINT_QUICK === '1';
const num = (name: string, dflt: number) => (env[name] ? Number(env[name]) : dflt);
const list = (name: string, dflt: number[]) =>
  env[name] ? env[name].split(',').filter(Boolean).map(Number) : dflt;
const WARMUP_SEC = num('BENCH_FOOTPRINT_WARMUP_SEC', QUICK ? 3 : 20);
const MEASURE_SEC = num('BENCH_FOOTPRINT_MEASURE_SEC', QUICK ? 5 : 60);
const OUTAGE_SEC = num('BENCH_FOOTPRINT_OUTAGE_SEC', QUICK ? 5 : 30);
const NS = list('BENCH_FOOTPRINT_NS', [10, 100, 1000]);
const NODE_RED_NS = list('BENCH_FOOTPRINT_NODE_RED_NS', [10, 100]);
const PARTS = new Set(
  (env.BENCH_FOOTPRINT_PARTS ?? 'floor,modules,agent,spool,node-red').split(','),
);
const FLAGS_REPLACED = env.BENCH_FOOTPRINT_NODE_FLAGS !== undefined;
const AGENT_FLAGS = [
  ...(FLAGS_REPLACED
    ? env.BENCH_FOOTPRINT_NODE_FLAGS!.split(/\s+/).filter(Boolean)
    : [...AGENT_NODE_FLAGS]),
  ...(env.BENCH_FOOTPRINT_NODE_ARGS ?? '').split(/\s+/).filter(Boolean),
];
/** The agent builds to measure, in the order they run for each N and repetition. */
const AGENT_BUILDS: AgentBuild[] = env.BENCH_FOOTPRINT_AGENTS
  ? env.BENCH_FOOTPRINT_AGENTS.split(',')
      .filter(Boolean)
      .map((spec) => {
        const eq = spec.indexOf('=');
        if (eq <= 0) throw new Error(`BENCH_FOOTPRINT_AGENTS: "${spec}" is not label=root`);
        const [root, args = ''] = spec.slice(eq + 1).split('#');
        return {
          label: spec.slice(0, eq),
          root: path.resolve(root),
          nodeArgs: args.split(/\s+/).filter(Boolean),
        };
      })
  : [{ label: 'edge-agent', root: '', nodeArgs: [] }];
const REPEAT = num('BENCH_FOOTPRINT_REPEAT', 1);
/**
 * sampling.startSpreadMs: the sensors' first reads spread over this many ms. 0 (all together)
 * is the agent's default; 1000 spreads them over the whole interval, at one wake-up each.
 */
const START_SPREAD_MS = num('BENCH_FOOTPRINT_START_SPREAD_MS', 0);
const SPOOL_SYNC = env.BENCH_FOOTPRINT_SPOOL_SYNC === 'normal' ? 'normal' : 'full';
/** Batches per spool-writes measurement (append, then ack, each its own commit). */
const SPOOL_ROUNDS = num('BENCH_FOOTPRINT_SPOOL_ROUNDS', QUICK ? 20 : 100);
/** Extra environment for the agent (and the floor), e.g. "MALLOC_ARENA_MAX=2". */
const AGENT_ENV: Record<string, string> = Object.fromEntries(
  (env.BENCH_FOOTPRINT_AGENT_ENV ?? '')
    .split(/\s+/)
    .filter(Boolean)
    .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
);
const DEFAULT_RUN =
  !QUICK &&
  !FLAGS_REPLACED &&
  !env.BENCH_FOOTPRINT_NODE_ARGS &&
  SPOOL_SYNC === 'full' &&
  Object.keys(AGENT_ENV).length === 0 &&
  !env.BENCH_FOOTPRINT_PARTS &&
  !env.BENCH_FOOTPRINT_AGENTS &&
  !env.BENCH_FOOTPRINT_START_SPREAD_MS &&
  !env.BENCH_FOOTPRINT_REPEAT &&
  !env.BENCH_FOOTPRINT_NS &&
  !env.BENCH_FOOTPRINT_NODE_RED_NS &&
  !env.BENCH_FOOTPRINT_OUTAGE_SEC &&
  !env.BENCH_FOOTPRINT_WARMUP_SEC &&
  !env.BENCH_FOOTPRINT_MEASURE_SEC;
const WRITE_DOCS = env.BENCH_FOOTPRINT_WRITE ? env.BENCH_FOOTPRINT_WRITE === '1' : DEFAULT_RUN;

const QUANTITIES = 2;
/** The floor is static: a shorter look is enough. */
const FLOOR_WARMUP_SEC = Math.min(WARMUP_SEC, 5);
const FLOOR_MEASURE_SEC = Math.max(5, Math.round(MEASURE_SEC / 3));

const self = fileURLToPath(import.meta.url);
const ROOT = path.resolve(
  path.dirname(self),
  self.includes(`${path.sep}dist${path.sep}`) ? '../..' : '..',
);
const WORK = env.BENCH_FOOTPRINT_DIR ?? path.join(ROOT, 'bench/out/footprint-work');
const NODE_RED_DIR =
  env.BENCH_FOOTPRINT_NODE_RED_DIR ?? path.join(os.tmpdir(), 'edge-agent-bench-node-red');
const TMPFS_MAGIC = 0x01021994;

interface AgentBuild {
  label: string;
  /** Repository root with a built dist/ (empty: this one). */
  root: string;
  /** Node flags after the agent's (a later V8 flag wins). */
  nodeArgs: string[];
}

// --- the floor ------------------------------------------------------------------------

const FLOOR_SOURCES = {
  node: 'setInterval(() => {}, 1 << 30);',
  'node + idle worker':
    "const { Worker } = require('node:worker_threads'); new Worker('setInterval(() => {}, 1 << 30)', { eval: true }); setInterval(() => {}, 1 << 30);",
};

async function floorRun(name: keyof typeof FLOOR_SOURCES) {
  const p = spawnMeasured([...AGENT_FLAGS, '-e', FLOOR_SOURCES[name]], {
    cwd: WORK,
    env: { ...process.env, ...AGENT_ENV },
  });
  await sleep(FLOOR_WARMUP_SEC * 1000);
  const w = await sampleWindow(p.pid, FLOOR_MEASURE_SEC);
  const rssByMapping = procSmaps(p.pid, realpathSync(process.execPath));
  await p.stop(5000);
  return { name, nodeFlags: AGENT_FLAGS, ...brief(w), rssByMapping, loadavg: load() };
}

function brief(w: WindowStats) {
  return {
    rssMedianMB: w.rssMedianMB,
    rssPeakMB: w.rssPeakMB,
    rssMinMB: w.rssMinMB,
    anonMedianMB: w.anonMedianMB,
    fileMedianMB: w.fileMedianMB,
    cpuPercent: w.cpuPercent,
    windowSeconds: w.seconds,
  };
}

// --- telemetry arithmetic ---------------------------------------------------------------

/** Distinct telemetry records (first arrival of each seq). */
function distinct(tally: Tally, gateway: string) {
  const seen = new Set<number>();
  return gatewayTally(tally, gateway).telemetry.filter(([seq]) => {
    if (seen.has(seq)) return false;
    seen.add(seq);
    return true;
  });
}

/** Payload bytes and readings of the messages that arrived within [from, to] (Date.now()). */
function arrivedBetween(tally: Tally, gateway: string, from: number, to: number) {
  const recs = distinct(tally, gateway).filter((r) => r[4] >= from && r[4] <= to);
  return {
    messages: recs.length,
    bytes: recs.reduce((a, r) => a + r[2], 0),
    readings: recs.reduce((a, r) => a + r[3], 0),
  };
}

/** The steady window's figures, computed the same way for the agent and for Node-RED. */
function steadyFigures(
  steady: WindowStats,
  published: ReturnType<typeof arrivedBetween>,
  sensors: number,
) {
  return {
    ...brief(steady),
    cpuMs: steady.cpuMs,
    cpuMainThreadMs: steady.cpuMainThreadMs,
    cpuOtherThreadsMs: steady.cpuOtherThreadsMs,
    mainWakeupsPerSec: steady.mainWakeupsPerSec,
    otherWakeupsPerSec: steady.otherWakeupsPerSec,
    nominalReadingsPerSec: sensors * QUANTITIES,
    // Window-based: exact when the window spans whole aggregation windows (the default).
    achievedReadingsPerSec: r1(published.readings / steady.seconds),
    cpuUsPerReading: r1((steady.cpuMs * 1000) / (sensors * QUANTITIES * steady.seconds)),
    writeBytes: steady.writeBytes,
    telemetryMessages: published.messages,
    telemetryPayloadBytes: published.bytes,
    writeBytesPerHourMB: r1(((steady.writeBytes / steady.seconds) * 3.6e3) / 1048576),
    payloadBytesPerHourMB: r1(((published.bytes / steady.seconds) * 3.6e3) / 1048576),
    rssSamplesMB: steady.rssSamplesMB,
  };
}

function seqGaps(tally: Tally, gateway: string) {
  const seqs = distinct(tally, gateway)
    .map((r) => r[0])
    .sort((a, b) => a - b);
  const max = seqs.length ? seqs[seqs.length - 1] : 0;
  return { maxSeq: max, distinct: seqs.length, missing: max - seqs.length };
}

async function nextTelemetry(tally: Tally, gateway: string, timeoutMs: number): Promise<boolean> {
  const n0 = gatewayTally(tally, gateway).telemetry.length;
  return until(() => gatewayTally(tally, gateway).telemetry.length > n0, timeoutMs);
}

function bytesOf(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

// --- the agent ------------------------------------------------------------------------

interface Shared {
  broker: MosquittoBroker;
  sensors: SensorServerProcess;
  tally: Tally;
}

async function agentRun(n: number, shared: Shared, build: AgentBuild = AGENT_BUILDS[0], rep = 0) {
  const { broker, tally } = shared;
  // The default build keeps the plain name: the spool part reads sample-fp-agent-<N>.json.
  const gateway = build.root ? `fp-agent-${build.label}-${n}-r${rep}` : `fp-agent-${n}`;
  const work = path.join(WORK, gateway);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const stateDir = path.join(work, 'state');
  const config = jobConfig({
    gateway,
    brokerUrl: broker.url,
    sensors: shared.sensors.sensors.slice(0, n),
    spool: { dir: stateDir, synchronous: SPOOL_SYNC },
    extra: { sampling: { startSpreadMs: START_SPREAD_MS } },
  });
  const configFile = path.join(work, 'config.json');
  writeFileSync(configFile, JSON.stringify(config));
  const cli = path.join(build.root || ROOT, 'dist/agent/cli.js');
  if (!existsSync(cli)) throw new Error(`${cli} not found: run \`npm run build\` first`);

  const notify = listenNotifySocket();
  cleanups.push(async () => notify.close());
  const load0 = load();
  const t0 = Date.now();
  // The unit's environment (systemd/edge-agent.service) and a notify socket like systemd's.
  const nodeFlags = [...AGENT_FLAGS, ...build.nodeArgs];
  const agent = spawnMeasured([...nodeFlags, cli, 'run', '--config', configFile], {
    cwd: work,
    env: {
      ...process.env,
      NOTIFY_SOCKET: notify.path,
      ...SERVICE_ENV,
      ...AGENT_ENV,
    },
  });
  const alive = () => agent.child.exitCode === null && agent.child.signalCode === null;
  if (!(await until(() => notifiedReadyAt(notify) !== undefined || !alive(), 60_000)) || !alive())
    throw new Error(`agent N=${n}: no READY=1 within 60 s: ${agent.output().slice(-2000)}`);
  const readyAt = notifiedReadyAt(notify)!;
  const gw = () => gatewayTally(tally, gateway);
  if (!(await until(() => gw().telemetry.length > 0, 60_000)))
    throw new Error(`agent N=${n}: no telemetry within 60 s: ${agent.output().slice(-2000)}`);
  const firstAt = gw().telemetry[0][4];
  const rssAtFirstBatchMB = r1((procMemory(agent.pid)?.rssKb ?? NaN) / 1024);

  await sleep(Math.max(0, readyAt + WARMUP_SEC * 1000 - Date.now()));
  // Start the window just after a batch, so it holds whole window cycles of writes.
  await nextTelemetry(tally, gateway, WINDOW_MS + 5000);
  await sleep(1000);
  const ws = Date.now();
  const steady = await sampleWindow(agent.pid, MEASURE_SEC);
  const we = Date.now();
  const published = arrivedBetween(tally, gateway, ws, we);
  const rssByMapping = procSmaps(agent.pid, realpathSync(process.execPath));
  const spoolFiles = {
    dbBytes: bytesOf(path.join(stateDir, SPOOL_FILE)),
    walBytes: bytesOf(path.join(stateDir, `${SPOOL_FILE}-wal`)),
  };

  let outage: Record<string, unknown> | null = null;
  if (OUTAGE_SEC > 0) {
    const os0 = Date.now();
    await broker.stop();
    const o = await sampleWindow(agent.pid, OUTAGE_SEC);
    const oe = Date.now();
    const io0 = procIo(agent.pid);
    await broker.restart();
    const tr = Date.now();
    // Caught up: a batch created after the outage arrived and no seq is missing.
    const caughtUp = await until(() => {
      const recs = distinct(tally, gateway);
      return recs.some((r) => r[1] > oe) && seqGaps(tally, gateway).missing === 0;
    }, 120_000);
    const replaySec = (Date.now() - tr) / 1000;
    const io1 = procIo(agent.pid);
    const created = distinct(tally, gateway).filter((r) => r[1] >= os0 && r[1] <= oe);
    const createdBytes = created.reduce((a, r) => a + r[2], 0);
    outage = {
      seconds: o.seconds,
      rssMedianMB: o.rssMedianMB,
      rssPeakMB: o.rssPeakMB,
      cpuPercent: o.cpuPercent,
      writeBytes: o.writeBytes,
      batchesCreated: created.length,
      payloadBytesCreated: createdBytes,
      writeAmplification: createdBytes > 0 ? r2(o.writeBytes / createdBytes) : null,
      caughtUp,
      replaySeconds: r1(replaySec),
      writeBytesDuringReplay: io0 && io1 ? io1.writeBytes - io0.writeBytes : null,
    };
  }

  const exit = await agent.stop(30_000);
  notify.close();
  const gaps = seqGaps(tally, gateway);
  const g = gw();
  return {
    agent: build.label,
    root: build.root || ROOT,
    repetition: rep,
    sensors: n,
    gateway,
    nodeFlags,
    spoolSynchronous: SPOOL_SYNC,
    startup: {
      readyMs: Math.round(readyAt - t0),
      firstTelemetryMs: Math.round(firstAt - t0),
      rssAtFirstBatchMB,
    },
    steady: {
      ...steadyFigures(steady, published, n),
      cancelledWriteBytes: steady.cancelledWriteBytes,
      writeAmplification: published.bytes > 0 ? r2(steady.writeBytes / published.bytes) : null,
      spoolFiles,
      rssByMapping,
    },
    outage,
    health: { messages: g.healthMessages, bytes: g.healthBytes },
    delivery: { ...gaps, duplicates: g.telemetry.length - gaps.distinct },
    exitCode: exit,
    loadavgStart: load0,
    loadavgEnd: load(),
  };
}

// --- Node-RED -------------------------------------------------------------------------

async function nodeRedRun(n: number, install: NodeRedInstall, shared: Shared) {
  const { tally } = shared;
  const gateway = `fp-node-red-${n}`;
  const userDir = path.join(WORK, gateway);
  rmSync(userDir, { recursive: true, force: true });
  const load0 = load();
  const t0 = Date.now();
  const red = startNodeRed({
    install,
    userDir,
    flows: nodeRedFlows({
      gateway,
      sensors: shared.sensors.sensors.slice(0, n),
      brokerPort: shared.broker.port,
      windowSec: WINDOW_MS / 1000,
    }),
    uiPort: await freePort(),
    env: { GATEWAY: gateway, TELEMETRY_TOPIC: `edge/${gateway}/telemetry` },
  });
  cleanups.push(() => red.stop());
  const alive = () => red.child.exitCode === null && red.child.signalCode === null;
  if (!(await until(() => red.startedAt() !== undefined || !alive(), 90_000)) || !alive())
    throw new Error(`Node-RED N=${n} did not start flows: ${red.output().slice(-2000)}`);
  const startedAt = red.startedAt()!;
  const gw = () => gatewayTally(tally, gateway);
  if (!(await until(() => gw().telemetry.length > 0, 60_000)))
    throw new Error(`Node-RED N=${n}: no telemetry within 60 s: ${red.output().slice(-2000)}`);
  const firstAt = gw().telemetry[0][4];
  await sleep(Math.max(0, startedAt + WARMUP_SEC * 1000 - Date.now()));
  await nextTelemetry(tally, gateway, WINDOW_MS + 5000);
  await sleep(1000);
  const ws = Date.now();
  const steady = await sampleWindow(red.pid, MEASURE_SEC);
  const we = Date.now();
  const published = arrivedBetween(tally, gateway, ws, we);
  const rssByMapping = procSmaps(red.pid, realpathSync(process.execPath));
  await red.stop();
  return {
    sensors: n,
    gateway,
    nodeFlags: NODE_RED_NODE_FLAGS,
    startup: { startedFlowsMs: startedAt - t0, firstTelemetryMs: firstAt - t0 },
    steady: {
      ...steadyFigures(steady, published, n),
      rssByMapping,
    },
    loadavgStart: load0,
    loadavgEnd: load(),
  };
}

/** One N's spool-writes figures: as the agent commits, deflated, one commit per batch, both. */
interface SpoolWritesRow {
  sensors: number;
  plain: SpoolWrites;
  deflated: SpoolWrites;
  oneCommit: SpoolWrites;
  deflatedOneCommit: SpoolWrites;
}

// --- report ---------------------------------------------------------------------------

type AgentResult = Awaited<ReturnType<typeof agentRun>>;
type NodeRedResult = Awaited<ReturnType<typeof nodeRedRun>>;
type FloorResult = Awaited<ReturnType<typeof floorRun>>;

function targets(agent: AgentResult[], floor: FloorResult[], nodeRed: NodeRedResult[]) {
  // With several builds (BENCH_FOOTPRINT_AGENTS), the targets are checked for the first.
  const at = (n: number) => agent.find((a) => a.sensors === n);
  const worker = floor.find((f) => f.name === 'node + idle worker');
  const red100 = nodeRed.find((r) => r.sensors === 100);
  const t: { target: string; measured: number | string | null; met: boolean | null }[] = [];
  const check = (target: string, measured: number | undefined | null, ok: (x: number) => boolean) =>
    t.push({
      target,
      measured: measured ?? null,
      met: measured === undefined || measured === null ? null : ok(measured),
    });
  const a100 = at(100);
  const a1000 = at(1000);
  check('steady RSS median at 100 sensors <= 70 MB', a100?.steady.rssMedianMB, (x) => x <= 70);
  if (a100 && worker)
    check(
      'steady RSS median at 100 sensors <= 16 MB above node + idle worker',
      r1(a100.steady.rssMedianMB - worker.rssMedianMB),
      (x) => x <= 16,
    );
  if (a100 && red100)
    check(
      "steady RSS median at 100 sensors below Node-RED's (agent minus Node-RED, MB)",
      r1(a100.steady.rssMedianMB - red100.steady.rssMedianMB),
      (x) => x < 0,
    );
  check('steady RSS median at 1,000 sensors <= 100 MB', a1000?.steady.rssMedianMB, (x) => x <= 100);
  check('CPU at 100 sensors <= 1 % of a core', a100?.steady.cpuPercent, (x) => x <= 1);
  for (const a of agent) {
    check(
      `disk writes / payload, broker up, ${a.sensors} sensors <= 2`,
      a.steady.writeAmplification,
      (x) => x <= 2,
    );
    const o = a.outage as { writeAmplification: number | null } | null;
    if (o)
      check(
        `disk writes / payload, broker down, ${a.sensors} sensors <= 3`,
        o.writeAmplification,
        (x) => x <= 3,
      );
    check(
      `start-up to READY, ${a.sensors} sensors <= 1000 ms`,
      a.startup.readyMs,
      (x) => x <= 1000,
    );
  }
  return t;
}

function plot(all: AgentResult[], floor: FloorResult[], nodeRed: NodeRedResult[]): string {
  const agent = all.filter((a) => a.agent === all[0].agent && a.repetition === 0);
  const ns = agent.map((a) => a.sensors);
  const series = [
    { name: 'edge-agent', points: agent.map((a) => [a.sensors, a.steady.rssMedianMB]) },
    { name: 'Node-RED 4', points: nodeRed.map((r) => [r.sensors, r.steady.rssMedianMB]) },
    ...floor.map((f) => ({ name: `floor: ${f.name}`, points: ns.map((n) => [n, f.rssMedianMB]) })),
  ].filter((s) => s.points.length > 0) as { name: string; points: [number, number][] }[];
  return lineChartSvg({
    title: 'Steady RSS (median), network sensors at 1 Hz, 10 s windows',
    xLabel: 'sensors',
    yLabel: 'RSS, MB',
    logX: true,
    series,
    reference: { y: 70, label: 'target at 100 sensors: 70 MB' },
  });
}

function tables(r: {
  spoolWrites: (SpoolWritesRow | { sensors: number; error: string })[];
  floor: FloorResult[];
  agent: AgentResult[];
  nodeRed: NodeRedResult[];
  modules: ModuleCost[];
}): string {
  const out: string[] = [];
  out.push(
    '| process | sensors | RSS median MB | RSS peak MB | CPU % of a core | CPU µs/reading | wake-ups/s main + others | readings/s | disk writes MB/h | payload MB/h | writes / payload | READY ms | first batch ms |',
    '|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|',
  );
  for (const f of r.floor)
    out.push(
      `| floor: ${f.name} | – | ${f.rssMedianMB} | ${f.rssPeakMB} | ${f.cpuPercent} | | | | | | | | |`,
    );
  for (const a of r.agent) {
    const s = a.steady;
    out.push(
      `| ${a.agent} | ${a.sensors} | ${s.rssMedianMB} | ${s.rssPeakMB} | ${s.cpuPercent} | ${s.cpuUsPerReading} | ${s.mainWakeupsPerSec} + ${s.otherWakeupsPerSec} | ${s.achievedReadingsPerSec} | ${s.writeBytesPerHourMB} | ${s.payloadBytesPerHourMB} | ${s.writeAmplification} | ${Math.round(a.startup.readyMs)} | ${a.startup.firstTelemetryMs} |`,
    );
  }
  for (const n of r.nodeRed) {
    const s = n.steady;
    out.push(
      `| Node-RED | ${n.sensors} | ${s.rssMedianMB} | ${s.rssPeakMB} | ${s.cpuPercent} | ${s.cpuUsPerReading} | ${s.mainWakeupsPerSec} + ${s.otherWakeupsPerSec} | ${s.achievedReadingsPerSec} | ${s.writeBytesPerHourMB} | ${s.payloadBytesPerHourMB} | – | ${n.startup.startedFlowsMs} (flows started) | ${n.startup.firstTelemetryMs} |`,
    );
  }
  out.push(
    '',
    '| sensors | outage s | RSS peak MB | writes MB | payload created MB | writes / payload | replay s |',
    '|--:|--:|--:|--:|--:|--:|--:|',
  );
  for (const a of r.agent) {
    const o = a.outage as Record<string, number> | null;
    if (!o) continue;
    out.push(
      `| ${a.sensors} | ${o.seconds} | ${o.rssPeakMB} | ${r2(o.writeBytes / 1048576)} | ${r2(o.payloadBytesCreated / 1048576)} | ${o.writeAmplification} | ${o.replaySeconds} |`,
    );
  }
  out.push(
    '',
    '| sensors | payload B | writes / payload | deflated B | writes / payload, deflated | deflate µs | writes / payload, one commit per batch | both |',
    '|--:|--:|--:|--:|--:|--:|--:|--:|',
  );
  for (const w of r.spoolWrites) {
    if ('error' in w) continue;
    out.push(
      `| ${w.sensors} | ${w.plain.payloadBytes} | ${w.plain.writesPerPayload} | ${w.deflated.storedBytes} | ${w.deflated.writesPerPayload} | ${w.deflated.deflateUs} | ${w.oneCommit.writesPerPayload} | ${w.deflatedOneCommit.writesPerPayload} |`,
    );
  }
  out.push('', '| module | RSS after MB | + RSS MB | + heap MB | note |', '|---|--:|--:|--:|---|');
  for (const m of r.modules)
    out.push(`| ${m.module} | ${m.rssMB} | ${m.rssDeltaMB} | ${m.heapDeltaMB} | ${m.note} |`);
  return out.join('\n');
}

// --- main -----------------------------------------------------------------------------

async function main(): Promise<void> {
  mkdirSync(WORK, { recursive: true });
  if (statfsSync(WORK).type === TMPFS_MAGIC)
    throw new Error(
      `${WORK} is on tmpfs, where write_bytes counts nothing: set BENCH_FOOTPRINT_DIR to a disk`,
    );
  const started = new Date().toISOString();
  const machine0 = machine();
  const loads = watchLoad();
  const report: {
    floor: FloorResult[];
    modules: ModuleCost[];
    agent: AgentResult[];
    nodeRed: NodeRedResult[];
    nodeRedInstall: (NodeRedInstall & { error?: undefined }) | { error: string } | null;
    nodeRedErrors: { sensors: number; error: string }[];
    spoolWrites: (SpoolWritesRow | { sensors: number; error: string })[];
  } = {
    spoolWrites: [],
    floor: [],
    modules: [],
    agent: [],
    nodeRed: [],
    nodeRedInstall: null,
    nodeRedErrors: [],
  };

  // Installing first, so npm's own load is not in any window.
  let install: NodeRedInstall | undefined;
  if (PARTS.has('node-red') && NODE_RED_NS.length > 0) {
    try {
      install = await ensureNodeRed(NODE_RED_DIR);
      report.nodeRedInstall = install;
    } catch (err) {
      report.nodeRedInstall = { error: (err as Error).message };
      process.stderr.write(`bench: Node-RED not measured: ${(err as Error).message}\n`);
    }
  }
  if (PARTS.has('floor')) {
    report.floor.push(await floorRun('node'));
    report.floor.push(await floorRun('node + idle worker'));
  }
  if (PARTS.has('modules')) report.modules = await moduleCosts(ROOT);

  const maxN = Math.max(...NS, ...(install ? NODE_RED_NS : []), 1);
  const broker = await spawnMosquitto({ persistence: true });
  cleanups.push(() => broker.close());
  const sensors = await startSensorServerProcess({
    delayMs: SENSOR_LATENCY_MS,
    units: Math.ceil(maxN / SENSORS_PER_UNIT),
    sensorsPerUnit: SENSORS_PER_UNIT,
    sensors: maxN,
  });
  cleanups.push(() => sensors.close());
  const sub = await telemetryTally(broker.url, WORK);
  cleanups.push(() => sub.close());
  const shared: Shared = { broker, sensors, tally: sub.tally };

  if (PARTS.has('agent'))
    for (const n of NS)
      for (let rep = 0; rep < REPEAT; rep++)
        for (const build of AGENT_BUILDS) {
          process.stderr.write(`bench: ${build.label}, ${n} sensors, run ${rep + 1}\n`);
          report.agent.push(await agentRun(n, shared, build, rep));
        }
  // After the agent runs: their subscriber kept one real body per N (sample-<gateway>.json).
  if (PARTS.has('spool'))
    for (const n of NS) {
      const file = path.join(WORK, `sample-fp-agent-${n}.json`);
      if (!existsSync(file)) {
        report.spoolWrites.push({
          sensors: n,
          error: `no sample body (${file}): run the agent part first`,
        });
        continue;
      }
      const body = readFileSync(file);
      const opts = { rounds: SPOOL_ROUNDS, synchronous: SPOOL_SYNC } as const;
      report.spoolWrites.push({
        sensors: n,
        plain: await spoolWrites(WORK, body, { ...opts, compress: false }),
        deflated: await spoolWrites(WORK, body, { ...opts, compress: true }),
        oneCommit: await spoolWrites(WORK, body, { ...opts, compress: false, ackWithNext: true }),
        deflatedOneCommit: await spoolWrites(WORK, body, {
          ...opts,
          compress: true,
          ackWithNext: true,
        }),
      });
    }
  if (install)
    for (const n of NODE_RED_NS) {
      process.stderr.write(`bench: Node-RED, ${n} sensors\n`);
      try {
        report.nodeRed.push(await nodeRedRun(n, install, shared));
      } catch (err) {
        // Said in the report; the agent's figures stand without it.
        report.nodeRedErrors.push({ sensors: n, error: (err as Error).message.slice(0, 2000) });
        process.stderr.write(`bench: Node-RED N=${n} failed: ${(err as Error).message}\n`);
      }
    }

  const full = {
    bench: 'footprint',
    started,
    finished: new Date().toISOString(),
    machine: machine0,
    loadavg1: loads.range(),
    settings: {
      quick: QUICK,
      warmupSec: WARMUP_SEC,
      measureSec: MEASURE_SEC,
      outageSec: OUTAGE_SEC,
      floorWarmupSec: FLOOR_WARMUP_SEC,
      floorMeasureSec: FLOOR_MEASURE_SEC,
      intervalMs: INTERVAL_MS,
      windowMs: WINDOW_MS,
      quantitiesPerSensor: QUANTITIES,
      sensorLatencyMs: SENSOR_LATENCY_MS,
      sensorsPerUnit: SENSORS_PER_UNIT,
      agentNodeFlags: AGENT_FLAGS,
      agentBuilds: AGENT_BUILDS,
      repeat: REPEAT,
      agentEnv: AGENT_ENV,
      spoolSynchronous: SPOOL_SYNC,
      mosquitto: 'persistence on, ephemeral loopback port',
    },
    targets: targets(report.agent, report.floor, report.nodeRed),
    ...report,
  };
  // Every telemetry message seen, for checking the arithmetic: [seq, createdAt, bytes, readings, arrival].
  mkdirSync(path.join(ROOT, 'bench/out'), { recursive: true });
  writeFileSync(path.join(ROOT, 'bench/out/footprint-telemetry.json'), JSON.stringify(sub.tally));
  const json = `${JSON.stringify(full, null, 2)}\n`;
  const outDir = WRITE_DOCS ? path.join(ROOT, 'docs/benchmarks') : path.join(ROOT, 'bench/out');
  mkdirSync(outDir, { recursive: true });
  writeFileSync(path.join(outDir, 'footprint.json'), json);
  if (report.agent.length > 0)
    writeFileSync(
      path.join(outDir, 'footprint.svg'),
      plot(report.agent, report.floor, report.nodeRed),
    );
  process.stdout.write(json);
  process.stderr.write(`\n${tables(report)}\n\nwritten to ${outDir}/footprint.{json,svg}\n`);
}

runBench(main);
