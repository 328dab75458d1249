/**
 * bench/slow-disk — does disk latency reach the sampler? (issue 22, item 1). The same
 * agent, side by side in one invocation, cases interleaved round by round so every ratio
 * is taken on one machine at one time:
 *   no-strace    the agent alone: with `reference`, what strace itself costs;
 *   reference    under strace, nothing injected: what every ratio is taken against;
 *   delay-200ms  every fsync/fdatasync of every thread held 200 ms on its way out;
 *   delay-500ms  the same, 500 ms;
 *   stall-5s     one fsync held 5 s, STALL_AT_SEC into the measuring window (the call is
 *                picked from the same round's reference trace: bench/lib/strace.ts).
 *
 * The agent: `node <AGENT_NODE_FLAGS> dist/agent/cli.js simulate --sensors 100 --latency
 * 100 --interval 200 --window 1000` (100 simulated Modbus TCP sensors in the agent's own
 * process, 5 readings a second each, 1 s windows), under `strace -f` (bench/lib/strace.ts),
 * against one mosquitto on an ephemeral loopback port, with one subscriber process counting
 * the readings delivered per window (bench/lib/window-tally.ts). Each run has its own
 * gateway id and state dir (on a disk, not tmpfs) and stops itself (`--duration`).
 *
 * Per run, over a window of MEASURE_SEC whole seconds starting WARMUP_SEC after the pipeline
 * started (the first live-view line): readings delivered in windows starting within it (by
 * the end of the run, graceful stop included), against the same round's reference;
 * event-loop delay of the main thread (bench/lib/loop-probe.ts, preloaded: a 20 ms timer's
 * lateness over exactly the window); scheduling lag (the live view's p99 per 1 s line);
 * RSS and CPU from /proc; the fsyncs in the trace.
 *
 *   npm run bench:slow-disk                          # builds, then 2 rounds (~9 min)
 *   BENCH_SLOW_DISK_QUICK=1 npx tsx bench/slow-disk.ts   # 1 round, 3 s warm-up, 10 s window
 *
 * Environment: BENCH_SLOW_DISK_ROUNDS (2), _WARMUP_SEC (10), _MEASURE_SEC (30), _TAIL_SEC
 * (5: run on after the window, so its last batches are out), _STALL_AT_SEC (10), _STALL_MS
 * (5000), _DELAYS_MS (200,500), _CASES (a subset of the case names above), _AGENTS
 * (label=root,…: several checkouts with a built dist/, e.g. "before=/tmp/main,after=.",
 * interleaved within each case), _DIR (work dir on a disk), _WRITE (1: docs/benchmarks/
 * slow-disk.{json,svg}; default on for a full run with default settings, else bench/out/).
 * Needs root (or CAP_SYS_PTRACE) for strace and mosquitto installed; skips with the reason
 * otherwise. Prints the report as JSON on stdout and Markdown tables on stderr.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { AGENT_NODE_FLAGS } from '../agent/ops/node-flags.js';
import { sleep } from '../drivers/time.js';
import { spawnMosquitto, type MosquittoBroker } from '../test/helpers/mosquitto.js';
import { machine, procCpuMs } from './lib/machine.js';
import {
  correctedSamples,
  LOOP_PROBE_IMPORT,
  LOOP_PROBE_PERIOD_MS,
  loopDelayBetween,
  loopDelayPerSecond,
  readLoopSamples,
} from './lib/loop-probe.js';
import { lineChartSvg } from './lib/plot.js';
import { sampleWindow, type WindowStats } from './lib/proc-stats.js';
import { repoRoot } from './lib/repo-root.js';
import { percentile } from './lib/rounds.js';
import {
  busiestSyncer,
  checkStrace,
  describeInjection,
  readSyncCalls,
  stallCall,
  straceArgs,
  type Injection,
  type SyncCallRecord,
} from './lib/strace.js';
import { until } from './lib/subscriber-process.js';
import { readingsBetween, windowTally, type WindowTallies } from './lib/window-tally.js';
import { cleanUp, cleanups, load, r1, r2, runBench, watchLoad } from './lib/run-kit.js';

const env = process.env;
const QUICK = env.BENCH_SLOW_DISK_QUICK === '1';
const num = (name: string, dflt: number) => (env[name] ? Number(env[name]) : dflt);
const ROUNDS = num('BENCH_SLOW_DISK_ROUNDS', QUICK ? 1 : 2);
const WARMUP_SEC = num('BENCH_SLOW_DISK_WARMUP_SEC', QUICK ? 3 : 10);
const MEASURE_SEC = num('BENCH_SLOW_DISK_MEASURE_SEC', QUICK ? 10 : 30);
const TAIL_SEC = num('BENCH_SLOW_DISK_TAIL_SEC', 5);
const STALL_AT_SEC = num('BENCH_SLOW_DISK_STALL_AT_SEC', QUICK ? 2 : 10);
const STALL_MS = num('BENCH_SLOW_DISK_STALL_MS', 5000);
const DELAYS_MS = (env.BENCH_SLOW_DISK_DELAYS_MS ?? '200,500')
  .split(',')
  .filter(Boolean)
  .map(Number);

/** The issue's load: 100 network sensors every 200 ms, 1 s windows. */
const SENSORS = 100;
const INTERVAL_MS = 200;
const LATENCY_MS = 100;
const WINDOW_MS = 1000;
/** Readings a perfect sampler delivers per second (one quantity per sensor). */
const NOMINAL_PER_SEC = (SENSORS * 1000) / INTERVAL_MS;
/** The targets of issue 22 item 1. */
const TARGET_PERCENT = 99.9;
const TARGET_LOOP_MS = 10;

interface Case {
  name: string;
  strace: boolean;
  injection: 'none' | 'every' | 'stall';
  delayMs: number;
}

const ALL_CASES: Case[] = [
  { name: 'no-strace', strace: false, injection: 'none', delayMs: 0 },
  { name: 'reference', strace: true, injection: 'none', delayMs: 0 },
  ...DELAYS_MS.map((d): Case => ({
    name: `delay-${d}ms`,
    strace: true,
    injection: 'every',
    delayMs: d,
  })),
  {
    name: `stall-${STALL_MS % 1000 === 0 ? `${STALL_MS / 1000}s` : `${STALL_MS}ms`}`,
    strace: true,
    injection: 'stall',
    delayMs: STALL_MS,
  },
];
const CASES = env.BENCH_SLOW_DISK_CASES
  ? ALL_CASES.filter((c) => env.BENCH_SLOW_DISK_CASES!.split(',').includes(c.name))
  : ALL_CASES;

interface AgentBuild {
  label: string;
  root: string;
}

const ROOT = repoRoot(import.meta.url);
const BUILDS: AgentBuild[] = env.BENCH_SLOW_DISK_AGENTS
  ? env.BENCH_SLOW_DISK_AGENTS.split(',')
      .filter(Boolean)
      .map((spec) => {
        const eq = spec.indexOf('=');
        if (eq <= 0) throw new Error(`BENCH_SLOW_DISK_AGENTS: "${spec}" is not label=root`);
        return { label: spec.slice(0, eq), root: path.resolve(spec.slice(eq + 1)) };
      })
  : [{ label: 'edge-agent', root: ROOT }];

const WORK = env.BENCH_SLOW_DISK_DIR ?? path.join(ROOT, 'bench/out/slow-disk-work');
const DEFAULT_RUN =
  !QUICK &&
  Object.keys(env).every((k) => !k.startsWith('BENCH_SLOW_DISK_') || k === 'BENCH_SLOW_DISK_DIR');
const WRITE_DOCS = env.BENCH_SLOW_DISK_WRITE ? env.BENCH_SLOW_DISK_WRITE === '1' : DEFAULT_RUN;

// --- one run ----------------------------------------------------------------------------

interface LiveLine {
  /** Arrival at the bench, Date.now(). */
  at: number;
  readingsPerSec: number;
  lagP50Ms: number;
  lagP99Ms: number;
  loopP99Ms: number;
  ringDropped: number;
  spool: number;
  rssMb: number;
}

const LIVE =
  /^readings\/s=(\d+) .*lag\.p50=([\d.]+)ms lag\.p99=([\d.]+)ms loop\.p99=([\d.]+)ms ring=\d+\/\d+ dropped=(\d+) spool=(\d+) rss=(\d+)MB/;

/** The node process strace started (its child), found through /proc. */
function childOf(ppid: number): number | undefined {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(f[1]) === ppid) return Number(entry);
    } catch {
      // gone between the listing and the read
    }
  }
  return undefined;
}

function agentCli(root: string): string {
  const cli = path.join(root, 'dist/agent/cli.js');
  if (!existsSync(cli)) throw new Error(`${cli} not found: run \`npm run build\` in ${root}`);
  return cli;
}

interface RunPlan {
  build: AgentBuild;
  kase: Case;
  round: number;
  injection: Injection;
  seccompBpf: boolean;
}

async function run(plan: RunPlan, broker: MosquittoBroker, tallies: WindowTallies) {
  const { build, kase, round } = plan;
  const gateway = `slow-disk-${BUILDS.length > 1 ? `${build.label}-` : ''}${kase.name}-r${round + 1}`;
  const dir = path.join(WORK, gateway);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const traceFile = path.join(dir, 'strace.txt');
  const probeFile = path.join(dir, 'loop-probe.json');
  // Room for the window's alignment to a whole second after the warm-up.
  const durationSec = WARMUP_SEC + MEASURE_SEC + TAIL_SEC + 2;
  const nodeArgs = [
    ...AGENT_NODE_FLAGS,
    LOOP_PROBE_IMPORT,
    agentCli(build.root),
    'simulate',
    '--broker',
    broker.url,
    '--gateway',
    gateway,
    '--state-dir',
    path.join(dir, 'state'),
    '--sensors',
    String(SENSORS),
    '--latency',
    String(LATENCY_MS),
    '--interval',
    String(INTERVAL_MS),
    '--window',
    String(WINDOW_MS),
    '--duration',
    String(durationSec),
  ];
  const [cmd, args] = kase.strace
    ? [
        'strace',
        [...straceArgs(traceFile, plan.injection, plan.seccompBpf), process.execPath, ...nodeArgs],
      ]
    : [process.execPath, nodeArgs];
  const load0 = load();
  const t0 = Date.now();
  const child: ChildProcess = spawn(cmd, args, {
    cwd: dir,
    env: { ...process.env, LOOP_PROBE_OUT: probeFile },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const gone = () => child.exitCode !== null || child.signalCode !== null;
  /** True when the process exited within ms; the timer ends either way. */
  const exitsWithin = async (ms: number): Promise<boolean> => {
    const timeout = new AbortController();
    const timedOut = sleep(Math.max(0, ms), timeout.signal).then(
      () => false,
      () => false,
    );
    const result = await Promise.race([exited.then(() => true), timedOut]);
    timeout.abort();
    return result;
  };
  const live: LiveLine[] = [];
  const log = { warnings: 0, errors: 0, messages: new Map<string, number>() };
  let tail = '';
  let buf = '';
  // Always drain: a full pipe would block the agent's synchronous logger.
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    const lines = buf.split('\n');
    buf = lines.pop() ?? '';
    for (const line of lines) {
      tail = (tail + line + '\n').slice(-4000);
      const m = LIVE.exec(line);
      if (m) {
        live.push({
          at: Date.now(),
          readingsPerSec: Number(m[1]),
          lagP50Ms: Number(m[2]),
          lagP99Ms: Number(m[3]),
          loopP99Ms: Number(m[4]),
          ringDropped: Number(m[5]),
          spool: Number(m[6]),
          rssMb: Number(m[7]),
        });
        continue;
      }
      if (!line.startsWith('{')) continue;
      try {
        const rec = JSON.parse(line) as { level?: number; msg?: string };
        if ((rec.level ?? 0) < 40) continue;
        if (rec.level! >= 50) log.errors++;
        else log.warnings++;
        const msg = String(rec.msg).slice(0, 160);
        log.messages.set(msg, (log.messages.get(msg) ?? 0) + 1);
      } catch {
        // not a log record
      }
    }
  });
  child.stderr!.on('data', (d: Buffer) => (tail = (tail + d.toString()).slice(-4000)));
  const stop = async () => {
    if (gone()) return;
    const pid = kase.strace ? childOf(child.pid!) : child.pid;
    if (pid) process.kill(pid, 'SIGTERM');
    if (!(await exitsWithin(15_000))) {
      if (pid) process.kill(pid, 'SIGKILL');
      child.kill('SIGKILL');
      await exited;
    }
  };
  cleanups.push(stop);

  // The pipeline has started when the live view speaks (its first line comes 1 s after).
  if (!(await until(() => live.length > 0 || gone(), 120_000)) || live.length === 0)
    throw new Error(`${gateway}: no live view within 120 s: ${tail}`);
  const startedAt = live[0].at - 1000;
  const pid = kase.strace ? childOf(child.pid!) : child.pid!;
  if (!pid) throw new Error(`${gateway}: the agent process under strace was not found`);
  const from = Math.ceil((startedAt + WARMUP_SEC * 1000) / WINDOW_MS) * WINDOW_MS;
  const to = from + MEASURE_SEC * 1000;

  await sleep(Math.max(0, from - Date.now()));
  const straceCpu0 = kase.strace ? procCpuMs(child.pid) : 0;
  let steady: WindowStats | { error: string };
  try {
    steady = await sampleWindow(pid, MEASURE_SEC);
  } catch (err) {
    steady = { error: (err as Error).message };
  }
  const straceCpuMs = kase.strace ? procCpuMs(child.pid) - straceCpu0 : 0;

  // It stops itself (--duration); the bound is for a drain that never ends.
  if (!(await exitsWithin(startedAt + (durationSec + 90) * 1000 - Date.now()))) await stop();
  const exitCode = child.exitCode;
  const stoppedAt = Date.now();
  // What was published before the exit reaches the subscriber's next tally (every 100 ms).
  await sleep(1500);

  const g = tallies.gateways[gateway];
  const delivered = readingsBetween(g, from, to);
  const nominal = NOMINAL_PER_SEC * MEASURE_SEC;
  const samples = readLoopSamples(probeFile);
  const corrected = samples && correctedSamples(samples);
  const inWindow = live.filter((l) => l.at > from && l.at <= to + 500);
  const lagP99s = inWindow.map((l) => l.lagP99Ms).sort((a, b) => a - b);
  const calls = kase.strace ? readSyncCalls(traceFile) : [];
  const sync = syncFigures(calls, from, to, pid);
  const perWindow: number[] = [];
  for (let s = from; s < to; s += WINDOW_MS) perWindow.push(readingsBetween(g, s, s + WINDOW_MS));
  const last = live[live.length - 1];
  const result = {
    agent: build.label,
    case: kase.name,
    round: round + 1,
    gateway,
    injection: kase.strace ? describeInjection(plan.injection) : 'no strace',
    startupMs: startedAt - t0,
    window: { from: new Date(from).toISOString(), seconds: MEASURE_SEC },
    readings: {
      delivered,
      nominal,
      percentOfNominal: r2((100 * delivered) / nominal),
      /** Filled in against the round's reference below. */
      percentOfReference: null as number | null,
      perWindow,
    },
    loopDelayMs: corrected
      ? {
          ...loopDelayBetween(corrected, from, to),
          uncorrected: loopDelayBetween(samples!, from, to),
          periodMs: LOOP_PROBE_PERIOD_MS,
        }
      : null,
    loopDelayPerSecondMs: corrected ? loopDelayPerSecond(corrected, from, MEASURE_SEC) : [],
    schedulingLagMs: {
      lines: inWindow.length,
      p99Median: r1(percentile(lagP99s, 50)),
      p99Max: r1(lagP99s.length ? lagP99s[lagP99s.length - 1] : 0),
      p50Median: r1(
        percentile(
          inWindow.map((l) => l.lagP50Ms).sort((a, b) => a - b),
          50,
        ),
      ),
    },
    agentReports: last
      ? {
          loopP99SinceStartMs: last.loopP99Ms,
          ringDropped: last.ringDropped,
          spoolDepth: last.spool,
        }
      : null,
    process:
      'error' in steady
        ? steady
        : {
            rssMedianMB: steady.rssMedianMB,
            rssPeakMB: steady.rssPeakMB,
            cpuPercent: steady.cpuPercent,
            cpuMainThreadPercent: r1((steady.cpuMainThreadMs / (steady.seconds * 1000)) * 100),
            cpuOtherThreadsPercent: r1((steady.cpuOtherThreadsMs / (steady.seconds * 1000)) * 100),
            stracePercent: kase.strace ? r1((straceCpuMs / (steady.seconds * 1000)) * 100) : null,
          },
    sync,
    seqs: g
      ? {
          distinct: g.distinctSeqs,
          first: g.minSeq,
          last: g.maxSeq,
          missing: g.maxSeq - g.minSeq + 1 - g.distinctSeqs,
          duplicates: g.duplicates,
        }
      : null,
    log: {
      warnings: log.warnings,
      errors: log.errors,
      messages: Object.fromEntries([...log.messages].slice(0, 10)),
    },
    exitCode,
    runSeconds: Math.round((stoppedAt - t0) / 1000),
    loadavgStart: load0,
    loadavgEnd: load(),
  };
  cleanups.splice(cleanups.indexOf(stop), 1);
  return { result, calls, startedAt };
}

/** The fsyncs of the window: how many, by whom, the longest pause between two of them. */
function syncFigures(calls: SyncCallRecord[], from: number, to: number, mainTid: number) {
  if (calls.length === 0) return null;
  const busiest = busiestSyncer(calls)!;
  const inWindow = calls.filter((c) => c.at >= from && c.at < to);
  const mine = busiest.calls.filter((c) => c.at >= from && c.at < to);
  let gap = 0;
  for (let i = 1; i < mine.length; i++) gap = Math.max(gap, mine[i].at - mine[i - 1].at);
  return {
    callsInWindow: inWindow.length,
    threadsInWindow: new Set(inWindow.map((c) => c.tid)).size,
    busiest: {
      call: busiest.call,
      isMainThread: busiest.tid === mainTid,
      total: busiest.calls.length,
    },
    longestGapMs: Math.round(gap),
  };
}

// --- report -----------------------------------------------------------------------------

type RunResult = Awaited<ReturnType<typeof run>>['result'];

const spread = (xs: number[]) => {
  if (xs.length === 0) return '–';
  const lo = Math.min(...xs);
  const hi = Math.max(...xs);
  return lo === hi ? `${lo}` : `${lo}–${hi}`;
};

function summary(runs: RunResult[]) {
  const out = [];
  for (const build of BUILDS)
    for (const kase of CASES) {
      const rs = runs.filter((r) => r.agent === build.label && r.case === kase.name);
      if (rs.length === 0) continue;
      const ref = (r: RunResult) =>
        runs.find((x) => x.agent === r.agent && x.round === r.round && x.case === 'reference');
      const loopDelta = rs
        .map((r) => {
          const base = ref(r)?.loopDelayMs?.p99;
          return r.loopDelayMs && base !== undefined ? r1(r.loopDelayMs.p99 - base) : null;
        })
        .filter((x): x is number => x !== null);
      const pct = rs
        .map((r) => r.readings.percentOfReference)
        .filter((x): x is number => x !== null);
      const proc = rs.map((r) => r.process).filter((p) => !('error' in p)) as Exclude<
        RunResult['process'],
        { error: string }
      >[];
      out.push({
        agent: build.label,
        case: kase.name,
        runs: rs.length,
        percentOfReference: pct,
        percentOfNominal: rs.map((r) => r.readings.percentOfNominal),
        loopP99Ms: rs.map((r) => r.loopDelayMs?.p99 ?? null),
        loopP99OverReferenceMs: loopDelta,
        loopMaxMs: rs.map((r) => r.loopDelayMs?.max ?? null),
        lagP99MedianMs: rs.map((r) => r.schedulingLagMs.p99Median),
        lagP99MaxMs: rs.map((r) => r.schedulingLagMs.p99Max),
        rssMedianMB: proc.map((p) => p.rssMedianMB),
        rssPeakMB: proc.map((p) => p.rssPeakMB),
        cpuPercent: proc.map((p) => p.cpuPercent),
        stracePercent: proc.map((p) => p.stracePercent).filter((x): x is number => x !== null),
        ringDropped: rs.map((r) => r.agentReports?.ringDropped ?? null),
        targets:
          kase.injection === 'none'
            ? null
            : {
                readings: pct.length > 0 && pct.every((p) => p >= TARGET_PERCENT),
                loop: loopDelta.length > 0 && loopDelta.every((d) => d <= TARGET_LOOP_MS),
              },
      });
    }
  return out;
}

function tables(s: ReturnType<typeof summary>, runs: RunResult[]): string {
  const multi = BUILDS.length > 1;
  const out = [
    `| ${multi ? 'agent | ' : ''}case | readings, % of reference | % of nominal | event-loop delay p99 ms | − reference ms | max ms | lag p99 ms (median / highest 1 s) | RSS median / peak MB | CPU % | strace CPU % | targets met |`,
    `|${multi ? '---|' : ''}---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|`,
  ];
  for (const c of s) {
    const t = c.targets;
    out.push(
      `| ${multi ? `${c.agent} | ` : ''}${c.case} | ${spread(c.percentOfReference)} | ${spread(c.percentOfNominal)} | ${spread(c.loopP99Ms.filter((x): x is number => x !== null))} | ${spread(c.loopP99OverReferenceMs)} | ${spread(c.loopMaxMs.filter((x): x is number => x !== null))} | ${spread(c.lagP99MedianMs)} / ${spread(c.lagP99MaxMs)} | ${spread(c.rssMedianMB)} / ${spread(c.rssPeakMB)} | ${spread(c.cpuPercent)} | ${spread(c.stracePercent)} | ${t ? `readings ${t.readings ? 'yes' : 'no'}, loop ${t.loop ? 'yes' : 'no'}` : '–'} |`,
    );
  }
  out.push(
    '',
    `| ${multi ? 'agent | ' : ''}case | round | delivered | % of ref | loop p99 / max ms | lag p99 med / max ms | RSS MB | CPU % | fsyncs in window | longest gap ms | ring dropped | exit |`,
    `|${multi ? '---|' : ''}---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|`,
  );
  for (const r of runs) {
    const p = 'error' in r.process ? undefined : r.process;
    out.push(
      `| ${multi ? `${r.agent} | ` : ''}${r.case} | ${r.round} | ${r.readings.delivered} | ${r.readings.percentOfReference ?? '–'} | ${r.loopDelayMs?.p99 ?? '–'} / ${r.loopDelayMs?.max ?? '–'} | ${r.schedulingLagMs.p99Median} / ${r.schedulingLagMs.p99Max} | ${p?.rssMedianMB ?? '–'} | ${p?.cpuPercent ?? '–'} | ${r.sync?.callsInWindow ?? '–'} | ${r.sync?.longestGapMs ?? '–'} | ${r.agentReports?.ringDropped ?? '–'} | ${r.exitCode} |`,
    );
  }
  return out.join('\n');
}

function plots(runs: RunResult[]): { loop: string; readings: string } {
  const first = runs.filter((r) => r.round === 1);
  const name = (r: RunResult) => (BUILDS.length > 1 ? `${r.agent} ${r.case}` : r.case);
  const loop = lineChartSvg({
    title: 'Longest event-loop delay per second (round 1)',
    xLabel: 's into the measuring window',
    yLabel: 'ms (log)',
    logY: true,
    series: first
      .filter((r) => r.loopDelayPerSecondMs.length > 0)
      .map((r) => ({
        name: name(r),
        points: r.loopDelayPerSecondMs.map((v, i): [number, number] => [i, Math.max(0.1, v)]),
      })),
    reference: { y: TARGET_LOOP_MS, label: `${TARGET_LOOP_MS} ms` },
  });
  const readings = lineChartSvg({
    title: 'Readings delivered per 1 s window (round 1)',
    xLabel: 's into the measuring window',
    yLabel: '% of nominal',
    series: first.map((r) => ({
      name: name(r),
      points: r.readings.perWindow.map((v, i): [number, number] => [
        i,
        r1((100 * v) / NOMINAL_PER_SEC),
      ]),
    })),
    reference: { y: 100, label: 'nominal' },
  });
  return { loop, readings };
}

/** The checkout's HEAD and the last commit that changed the agent's code in it. */
function commitOf(root: string): { head: string; agentCode: string } {
  const git = (...args: string[]) =>
    execFileSync('git', ['-C', root, ...args], { encoding: 'utf8' }).trim();
  const code = ['agent', 'drivers', 'simulator'];
  try {
    const dirty = git('status', '--porcelain', '--', ...code) ? ' (uncommitted changes)' : '';
    return {
      head: git('log', '-1', '--format=%h %s'),
      agentCode: git('log', '-1', '--format=%h %s', '--', ...code) + dirty,
    };
  } catch {
    return { head: 'unknown', agentCode: 'unknown' };
  }
}

// --- main -------------------------------------------------------------------------------

async function main(): Promise<void> {
  const st = checkStrace();
  if (!st.ok) {
    process.stderr.write(`bench:slow-disk skipped: ${st.reason}\n`);
    process.stdout.write(`${JSON.stringify({ bench: 'slow-disk', skipped: st.reason })}\n`);
    return;
  }
  if (!st.seccompBpf)
    process.stderr.write(
      'bench: strace runs without --seccomp-bpf here: every syscall stops the agent, so the figures measure strace more than the disk\n',
    );
  for (const b of BUILDS) agentCli(b.root);
  mkdirSync(WORK, { recursive: true });
  const started = new Date().toISOString();
  const machine0 = machine();
  const loads = watchLoad();

  let broker: MosquittoBroker;
  try {
    broker = await spawnMosquitto();
  } catch (err) {
    const reason = `mosquitto could not start: ${(err as Error).message.split('\n')[0]}`;
    process.stderr.write(`bench:slow-disk skipped: ${reason}\n`);
    process.stdout.write(`${JSON.stringify({ bench: 'slow-disk', skipped: reason })}\n`);
    return cleanUp();
  }
  cleanups.push(() => broker.close());
  const sub = await windowTally(broker.url);
  cleanups.push(() => sub.close());

  const runs: RunResult[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const references = new Map<string, { calls: SyncCallRecord[]; startedAt: number }>();
    for (const kase of CASES)
      for (const build of BUILDS) {
        let injection: Injection = { kind: 'none' };
        if (kase.injection === 'every') injection = { kind: 'every', delayMs: kase.delayMs };
        if (kase.injection === 'stall') {
          const ref = references.get(build.label);
          const pick =
            ref &&
            stallCall(ref.calls, ref.startedAt, (WARMUP_SEC + STALL_AT_SEC) * 1000 + WINDOW_MS / 2);
          if (!pick) {
            process.stderr.write(
              `bench: ${kase.name} skipped for ${build.label}: no reference trace in this round to pick the call from\n`,
            );
            continue;
          }
          injection = { kind: 'once', delayMs: kase.delayMs, call: pick.call, nth: pick.nth };
        }
        process.stderr.write(
          `bench: round ${round + 1}, ${build.label}, ${kase.name} (${kase.strace ? describeInjection(injection) : 'no strace'})\n`,
        );
        const { result, calls, startedAt } = await run(
          { build, kase, round, injection, seccompBpf: st.seccompBpf ?? false },
          broker,
          sub.tally,
        );
        if (kase.name === 'reference') references.set(build.label, { calls, startedAt });
        runs.push(result);
      }
  }
  for (const r of runs) {
    const ref = runs.find(
      (x) => x.agent === r.agent && x.round === r.round && x.case === 'reference',
    );
    if (ref && ref.readings.delivered > 0)
      r.readings.percentOfReference = r2((100 * r.readings.delivered) / ref.readings.delivered);
  }
  const s = summary(runs);
  const full = {
    bench: 'slow-disk',
    started,
    finished: new Date().toISOString(),
    machine: machine0,
    loadavg1: loads.range(),
    agents: BUILDS.map((b) => ({ ...b, commit: commitOf(b.root) })),
    strace: { version: st.version, seccompBpf: st.seccompBpf },
    settings: {
      quick: QUICK,
      rounds: ROUNDS,
      warmupSec: WARMUP_SEC,
      measureSec: MEASURE_SEC,
      tailSec: TAIL_SEC,
      stallAtSec: STALL_AT_SEC,
      cases: CASES.map((c) => c.name),
      command: `node ${AGENT_NODE_FLAGS.join(' ')} dist/agent/cli.js simulate --sensors ${SENSORS} --latency ${LATENCY_MS} --interval ${INTERVAL_MS} --window ${WINDOW_MS}`,
      nominalReadingsPerSec: NOMINAL_PER_SEC,
      loopProbePeriodMs: LOOP_PROBE_PERIOD_MS,
      targets: {
        readingsPercentOfReference: TARGET_PERCENT,
        loopP99OverReferenceMs: TARGET_LOOP_MS,
      },
    },
    summary: s,
    runs,
  };
  const json = `${JSON.stringify(full, null, 2)}\n`;
  const outDir = WRITE_DOCS ? path.join(ROOT, 'docs/benchmarks') : path.join(ROOT, 'bench/out');
  mkdirSync(outDir, { recursive: true });
  writeFileSync(path.join(outDir, 'slow-disk.json'), json);
  const svg = plots(runs);
  writeFileSync(path.join(outDir, 'slow-disk-loop.svg'), svg.loop);
  writeFileSync(path.join(outDir, 'slow-disk-readings.svg'), svg.readings);
  process.stdout.write(json);
  process.stderr.write(
    `\n${tables(s, runs)}\n\nwritten to ${outDir}/slow-disk.json, slow-disk-loop.svg, slow-disk-readings.svg\n`,
  );
}

runBench(main);
