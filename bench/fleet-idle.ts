/**
 * bench/fleet-idle — what the fleet feature costs a gateway when it is on and nobody asks
 * (RSS, CPU), against the same agent with it off, and what answering `status` at 1 a second
 * adds.
 *
 * The footprint bench's set-up (bench/footprint.ts): a mosquitto on an ephemeral loopback
 * port, the simulated Modbus TCP gateway in its own process, a subscriber process tallying
 * telemetry, and the measured process: the built agent as the service runs it
 * (`node <AGENT_NODE_FLAGS> dist/agent/cli.js run --config FILE`, the unit's environment,
 * a notify socket), N network sensors at 1 Hz, 10 s aggregation windows.
 *
 * Two configurations, run one after the other in rounds (off, on, off, on …), each a fresh
 * agent: `off` (no fleet section) and `on` (`fleet.enabled: true`, `fleet.remoteConfig.enabled:
 * true`, a trusted-keys directory with one operator key). Per run, after the warm-up
 * (counted from READY=1) and just after a batch arrived, two windows of the same length:
 * `idle` (nothing asked), then `asked` (this process sends `edge/<gw>/cmd/status` once a
 * second, MQTT 3.1.1, and counts the answers on `edge/<gw>/reply/status`; the `off` agent
 * gets the same requests, which the broker drops for want of a subscriber). RSS median and
 * peak (VmRSS every 0.5 s) and CPU ms per minute (/proc/PID/stat) per window.
 *
 * Figures are differences within a round (on − off), so that the machine's load, which
 * changes between rounds, weighs on both sides alike; the answering cost is the difference
 * of differences ((on asked − on idle) − (off asked − off idle)).
 *
 *   npm run bench:fleet-idle                              # builds, then ~10 min
 *   BENCH_FLEET_QUICK=1 npx tsx bench/fleet-idle.ts       # 1 round, 3 s warm-up, 5 s windows
 *
 * Environment: BENCH_FLEET_SENSORS (100), _ROUNDS (4), _WARMUP_SEC (15), _WINDOW_SEC (25),
 * _DIR (work dir), _WRITE (1: docs/benchmarks/fleet-idle.json; default on for a full run with
 * default settings, else bench/out/). Prints the report as JSON on stdout, a table on stderr.
 */
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import { AGENT_NODE_FLAGS } from '../agent/ops/node-flags.js';
import { sleep } from '../drivers/time.js';
import { spawnMosquitto } from '../test/helpers/mosquitto.js';
import { listenNotifySocket, readyAt as notifiedReadyAt } from '../test/helpers/notify-socket.js';
import { machine } from './lib/machine.js';
import { SERVICE_ENV, spawnMeasured } from './lib/measured-process.js';
import { median, sampleWindow, type WindowStats } from './lib/proc-stats.js';
import {
  INTERVAL_MS,
  jobConfig,
  SENSOR_LATENCY_MS,
  SENSORS_PER_UNIT,
  WINDOW_MS,
} from './lib/footprint-job.js';
import { cleanups, load, r1, r2, runBench, watchLoad } from './lib/run-kit.js';
import { startSensorServerProcess, type SensorAddress } from './lib/sensor-server-process.js';
import { until } from './lib/subscriber-process.js';
import { gatewayTally, telemetryTally, type Tally } from './lib/telemetry-tally.js';

const env = process.env;
const QUICK = env.BENCH_FLEET_QUICK === '1';
const num = (name: string, dflt: number) => (env[name] ? Number(env[name]) : dflt);
const SENSORS = num('BENCH_FLEET_SENSORS', 100);
const ROUNDS = num('BENCH_FLEET_ROUNDS', QUICK ? 1 : 4);
const WARMUP_SEC = num('BENCH_FLEET_WARMUP_SEC', QUICK ? 3 : 15);
const WINDOW_SEC = num('BENCH_FLEET_WINDOW_SEC', QUICK ? 5 : 25);
const DEFAULT_RUN =
  !QUICK &&
  !env.BENCH_FLEET_SENSORS &&
  !env.BENCH_FLEET_ROUNDS &&
  !env.BENCH_FLEET_WARMUP_SEC &&
  !env.BENCH_FLEET_WINDOW_SEC;
const WRITE_DOCS = env.BENCH_FLEET_WRITE ? env.BENCH_FLEET_WRITE === '1' : DEFAULT_RUN;

const STATUS_PERIOD_MS = 1000;

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const WORK = env.BENCH_FLEET_DIR ?? path.join(ROOT, 'bench/out/fleet-idle-work');
const CLI = path.join(ROOT, 'dist/agent/cli.js');

type Variant = 'off' | 'on';

interface Shared {
  brokerUrl: string;
  sensors: SensorAddress[];
  tally: Tally;
}

/** The agent's config; `on` adds the fleet section with remote configuration and one key. */
function writeConfig(work: string, gateway: string, variant: Variant, shared: Shared): string {
  const config = jobConfig({
    gateway,
    brokerUrl: shared.brokerUrl,
    sensors: shared.sensors,
    spool: { dir: path.join(work, 'state') },
  });
  if (variant === 'on') {
    const keys = path.join(work, 'trusted-keys');
    mkdirSync(keys, { mode: 0o755 });
    const { publicKey } = generateKeyPairSync('ed25519');
    writeFileSync(
      path.join(keys, 'operator.pem'),
      publicKey.export({ type: 'spki', format: 'pem' }).toString(),
      { mode: 0o644 },
    );
    config.fleet = { enabled: true, remoteConfig: { enabled: true, trustedKeysDir: keys } };
  }
  const file = path.join(work, 'config.json');
  writeFileSync(file, JSON.stringify(config));
  return file;
}

/**
 * Sends `status` to `gateway` every STATUS_PERIOD_MS for `seconds` (a bounded count), then
 * waits up to 3 s for late answers; how many were sent and answered.
 */
async function askStatus(brokerUrl: string, gateway: string, seconds: number) {
  const client = await mqtt.connectAsync(brokerUrl, {
    clientId: `bench-fleet-operator-${gateway}`,
    protocolVersion: 4,
    reconnectPeriod: 200,
  });
  client.on('error', () => undefined);
  let answered = 0;
  client.on('message', () => answered++);
  await client.subscribeAsync(`edge/${gateway}/reply/status`, { qos: 1 });
  const count = Math.round((seconds * 1000) / STATUS_PERIOD_MS);
  const t0 = performance.now();
  for (let i = 0; i < count; i++) {
    await sleep(Math.max(0, t0 + i * STATUS_PERIOD_MS - performance.now()));
    client.publish(`edge/${gateway}/cmd/status`, JSON.stringify({ id: i }), { qos: 1 });
  }
  await until(() => answered >= count, 3000);
  await client.endAsync(true);
  return { sent: count, answered };
}

function figures(w: WindowStats) {
  return {
    seconds: w.seconds,
    rssMedianMB: w.rssMedianMB,
    rssPeakMB: w.rssPeakMB,
    cpuMsPerMin: Math.round((w.cpuMs / w.seconds) * 60),
    cpuMainThreadMs: w.cpuMainThreadMs,
    cpuOtherThreadsMs: w.cpuOtherThreadsMs,
    mainWakeupsPerSec: w.mainWakeupsPerSec,
  };
}

async function agentRun(variant: Variant, round: number, shared: Shared) {
  const gateway = `fleet-${variant}-r${round}`;
  const work = path.join(WORK, gateway);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const configFile = writeConfig(work, gateway, variant, shared);
  const notify = listenNotifySocket();
  cleanups.push(async () => notify.close());
  const load0 = load();
  const agent = spawnMeasured([...AGENT_NODE_FLAGS, CLI, 'run', '--config', configFile], {
    cwd: work,
    env: { ...process.env, NOTIFY_SOCKET: notify.path, ...SERVICE_ENV },
  });
  const alive = () => agent.child.exitCode === null && agent.child.signalCode === null;
  if (!(await until(() => notifiedReadyAt(notify) !== undefined || !alive(), 60_000)) || !alive())
    throw new Error(`${gateway}: no READY=1 within 60 s: ${agent.output().slice(-2000)}`);
  const readyAt = notifiedReadyAt(notify)!;
  const batches = () => gatewayTally(shared.tally, gateway).telemetry.length;
  await sleep(Math.max(0, readyAt + WARMUP_SEC * 1000 - Date.now()));
  // Start just after a batch, so each window holds whole aggregation windows.
  const n0 = batches();
  if (!(await until(() => batches() > n0, WINDOW_MS + 10_000)))
    throw new Error(`${gateway}: no telemetry after the warm-up: ${agent.output().slice(-2000)}`);
  await sleep(1000);
  const idle = await sampleWindow(agent.pid, WINDOW_SEC);
  const asking = askStatus(shared.brokerUrl, gateway, WINDOW_SEC);
  const asked = await sampleWindow(agent.pid, WINDOW_SEC);
  const requests = await asking;
  const exitCode = await agent.stop(30_000);
  notify.close();
  return {
    variant,
    round,
    gateway,
    idle: figures(idle),
    asked: { ...figures(asked), ...requests },
    telemetryMessages: batches(),
    exitCode,
    loadavgStart: load0,
    loadavgEnd: load(),
  };
}

type Run = Awaited<ReturnType<typeof agentRun>>;

/** Median, min and max of per-round values. */
function spread(xs: number[], round = r1) {
  return { median: round(median(xs)), min: round(Math.min(...xs)), max: round(Math.max(...xs)) };
}

function summary(runs: Run[]) {
  const pairs = [...new Set(runs.map((r) => r.round))]
    .map((round) => ({
      off: runs.find((r) => r.round === round && r.variant === 'off'),
      on: runs.find((r) => r.round === round && r.variant === 'on'),
    }))
    .filter((p): p is { off: Run; on: Run } => p.off !== undefined && p.on !== undefined);
  const of = (v: Variant) => runs.filter((r) => r.variant === v);
  const side = (v: Variant) => ({
    idleRssMedianMB: spread(of(v).map((r) => r.idle.rssMedianMB)),
    idleRssPeakMB: spread(of(v).map((r) => r.idle.rssPeakMB)),
    idleCpuMsPerMin: spread(of(v).map((r) => r.idle.cpuMsPerMin)),
    askedCpuMsPerMin: spread(of(v).map((r) => r.asked.cpuMsPerMin)),
  });
  const answeringMsPerMin = pairs.map(
    (p) =>
      p.on.asked.cpuMsPerMin -
      p.on.idle.cpuMsPerMin -
      (p.off.asked.cpuMsPerMin - p.off.idle.cpuMsPerMin),
  );
  const answersPerMin = 60_000 / STATUS_PERIOD_MS;
  return {
    off: side('off'),
    on: side('on'),
    onMinusOff: {
      idleRssMedianMB: spread(pairs.map((p) => p.on.idle.rssMedianMB - p.off.idle.rssMedianMB)),
      idleRssPeakMB: spread(pairs.map((p) => p.on.idle.rssPeakMB - p.off.idle.rssPeakMB)),
      idleCpuMsPerMin: spread(pairs.map((p) => p.on.idle.cpuMsPerMin - p.off.idle.cpuMsPerMin)),
      idleCpuRatio: spread(
        pairs.map((p) => p.on.idle.cpuMsPerMin / p.off.idle.cpuMsPerMin),
        r2,
      ),
    },
    answeringStatusAt1PerSec: {
      cpuMsPerMin: spread(answeringMsPerMin),
      cpuMsPerAnswer: spread(answeringMsPerMin.map((x) => x / answersPerMin)),
      rssMedianMB: spread(
        pairs.map(
          (p) =>
            p.on.asked.rssMedianMB -
            p.on.idle.rssMedianMB -
            (p.off.asked.rssMedianMB - p.off.idle.rssMedianMB),
        ),
      ),
    },
    rounds: pairs.length,
  };
}

function table(runs: Run[]): string {
  const out = [
    '| round | fleet | idle RSS median MB | idle RSS peak MB | idle CPU ms/min | asked CPU ms/min | status sent / answered | load1 |',
    '|--:|---|--:|--:|--:|--:|--:|--:|',
  ];
  for (const r of runs)
    out.push(
      `| ${r.round + 1} | ${r.variant} | ${r.idle.rssMedianMB} | ${r.idle.rssPeakMB} | ${r.idle.cpuMsPerMin} | ${r.asked.cpuMsPerMin} | ${r.asked.sent} / ${r.asked.answered} | ${r.loadavgStart[0]} |`,
    );
  return out.join('\n');
}

async function main(): Promise<void> {
  if (!existsSync(CLI)) throw new Error(`${CLI} not found: run \`npm run build\` first`);
  mkdirSync(WORK, { recursive: true });
  const started = new Date().toISOString();
  const machine0 = machine();
  const loads = watchLoad();

  const broker = await spawnMosquitto();
  cleanups.push(() => broker.close());
  const sensorServer = await startSensorServerProcess({
    delayMs: SENSOR_LATENCY_MS,
    units: Math.ceil(SENSORS / SENSORS_PER_UNIT),
    sensorsPerUnit: SENSORS_PER_UNIT,
    sensors: SENSORS,
  });
  cleanups.push(() => sensorServer.close());
  const sub = await telemetryTally(broker.url, WORK);
  cleanups.push(() => sub.close());
  const shared: Shared = {
    brokerUrl: broker.url,
    sensors: sensorServer.sensors.slice(0, SENSORS),
    tally: sub.tally,
  };

  const runs: Run[] = [];
  for (let round = 0; round < ROUNDS; round++)
    for (const variant of ['off', 'on'] as const) {
      process.stderr.write(`bench: round ${round + 1}/${ROUNDS}, fleet ${variant}\n`);
      runs.push(await agentRun(variant, round, shared));
    }

  const report = {
    bench: 'fleet-idle',
    started,
    finished: new Date().toISOString(),
    machine: machine0,
    loadavg1: loads.range(),
    settings: {
      quick: QUICK,
      sensors: SENSORS,
      rounds: ROUNDS,
      warmupSec: WARMUP_SEC,
      windowSec: WINDOW_SEC,
      intervalMs: INTERVAL_MS,
      aggregationWindowMs: WINDOW_MS,
      sensorLatencyMs: SENSOR_LATENCY_MS,
      statusPeriodMs: STATUS_PERIOD_MS,
      agentNodeFlags: AGENT_NODE_FLAGS,
      mosquitto: 'ephemeral loopback port',
    },
    summary: summary(runs),
    runs,
  };
  const json = `${JSON.stringify(report, null, 2)}\n`;
  const outDir = WRITE_DOCS ? path.join(ROOT, 'docs/benchmarks') : path.join(ROOT, 'bench/out');
  mkdirSync(outDir, { recursive: true });
  writeFileSync(path.join(outDir, 'fleet-idle.json'), json);
  process.stdout.write(json);
  process.stderr.write(`\n${table(runs)}\n\nwritten to ${outDir}/fleet-idle.json\n`);
}

runBench(main);
