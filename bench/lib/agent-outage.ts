/**
 * Issue #5's RSS target measured on the agent itself: "RSS grows by at most 10 MB through a
 * 60 s outage at 10,000 readings/s".
 *
 * The real agent runs in its own process — `node <AGENT_NODE_FLAGS> dist/agent/cli.js run
 * --config FILE`, the service's command and heap flags — with SENSORS Modbus TCP sensors
 * (temperature + humidity in one request, as an XY-MD02 behind a gateway) every INTERVAL_MS,
 * raw publishing on: 10,000 readings/s through sampler → ring → aggregation worker → spool →
 * publisher. The simulated Modbus gateway lives in this (the bench's) process, so neither
 * its memory nor a bench's encoding garbage is in the agent's RSS.
 *
 * VmRSS is read from /proc/<pid>/status every 0.5 s for a steady-state window with the
 * broker up, then for an outage window of the same length; peak is compared with peak and
 * median with median. For an after-GC figure the bench starts the agent's inspector with
 * SIGUSR1 (Node's own, no hook in the agent) before the first window and asks it for a full
 * GC at the end of each window (BENCH_AGENT_GC=0: no inspector at all). Zero loss: every
 * seq from the first to the spool's last_seq reached a persistent subscriber, nothing
 * dropped by the ring or the spool, nothing left in the spool after a graceful stop, and
 * the subscriber counted as many raw readings as the agent sampled.
 *
 * BENCH_AGENT_PROBE=1 (attribution, not for the reported figures): --trace-gc, a
 * process.memoryUsage() breakdown through the inspector every sample, heap snapshots on
 * SIGUSR2 at the start and end of the outage, and the agent's output kept in
 * BENCH_AGENT_PROBE_DIR (default /tmp/agent-outage-probe).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { createWriteStream, type WriteStream } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { AGENT_NODE_FLAGS } from '../../agent/ops/node-flags.js';
import { SPOOL_FILE } from '../../agent/publish/spool/sqlite-store.js';
import { startModbusTcpSensorServer } from '../../simulator/network/modbus-tcp-server.js';
import { procCpuMs } from './machine.js';
import { procMemory } from './proc-stats.js';
import { sleep } from '../../drivers/time.js';
import { subscriberProcess, until } from './subscriber-process.js';

export interface OutageBroker {
  url: string;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** 5,000 sensors × 2 quantities × 1 Hz = 10,000 readings/s. */
const SENSORS = Number(process.env.BENCH_AGENT_SENSORS ?? 5000);
const INTERVAL_MS = 1000;
const QUANTITIES_PER_SENSOR = 2;
/** Answer latency of the simulated field bus behind the Modbus gateway. */
const LATENCY_MS = 20;
const WARMUP_SEC = Number(process.env.BENCH_AGENT_WARMUP_SEC ?? 20);
const SAMPLE_MS = 500;
const GATEWAY = 'outage-agent';
const USE_GC = process.env.BENCH_AGENT_GC !== '0';
const PROBE = process.env.BENCH_AGENT_PROBE === '1';
const PROBE_DIR = process.env.BENCH_AGENT_PROBE_DIR ?? '/tmp/agent-outage-probe';
/**
 * BENCH_AGENT_CONTROL=1: the same two windows with the broker up in both — how much RSS
 * moves without any outage (warm-up drift, allocator steps), to read the outage figure by.
 */
const CONTROL = process.env.BENCH_AGENT_CONTROL === '1';

const mb = (kb: number) => Math.round((kb / 1024) * 10) / 10;
const round1 = (x: number) => Math.round(x * 10) / 10;

interface MemSample {
  /** Seconds since the window started. */
  t: number;
  rssKb: number;
  anonKb: number;
  fileKb: number;
  /** process.memoryUsage() in the agent, probe mode only (bytes). */
  heap?: { heapUsed: number; heapTotal: number; external: number; arrayBuffers: number };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function summary(samples: MemSample[]) {
  const rss = samples.map((s) => s.rssKb);
  const tenth = Math.max(1, Math.floor(rss.length / 10));
  const avg = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  return {
    samples: rss.length,
    minMB: mb(Math.min(...rss)),
    medianMB: mb(median(rss)),
    maxMB: mb(Math.max(...rss)),
    // Still climbing within the window (warm-up, or growth) shows here.
    trendFirstToLastTenthMB: mb(avg(rss.slice(-tenth)) - avg(rss.slice(0, tenth))),
    anonMedianMB: mb(median(samples.map((s) => s.anonKb))),
    fileMedianMB: mb(median(samples.map((s) => s.fileKb))),
  };
}

// --- the inspector, for a full GC and (probe) memoryUsage -------------------------------

/** A WebSocket client for the agent's inspector in a helper process (Node 20's WebSocket). */
const INSPECTOR_CLIENT = `
const ws = new WebSocket(process.argv[1]);
await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = reject; });
ws.onmessage = (m) => {
  const d = JSON.parse(String(m.data));
  if (d.id !== undefined) process.stdout.write(JSON.stringify(d) + '\\n');
};
ws.onclose = () => process.exit(0);
let buf = '';
process.stdin.on('data', (c) => {
  buf += c;
  for (let i = buf.indexOf('\\n'); i >= 0; i = buf.indexOf('\\n')) {
    const line = buf.slice(0, i);
    buf = buf.slice(i + 1);
    if (line) ws.send(line);
  }
});
process.stdin.on('end', () => { ws.close(); process.exit(0); });
process.stdout.write('ready\\n');
`;

class Inspector {
  private nextId = 1;
  private readonly pending = new Map<number, (result: unknown) => void>();
  private constructor(private readonly child: ChildProcess) {
    let buf = '';
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const lines = buf.split('\n');
      buf = lines.pop() ?? '';
      for (const line of lines) {
        if (!line.startsWith('{')) continue;
        const msg = JSON.parse(line) as { id: number; result?: unknown };
        this.pending.get(msg.id)?.(msg.result);
        this.pending.delete(msg.id);
      }
    });
  }

  static async connect(url: string): Promise<Inspector> {
    const child = spawn(
      process.execPath,
      [
        '--no-warnings',
        '--experimental-websocket',
        '--input-type=module',
        '-e',
        INSPECTOR_CLIENT,
        url,
      ],
      { stdio: ['pipe', 'pipe', 'inherit'] },
    );
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('inspector client did not start')), 10_000);
      child.stdout!.once('data', () => (clearTimeout(t), resolve()));
    });
    return new Inspector(child);
  }

  call(method: string, params: object = {}, timeoutMs = 30_000): Promise<unknown> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`inspector ${method} timed out`));
      }, timeoutMs);
      this.pending.set(id, (r) => (clearTimeout(t), resolve(r)));
      this.child.stdin!.write(JSON.stringify({ id, method, params }) + '\n');
    });
  }

  async gc(): Promise<void> {
    await this.call('HeapProfiler.collectGarbage');
  }

  async memoryUsage(): Promise<MemSample['heap']> {
    const r = (await this.call('Runtime.evaluate', {
      expression: 'JSON.stringify(process.memoryUsage())',
      returnByValue: true,
    })) as { result?: { value?: string } };
    return r.result?.value ? (JSON.parse(r.result.value) as MemSample['heap']) : undefined;
  }

  close(): void {
    this.child.stdin!.end();
  }
}

// --- the subscriber: every seq, every reading -------------------------------------------

const SUBSCRIBER_SOURCE = `
import mqtt from 'mqtt';
const [url, topic] = process.argv.slice(1);
const seqs = new Set();
let messages = 0, readings = 0, minSeq = Infinity, maxSeq = 0, lastCreatedAt = 0;
const client = await mqtt.connectAsync(url, { clientId: 'bench-agent-outage', clean: false, reconnectPeriod: 200 });
client.on('error', () => undefined);
client.on('message', (_t, payload) => {
  messages++;
  const msg = JSON.parse(payload.toString('utf8'));
  if (seqs.has(msg.seq)) return;
  seqs.add(msg.seq);
  minSeq = Math.min(minSeq, msg.seq);
  maxSeq = Math.max(maxSeq, msg.seq);
  lastCreatedAt = Math.max(lastCreatedAt, msg.createdAt);
  readings += msg.readings ? msg.readings.length : 0;
});
await client.subscribeAsync(topic, { qos: 1 });
process.stdout.write('ready\\n');
setInterval(() => process.stdout.write(JSON.stringify({ seqs: seqs.size, messages, readings,
  minSeq: seqs.size ? minSeq : 0, maxSeq, lastCreatedAt }) + '\\n'), 100);
process.stdin.on('end', () => client.endAsync(true).then(() => process.exit(0)));
process.stdin.resume();
`;

interface SubTally {
  seqs: number;
  messages: number;
  readings: number;
  minSeq: number;
  maxSeq: number;
  lastCreatedAt: number;
}

async function subscriber(url: string, topic: string) {
  const tally: SubTally = {
    seqs: 0,
    messages: 0,
    readings: 0,
    minSeq: 0,
    maxSeq: 0,
    lastCreatedAt: 0,
  };
  return subscriberProcess(SUBSCRIBER_SOURCE, [url, topic], tally);
}

// --- the agent --------------------------------------------------------------------------

/** The built CLI; the agent runs as shipped (compiled JS), not through tsx. */
function agentCli(root: string): string {
  const cli = path.join(root, 'dist/agent/cli.js');
  if (!existsSync(cli)) throw new Error(`${cli} not found: run \`npm run build\` first`);
  const src = path.join(root, 'agent/publish/spool/spool.ts');
  const built = path.join(root, 'dist/agent/publish/spool/spool.js');
  if (existsSync(src) && existsSync(built) && statSync(src).mtimeMs > statSync(built).mtimeMs)
    process.stderr.write('bench: dist/ is older than agent/ sources; run `npm run build`\n');
  return cli;
}

interface AgentLog {
  /** From the "pipeline stopped" line. */
  readings?: number;
  ringDropped?: number;
  /** From the "publisher stopped" line. */
  leftInSpool?: number;
  warnings: number;
  errors: number;
}

function startAgent(root: string, configFile: string, cwd: string) {
  const flags: string[] = [...AGENT_NODE_FLAGS];
  if (USE_GC || PROBE) flags.push('--inspect-port=127.0.0.1:0');
  if (PROBE) flags.push('--trace-gc', '--heapsnapshot-signal=SIGUSR2');
  const child = spawn(process.execPath, [...flags, agentCli(root), 'run', '--config', configFile], {
    stdio: ['ignore', 'pipe', 'pipe'],
    cwd,
  });
  const log: AgentLog = { warnings: 0, errors: 0 };
  let inspectorUrl: string | undefined;
  const probeOut: WriteStream | undefined = PROBE
    ? createWriteStream(path.join(PROBE_DIR, 'agent.out'))
    : undefined;
  let buf = '';
  // Always drain stdout: a full pipe would block the agent's (synchronous) logger.
  child.stdout!.on('data', (d: Buffer) => {
    probeOut?.write(d);
    buf += d.toString();
    const lines = buf.split('\n');
    buf = lines.pop() ?? '';
    for (const line of lines) {
      if (!line.startsWith('{')) continue;
      let rec: Record<string, unknown>;
      try {
        rec = JSON.parse(line) as Record<string, unknown>;
      } catch {
        continue;
      }
      const level = Number(rec.level);
      if (level === 40) log.warnings++;
      if (level >= 50) log.errors++;
      if (rec.msg === 'pipeline stopped') {
        log.readings = Number(rec.readings);
        log.ringDropped = Number(rec.dropped);
      }
      if (rec.msg === 'publisher stopped' || rec.msg?.toString().startsWith('publisher stopped'))
        log.leftInSpool = Number(rec.leftInSpool);
    }
  });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
    probeOut?.write(d);
    inspectorUrl ??= /ws:\/\/127\.0\.0\.1:\d+\/[\w-]+/.exec(err)?.[0];
  });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return {
    pid: child.pid!,
    log,
    exited,
    stderr: () => err,
    /** Node starts its inspector on SIGUSR1; the URL is printed on stderr. */
    async openInspector(): Promise<Inspector> {
      child.kill('SIGUSR1');
      if (!(await until(() => inspectorUrl !== undefined, 10_000)))
        throw new Error('the agent did not start its inspector');
      return Inspector.connect(inspectorUrl!);
    },
    signal: (s: NodeJS.Signals) => child.kill(s),
    close: () => probeOut?.end(),
  };
}

/** The agent-process outage measurement; see the header. */
export async function agentOutage(
  broker: OutageBroker,
  dir: string,
  root: string,
  outageSec: number,
) {
  if (PROBE) mkdirSync(PROBE_DIR, { recursive: true });
  const work = path.join(dir, 'agent-outage');
  mkdirSync(work, { recursive: true });
  const server = await startModbusTcpSensorServer({
    delayMs: LATENCY_MS,
    units: Math.ceil(SENSORS / 100),
    sensorsPerUnit: 100,
  });
  const sensors = Array.from({ length: SENSORS }, (_, i) => {
    const s = server.sensor(i);
    return {
      id: `net-${i}`,
      driver: 'modbus-tcp',
      host: s.host,
      port: s.port,
      unitId: s.unitId,
      registers: s.registers,
      intervalMs: INTERVAL_MS,
    };
  });
  // Defaults everywhere else (window 10 s, batch 256 KiB, spool FULL, inflight 16, ring
  // 65,536), as an installation that turns raw publishing on would run.
  const config = {
    gateway: { id: GATEWAY },
    mqtt: { url: broker.url },
    batch: { raw: true },
    spool: { dir: path.join(work, 'state') },
    sampling: { startSpreadMs: INTERVAL_MS },
    log: { level: 'info' },
    sensors,
  };
  const configFile = path.join(work, 'config.json');
  writeFileSync(configFile, JSON.stringify(config));
  const sub = await subscriber(broker.url, `edge/${GATEWAY}/telemetry`);
  const load0 = os.loadavg().map((l) => Math.round(l * 100) / 100);
  const agent = startAgent(root, configFile, PROBE ? PROBE_DIR : work);
  let inspector: Inspector | undefined;
  try {
    if (!(await until(() => sub.tally.seqs > 0, 60_000)))
      throw new Error(`the agent published nothing in 60 s: ${agent.stderr()}`);
    await sleep(WARMUP_SEC * 1000);
    if (USE_GC || PROBE) {
      inspector = await agent.openInspector();
      // Once before the first window, so the session's own allocations are not in it.
      await inspector.gc();
      await sleep(1000);
    }

    const sampleWindow = async (seconds: number): Promise<MemSample[]> => {
      const samples: MemSample[] = [];
      const t0 = performance.now();
      // Bounded: one sample per SAMPLE_MS for `seconds`.
      for (let i = 0; i < Math.ceil((seconds * 1000) / SAMPLE_MS); i++) {
        await sleep(Math.max(0, t0 + (i + 1) * SAMPLE_MS - performance.now()));
        const m = procMemory(agent.pid);
        if (!m) throw new Error(`the agent exited: ${agent.stderr()}`);
        const heap = PROBE ? await inspector?.memoryUsage() : undefined;
        samples.push({
          t: round1((performance.now() - t0) / 1000),
          ...m,
          ...(heap ? { heap } : {}),
        });
      }
      return samples;
    };
    const afterGc = async () => {
      if (!inspector) return undefined;
      await inspector.gc();
      await sleep(300);
      return procMemory(agent.pid)?.rssKb;
    };

    // Steady state, broker up: the baseline.
    const sub0 = { ...sub.tally };
    const cpu0 = procCpuMs(agent.pid);
    const tb0 = performance.now();
    const before = await sampleWindow(outageSec);
    const beforeSec = (performance.now() - tb0) / 1000;
    const cpuBefore = procCpuMs(agent.pid) - cpu0;
    const readingsPerSec = (sub.tally.readings - sub0.readings) / beforeSec;
    const batchesPerSec = (sub.tally.seqs - sub0.seqs) / beforeSec;
    const gcBefore = await afterGc();

    // The outage, same length.
    if (!CONTROL) await broker.stop();
    if (PROBE) agent.signal('SIGUSR2');
    const seqAtOutage = sub.tally.maxSeq;
    const during = await sampleWindow(outageSec);
    const gcDuring = await afterGc();
    if (PROBE) agent.signal('SIGUSR2');
    inspector?.close();
    inspector = undefined;

    // Back: the backlog replays while sampling continues; then a graceful stop.
    if (!CONTROL) await broker.start();
    const tr0 = performance.now();
    const caughtUp = await until(
      () =>
        sub.tally.seqs === sub.tally.maxSeq - sub.tally.minSeq + 1 &&
        sub.tally.maxSeq > seqAtOutage &&
        Date.now() - sub.tally.lastCreatedAt < 3000,
      120_000,
    );
    const catchUpSec = (performance.now() - tr0) / 1000;
    agent.signal('SIGTERM');
    const exitCode = await Promise.race([agent.exited, sleep(30_000).then(() => 'timeout')]);
    if (exitCode === 'timeout') agent.signal('SIGKILL');
    const db = new Database(path.join(work, 'state', SPOOL_FILE), { readonly: true });
    const meta = (key: string) =>
      (db.prepare('SELECT value FROM meta WHERE key = ?').get(key) as { value: number } | undefined)
        ?.value ?? 0;
    const lastSeq = meta('last_seq');
    const spoolDropped = meta('dropped');
    const leftRows = (db.prepare('SELECT count(*) AS n FROM batches').get() as { n: number }).n;
    db.close();
    await until(() => sub.tally.maxSeq >= lastSeq, 10_000);
    await sleep(300);

    const b = summary(before);
    const d = summary(during);
    const t = sub.tally;
    return {
      what: 'the agent process (dist/agent/cli.js run, AGENT_NODE_FLAGS), VmRSS from /proc',
      nodeFlags: [...AGENT_NODE_FLAGS],
      sensors: SENSORS,
      quantitiesPerSensor: QUANTITIES_PER_SENSOR,
      intervalMs: INTERVAL_MS,
      targetReadingsPerSec: (SENSORS * QUANTITIES_PER_SENSOR * 1000) / INTERVAL_MS,
      readingsPerSecBefore: Math.round(readingsPerSec),
      batchesPerSecBefore: Math.round(batchesPerSec * 100) / 100,
      agentCpuPercentBefore: Math.round((cpuBefore / (beforeSec * 1000)) * 1000) / 10,
      windowSeconds: outageSec,
      warmupSeconds: WARMUP_SEC,
      inspector: USE_GC || PROBE,
      probe: PROBE,
      // true: no outage at all in the second window (BENCH_AGENT_CONTROL=1).
      control: CONTROL,
      loadavgStart: load0,
      loadavgEnd: os.loadavg().map((l) => Math.round(l * 100) / 100),
      before: b,
      during: d,
      rssGrowthMaxMB: round1(d.maxMB - b.maxMB),
      rssGrowthMedianMB: round1(d.medianMB - b.medianMB),
      rssAfterGcBeforeMB: gcBefore === undefined ? null : mb(gcBefore),
      rssAfterGcOutageMB: gcDuring === undefined ? null : mb(gcDuring),
      rssGrowthAfterGcMB:
        gcBefore === undefined || gcDuring === undefined ? null : mb(gcDuring - gcBefore),
      catchUpSeconds: round1(catchUpSec),
      caughtUp,
      exitCode,
      loss: {
        lastSeq,
        firstSeqReceived: t.minSeq,
        receivedDistinctSeqs: t.seqs,
        missingSeqs: lastSeq - t.minSeq + 1 - t.seqs,
        duplicateMessages: t.messages - t.seqs,
        spoolDropped,
        leftInSpool: leftRows,
        ringDropped: agent.log.ringDropped ?? null,
        readingsSampled: agent.log.readings ?? null,
        readingsReceived: t.readings,
        agentWarnings: agent.log.warnings,
        agentErrors: agent.log.errors,
      },
      zeroLoss:
        t.minSeq === 1 &&
        lastSeq - t.minSeq + 1 === t.seqs &&
        spoolDropped === 0 &&
        leftRows === 0 &&
        agent.log.ringDropped === 0 &&
        agent.log.readings === t.readings,
      samplesMB: {
        before: before.map((s) => mb(s.rssKb)),
        during: during.map((s) => mb(s.rssKb)),
      },
      ...(PROBE
        ? {
            heapMB: {
              before: before.map((s) => heapMB(s.heap)),
              during: during.map((s) => heapMB(s.heap)),
            },
          }
        : {}),
    };
  } finally {
    inspector?.close();
    if (procMemory(agent.pid)) {
      agent.signal('SIGKILL');
      await agent.exited;
    }
    agent.close();
    await sub.close();
    await server.close();
  }
}

function heapMB(h: MemSample['heap']) {
  if (!h) return null;
  const m = (b: number) => Math.round((b / 1048576) * 10) / 10;
  return [m(h.heapUsed), m(h.heapTotal), m(h.external), m(h.arrayBuffers)];
}
