/**
 * bench/sampling — N network sensors, each answering over real loopback TCP (Modbus TCP)
 * after 100 ms, target interval 1 s, side by side:
 *   sequential — one sensor after another (the "before" picture);
 *   naive      — one sleep-then-read loop per sensor, concurrent but drifting by the
 *                read time every cycle;
 *   sampler    — the agent's Sampler (drift-free grid, timeouts, start-up spread);
 *   baseline   — the Sampler of another checkout of this repository (--baseline DIR, its
 *                bench compiled there with tsc -p tsconfig.bench.json), run against the same
 *                gateway process in the same invocation, to compare two versions.
 *
 * Three kinds of process keep the figures honest: this orchestrator; one server process
 * (the simulated Modbus TCP gateway, 100 sensors per unit id); and one fresh agent process
 * per (strategy, N), so CPU % and peak RSS belong to that run alone.
 *
 *   npm run bench:sampling -- [--ns 10,100,1000,10000] [--window 10] [--no-write]
 *     [--strategies sequential,naive,sampler,baseline --baseline DIR]
 *
 * Prints JSON on stdout; writes docs/benchmarks/sampling.md and docs/sampling-rate.svg.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { silentLogger } from '../agent/ops/logger.js';
import { AGENT_NODE_FLAGS } from '../agent/ops/node-flags.js';
import { startEventLoopMonitor, type EventLoopSnapshot } from '../agent/sampling/event-loop.js';
import { Sampler, type SampledSensor } from '../agent/sampling/sampler.js';
import { SchedulingLag, type LagSnapshot } from '../agent/sampling/scheduling-lag.js';
import { ModbusTcpPool } from '../drivers/network/modbus-tcp-pool.js';
import { createModbusTcp } from '../drivers/network/modbus-tcp.js';
import { sleep } from '../drivers/time.js';
import type { Driver } from '../drivers/types.js';
import { startModbusTcpSensorServer } from '../simulator/network/modbus-tcp-server.js';
import { machine, type Machine } from './lib/machine.js';
import { repoRoot } from './lib/repo-root.js';
import { lineChartSvg } from './lib/plot.js';
import { instrumented, percentile, RoundLog } from './lib/rounds.js';

const LATENCY_MS = 100;
const INTERVAL_MS = 1000;
const TIMEOUT_MS = 1000;
const WARMUP_MS = 3000;
const SENSORS_PER_UNIT = 100;
/** TCP connections from the agent to the gateway: a pool, not one socket per sensor. */
const CONNECTIONS = 4;
/**
 * From this N on the sampler spreads first samples over the interval (startSpreadMs), so
 * hundreds of rounds do not start in the same millisecond; below it every sensor fires on
 * the same slot, which is what the cycle-time figure (10 sensors) measures.
 */
const SPREAD_FROM_N = 100;
const STRATEGIES = ['sequential', 'naive', 'sampler', 'baseline'] as const;
type Strategy = (typeof STRATEGIES)[number];

const self = fileURLToPath(import.meta.url);
const root = repoRoot(import.meta.url);

export interface RunResult {
  strategy: Strategy;
  n: number;
  latencyMs: number;
  intervalMs: number;
  windowS: number;
  /** Rounds a perfect 1 Hz sampler would start in the window (n × window / interval). */
  expectedRounds: number;
  rounds: number;
  faults: number;
  /** Per-sensor successful samples per second. */
  achievedRateHz: number;
  /** achievedRateHz / target rate. */
  rateRatio: number;
  roundMs: { p50: number; p99: number };
  /** Time to read every sensor once (first request to last reply of one pass). */
  cycleMs: number;
  /** True when no full pass fitted in the run and cycleMs is extrapolated from a partial one. */
  cycleExtrapolated: boolean;
  cycleOverLatency: number;
  /** Cycle time over the measured median round (the latency a sensor really has here). */
  cycleOverRound: number;
  /** Actual round start − its due time on the 1 s grid. */
  lag: { p50Ms: number; p99Ms: number; maxMs: number };
  eventLoop: EventLoopSnapshot;
  /** Agent process CPU over the window, % of one core. */
  cpuPercent: number;
  peakRssMB: number;
  /** RSS of the agent process before any sensor was created (runtime + tsx + modules). */
  baselineRssMB: number;
  startSpreadMs: number;
  /** CPU of the simulated gateway process over the whole run (warm-up included), % of one core. */
  serverCpuPercent?: number;
}

// ───────────────────────────── measurement helpers ─────────────────────────────

function summarise(
  log: RoundLog,
  windowStart: number,
  windowEnd: number,
  sequential: boolean,
): Pick<
  RunResult,
  'rounds' | 'faults' | 'roundMs' | 'cycleMs' | 'cycleExtrapolated' | 'achievedRateHz'
> {
  let rounds = 0;
  let faults = 0;
  const durations: number[] = [];
  for (let s = 0; s < log.n; s++) {
    for (let k = 0; k < log.counts[s]; k++) {
      const i = s * log.capacity + k;
      const start = log.starts[i];
      if (start < windowStart || start >= windowEnd) continue;
      if (log.ok[i]) {
        rounds++;
        durations.push(log.ends[i] - start);
      } else faults++;
    }
  }
  durations.sort((a, b) => a - b);

  // Pass k = every sensor's k-th round: its span is the cycle time.
  const maxK = Math.max(...Array.from(log.counts));
  const cycles: number[] = [];
  for (let k = 1; k < maxK; k++) {
    let first = Number.POSITIVE_INFINITY;
    let last = Number.NEGATIVE_INFINITY;
    let complete = true;
    for (let s = 0; s < log.n && complete; s++) {
      if (log.counts[s] <= k) complete = false;
      else {
        const i = s * log.capacity + k;
        first = Math.min(first, log.starts[i]);
        last = Math.max(last, log.ends[i]);
      }
    }
    if (complete) cycles.push(last - first);
  }
  cycles.sort((a, b) => a - b);
  let cycleMs = percentile(cycles, 50);
  let cycleExtrapolated = false;
  if (cycles.length === 0 && sequential) {
    // No full pass: sensors read one after another, so a pass is n × the mean round.
    const mean = durations.reduce((a, b) => a + b, 0) / Math.max(1, durations.length);
    cycleMs = mean * log.n;
    cycleExtrapolated = true;
  }
  const windowS = (windowEnd - windowStart) / 1000;
  return {
    rounds,
    faults,
    roundMs: { p50: percentile(durations, 50), p99: percentile(durations, 99) },
    cycleMs,
    cycleExtrapolated,
    achievedRateHz: rounds / log.n / windowS,
  };
}

// ───────────────────────────── strategies (agent process) ─────────────────────────────

interface Ctx {
  drivers: Driver[];
  log: RoundLog;
  lag: SchedulingLag;
  t0: number;
  windowStart: number;
  windowEnd: number;
  /** No round starts after this: the window's end plus one timeout, so rounds begun in it end. */
  endAt: number;
}

async function timedRound(ctx: Ctx, i: number, due: number): Promise<void> {
  ctx.lag.record(performance.now() - due);
  try {
    await ctx.drivers[i].measure(AbortSignal.timeout(TIMEOUT_MS));
  } catch {
    // Counted as a fault by the instrumented driver.
  }
}

/** One sensor after the other; a pass starts on its 1 s slot, or at once when it is late. */
async function runSequential(ctx: Ctx): Promise<void> {
  let k = 0;
  while (performance.now() < ctx.endAt) {
    const due = ctx.t0 + k * INTERVAL_MS;
    if (performance.now() < due) await sleep(due - performance.now());
    for (let i = 0; i < ctx.drivers.length && performance.now() < ctx.endAt; i++) {
      await timedRound(ctx, i, due);
    }
    // Next slot; a pass that overran several slots skips to the latest one, no burst.
    k = Math.max(k + 1, Math.floor((performance.now() - ctx.t0) / INTERVAL_MS));
  }
}

/** The loop everyone writes first: read, sleep the interval, repeat — period = interval + read. */
async function runNaive(ctx: Ctx): Promise<void> {
  await Promise.all(
    ctx.drivers.map(async (_, i) => {
      for (let k = 0; performance.now() < ctx.endAt; k++) {
        await timedRound(ctx, i, ctx.t0 + k * INTERVAL_MS);
        await sleep(INTERVAL_MS);
      }
    }),
  );
}

/** The agent's way; returns the lag the sampler itself measured over the window. */
async function runSampler(ctx: Ctx, startSpreadMs: number): Promise<LagSnapshot> {
  const sensors: SampledSensor[] = ctx.drivers.map((driver, index) => ({
    id: `s${index}`,
    index,
    driver,
    intervalMs: INTERVAL_MS,
    timeoutMs: TIMEOUT_MS,
  }));
  let readings = 0;
  const sampler = new Sampler({
    sensors,
    logger: silentLogger,
    startSpreadMs,
    emit: () => void readings++,
  });
  // Slots then sit on t0 + k·interval (+ spread), like the other strategies' grids.
  await sleep(Math.max(0, ctx.t0 - performance.now()));
  sampler.start();
  await sleep(Math.max(0, ctx.windowStart - performance.now()));
  sampler.schedulingLag({ reset: true });
  await sleep(Math.max(0, ctx.windowEnd - performance.now()));
  const lag = sampler.schedulingLag();
  // Let the rounds started inside the window finish before stopping.
  await sleep(Math.max(0, ctx.endAt - performance.now()));
  await sampler.stop();
  if (readings === 0) throw new Error('the sampler emitted no readings');
  return lag;
}

async function agentMain(strategy: Strategy, n: number, port: number, windowS: number) {
  const baselineRssMB = process.memoryUsage().rss / 2 ** 20;
  const pool = new ModbusTcpPool({ connectionsPerEndpoint: CONNECTIONS, logger: silentLogger });
  const log = new RoundLog(
    n,
    Math.ceil((WARMUP_MS + windowS * 1000 + TIMEOUT_MS) / INTERVAL_MS) + 4,
  );
  const drivers = Array.from({ length: n }, (_, i) => {
    const unitId = 1 + Math.floor(i / SENSORS_PER_UNIT);
    const base = 1 + 2 * (i % SENSORS_PER_UNIT);
    const spec = { scale: 0.1, signed: true };
    const driver = createModbusTcp(
      {
        host: '127.0.0.1',
        port,
        unitId,
        function: 4,
        registers: [
          { quantity: 'temperature', address: base, ...spec },
          { quantity: 'humidity', address: base + 1, ...spec },
        ],
      },
      pool,
    );
    return instrumented(driver, i, log);
  });
  const startSpreadMs = strategy === 'sampler' && n >= SPREAD_FROM_N ? INTERVAL_MS : 0;
  const t0 = performance.now() + 50;
  // Mid-slot: a round starting a little late or early never crosses a window edge.
  const windowStart = t0 + WARMUP_MS + INTERVAL_MS / 2;
  const windowEnd = windowStart + windowS * 1000;
  const ctx: Ctx = {
    drivers,
    log,
    lag: new SchedulingLag(),
    t0,
    windowStart,
    windowEnd,
    endAt: windowEnd + TIMEOUT_MS,
  };
  const loop = startEventLoopMonitor({ resolutionMs: 10 });
  let cpuAtStart = process.cpuUsage();
  let cpu: NodeJS.CpuUsage | undefined;
  let eventLoop: EventLoopSnapshot | undefined;
  let lagAtEnd: LagSnapshot | undefined;
  const markStart = setTimeout(
    () => {
      cpuAtStart = process.cpuUsage();
      loop.snapshot({ reset: true });
      ctx.lag.reset();
    },
    Math.max(0, windowStart - performance.now()),
  );
  const markEnd = setTimeout(
    () => {
      cpu = process.cpuUsage(cpuAtStart);
      eventLoop = loop.snapshot();
      lagAtEnd = ctx.lag.snapshot();
    },
    Math.max(0, windowEnd - performance.now()),
  );

  let lagSnap: LagSnapshot | undefined;
  if (strategy === 'sampler') lagSnap = await runSampler(ctx, startSpreadMs);
  else await (strategy === 'sequential' ? runSequential(ctx) : runNaive(ctx));
  clearTimeout(markStart);
  clearTimeout(markEnd);
  lagSnap ??= lagAtEnd ?? ctx.lag.snapshot();
  cpu ??= process.cpuUsage(cpuAtStart);
  eventLoop ??= loop.snapshot();
  loop.stop();
  await pool.close();

  const s = summarise(ctx.log, windowStart, windowEnd, strategy === 'sequential');
  const result: RunResult = {
    strategy,
    n,
    latencyMs: LATENCY_MS,
    intervalMs: INTERVAL_MS,
    windowS,
    expectedRounds: (n * windowS * 1000) / INTERVAL_MS,
    ...s,
    rateRatio: s.achievedRateHz / (1000 / INTERVAL_MS),
    cycleOverLatency: s.cycleMs / LATENCY_MS,
    cycleOverRound: s.roundMs.p50 > 0 ? s.cycleMs / s.roundMs.p50 : 0,
    lag: { p50Ms: lagSnap.p50Ms, p99Ms: lagSnap.p99Ms, maxMs: lagSnap.maxMs },
    eventLoop,
    cpuPercent: ((cpu.user + cpu.system) / 1000 / (windowEnd - windowStart)) * 100,
    peakRssMB: process.resourceUsage().maxRSS / 1024,
    baselineRssMB,
    startSpreadMs,
  };
  return result;
}

// ───────────────────────────── processes ─────────────────────────────

/** The compiled sampling bench of the --baseline checkout. */
function baselineScript(dir: string): string {
  return path.resolve(dir, 'bench/out/dist/bench/sampling.js');
}

function forkSelf(args: string[], script = self): ChildProcess {
  const execArgv: string[] = script.endsWith('.ts') ? ['--import', 'tsx'] : [];
  if (args[0] === '--agent') {
    // Every strategy's agent runs with the heap settings the agent ships with; extra flags,
    // e.g. BENCH_AGENT_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof", come after them.
    execArgv.push(...AGENT_NODE_FLAGS);
    execArgv.push(...(process.env.BENCH_AGENT_NODE_ARGS ?? '').split(/\s+/).filter(Boolean));
  }
  return fork(script, args, { execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
}

function firstMessage<T>(child: ChildProcess, timeoutMs: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const done = () => {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
    };
    const onMessage = (m: unknown) => {
      done();
      resolve(m as T);
    };
    const onExit = (code: number | null) => {
      done();
      reject(new Error(`child exited with ${code} before answering`));
    };
    const timer = setTimeout(() => {
      done();
      child.kill('SIGKILL');
      reject(new Error(`child gave no answer in ${timeoutMs} ms`));
    }, timeoutMs);
    child.on('message', onMessage);
    child.on('exit', onExit);
  });
}

async function serverCpu(server: ChildProcess): Promise<NodeJS.CpuUsage> {
  const reply = firstMessage<{ cpu: NodeJS.CpuUsage }>(server, 30_000);
  server.send('cpu');
  return (await reply).cpu;
}

async function serverMain(units: number): Promise<void> {
  const server = await startModbusTcpSensorServer({
    delayMs: LATENCY_MS,
    units,
    sensorsPerUnit: SENSORS_PER_UNIT,
  });
  process.send?.({ port: server.port });
  // CPU use on request, so the orchestrator can show what the simulated gateway cost.
  process.on('message', (m) => {
    if (m === 'cpu') process.send?.({ cpu: process.cpuUsage() });
  });
  // Ends with the orchestrator (IPC channel closes) — no orphan server.
  process.once('disconnect', () => void server.close().then(() => process.exit(0)));
}

async function orchestrate(
  ns: number[],
  strategies: Strategy[],
  windowS: number,
  write: boolean,
  baseline: string | undefined,
): Promise<void> {
  const units = Math.ceil(Math.max(...ns) / SENSORS_PER_UNIT);
  const server = forkSelf(['--serve', String(units)]);
  const results: RunResult[] = [];
  const before = machine();
  try {
    const { port } = await firstMessage<{ port: number }>(server, 30_000);
    for (const n of ns) {
      for (const strategy of strategies) {
        if (server.exitCode !== null) throw new Error('the sensor server process died');
        const cpuBefore = await serverCpu(server);
        const startedAt = performance.now();
        // The baseline checkout's agent runs its own Sampler under the name "sampler".
        const child =
          strategy === 'baseline'
            ? forkSelf(
                ['--agent', 'sampler', String(n), String(port), String(windowS)],
                baselineScript(baseline!),
              )
            : forkSelf(['--agent', strategy, String(n), String(port), String(windowS)]);
        const budget = WARMUP_MS + windowS * 1000 + 60_000;
        const r = await firstMessage<RunResult>(child, budget);
        r.strategy = strategy;
        await new Promise((resolve) =>
          child.exitCode !== null ? resolve(0) : child.once('exit', resolve),
        );
        const cpuAfter = await serverCpu(server);
        const serverMs =
          (cpuAfter.user + cpuAfter.system - cpuBefore.user - cpuBefore.system) / 1000;
        r.serverCpuPercent = (serverMs / (performance.now() - startedAt)) * 100;
        results.push(r);
        process.stderr.write(
          `${strategy.padEnd(10)} n=${String(n).padStart(5)}  rate=${r.achievedRateHz.toFixed(4)} Hz  ` +
            `cycle=${r.cycleMs.toFixed(0)} ms  lag p99=${r.lag.p99Ms.toFixed(1)} ms  ` +
            `cpu=${r.cpuPercent.toFixed(1)} %  rss=${r.peakRssMB.toFixed(0)} MB  ` +
            `server cpu=${(r.serverCpuPercent ?? 0).toFixed(1)} %\n`,
        );
      }
    }
  } finally {
    if (server.connected) server.disconnect();
    if (server.exitCode === null) server.kill('SIGTERM');
  }
  const report: Report = {
    bench: 'sampling',
    machine: { ...before, load1After: os.loadavg()[0] },
    results,
  };
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  if (write) writeOutputs(report);
}

interface Report {
  bench: string;
  machine: Machine & { load1After: number };
  results: RunResult[];
}

/** docs/sampling-rate.svg, plus the raw JSON and the Markdown table under bench/out/. */
function writeOutputs(report: Report): void {
  mkdirSync(path.join(root, 'docs'), { recursive: true });
  mkdirSync(path.join(root, 'bench/out'), { recursive: true });
  writeFileSync(path.join(root, 'docs/sampling-rate.svg'), plot(report.results));
  writeFileSync(path.join(root, 'bench/out/sampling.json'), `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(path.join(root, 'bench/out/sampling-table.md'), markdownTable(report.results));
}

const fmt = (v: number, digits: number) =>
  v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });

/** The results table of docs/benchmarks/sampling.md. */
export function markdownTable(results: RunResult[]): string {
  const rows = [
    '| N | strategy | rate / sensor (Hz) | % of target | round p50 (ms) | cycle (ms) | cycle / latency | lag p99 (ms) | CPU (% core) | peak RSS (MB) |',
    '|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of results) {
    rows.push(
      `| ${fmt(r.n, 0)} | ${r.strategy} | ${fmt(r.achievedRateHz, 4)} | ${fmt(r.rateRatio * 100, 2)} | ` +
        `${fmt(r.roundMs.p50, 1)} | ${fmt(r.cycleMs, 0)}${r.cycleExtrapolated ? ' (extrapolated)' : ''} | ` +
        `${fmt(r.cycleOverLatency, 3)} | ${fmt(r.lag.p99Ms, 1)} | ${fmt(r.cpuPercent, 1)} | ${fmt(r.peakRssMB, 0)} |`,
    );
  }
  return `${rows.join('\n')}\n`;
}

function plot(results: RunResult[]): string {
  return lineChartSvg({
    title: 'Achieved sample rate per sensor (target 1 Hz, 100 ms latency, loopback Modbus TCP)',
    xLabel: 'sensors (N)',
    yLabel: 'samples per second per sensor',
    logX: true,
    logY: true,
    reference: { y: 1, label: 'target 1 Hz' },
    series: STRATEGIES.map((strategy) => ({
      name: strategy,
      points: results
        .filter((r) => r.strategy === strategy)
        .map((r) => [r.n, Math.max(r.achievedRateHz, 1e-4)] as [number, number]),
    })).filter((series) => series.points.length > 0),
  });
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv[0] === '--serve') return serverMain(Number(argv[1]));
  if (argv[0] === '--agent') {
    const [, strategy, n, port, windowS] = argv;
    const result = await agentMain(strategy as Strategy, Number(n), Number(port), Number(windowS));
    process.send?.(result, () => process.exit(0));
    return;
  }
  const { values } = parseArgs({
    args: argv,
    options: {
      ns: { type: 'string', default: '10,100,1000,10000' },
      window: { type: 'string', default: '10' },
      strategies: { type: 'string', default: 'sequential,naive,sampler' },
      'no-write': { type: 'boolean', default: false },
      'from-json': { type: 'string' },
      baseline: { type: 'string' },
    },
  });
  if (values['from-json']) {
    // Redraw the plot and table from a saved run, without measuring again.
    writeOutputs(JSON.parse(readFileSync(values['from-json'], 'utf8')) as Report);
    return;
  }
  const ns = values.ns.split(',').map(Number);
  const strategies = values.strategies.split(',') as Strategy[];
  const unknown = strategies.filter((x) => !STRATEGIES.includes(x));
  if (unknown.length > 0) throw new Error(`unknown strategy: ${unknown.join(', ')}`);
  const baseline = values.baseline;
  if (strategies.includes('baseline')) {
    if (!baseline) throw new Error('--strategies baseline needs --baseline DIR (another checkout)');
    if (!existsSync(baselineScript(baseline))) {
      throw new Error(
        `--baseline ${baseline}: no ${baselineScript(baseline)}; run "npx tsc -p tsconfig.bench.json" there first`,
      );
    }
  }
  await orchestrate(ns, strategies, Number(values.window), !values['no-write'], baseline);
}

await main();
