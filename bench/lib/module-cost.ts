/**
 * Where the agent's start-up memory goes, by module: a fresh node with the agent's flags
 * imports the agent's dependencies one after another (then the agent's own `run` command
 * module, which pulls in the rest of its code; then what `run` loads only when a configuration
 * uses it) and reports VmRSS and V8's used heap after a
 * full GC following each import. A step's cost is the growth over the step before, so a
 * module shared by two packages counts where it is first loaded. This is load cost (code,
 * compiled functions, native addons), not what the pipeline allocates once it runs.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { AGENT_NODE_FLAGS } from '../../agent/ops/node-flags.js';

export interface ModuleCost {
  module: string;
  /** What loading it involves in `edge-agent run`, and whether `run` needs it. */
  note: string;
  rssMB: number;
  rssDeltaMB: number;
  /** Resident pages of the node executable itself (file-backed: code, the V8 snapshot, ICU data). */
  binaryMB: number;
  binaryDeltaMB: number;
  /** Threads of the process after the step (libuv's pool starts on first use). */
  threads: number;
  heapUsedMB: number;
  heapDeltaMB: number;
}

const STEPS: { module: string; note: string; load: string }[] = [
  { module: '(node alone)', note: 'the floor', load: '' },
  {
    module: 'better-sqlite3',
    note: 'spool; native addon, one :memory: database opened',
    load: "new (req('better-sqlite3'))(':memory:').close()",
  },
  { module: 'mqtt', note: 'publisher', load: "await import('mqtt')" },
  { module: 'pino', note: 'logger', load: "await import('pino')" },
  { module: 'zod', note: 'config schema', load: "await import('zod')" },
  { module: 'yaml', note: 'config files', load: "await import('yaml')" },
  {
    module: '@serialport/stream',
    note: 'imported by the driver registry (JavaScript only; the native binding is below)',
    load: "await import('@serialport/stream')",
  },
  { module: 'unix-dgram', note: 'sd_notify; native addon', load: "req('unix-dgram')" },
  {
    module: 'agent code (dist/agent/commands/run.js)',
    note: "the agent's own modules and what they import that is not above: what `run` loads",
    load: 'await import(RUN)',
  },
  // Below: what `run` loads only when the configuration uses it.
  {
    module: 'node-cron',
    note: 'only with a cron expression in the config (a sensor schedule, a health schedule other than every S s)',
    load: "req('node-cron')",
  },
  {
    module: 'a node-cron task scheduled',
    note: 'node-cron times its tasks through Intl.DateTimeFormat (ICU data)',
    load: "req('node-cron').schedule('*/30 * * * * *', () => {}).stop()",
  },
  {
    module: 'prom-client',
    note: 'only with metrics.enabled',
    load: "await import('prom-client')",
  },
  {
    module: '@serialport/bindings-cpp',
    note: 'native addon; only when a serial port is opened',
    load: "(await import('@serialport/bindings-cpp')).autoDetect()",
  },
];

function script(root: string): string {
  const run = pathToFileURL(path.join(root, 'dist/agent/commands/run.js')).href;
  const lines = [
    "import { createRequire } from 'node:module';",
    "import { readFileSync } from 'node:fs';",
    `const req = createRequire(${JSON.stringify(path.join(root, 'package.json'))});`,
    `const RUN = ${JSON.stringify(run)};`,
    'const rssKb = () => Number(/^VmRSS:\\s+(\\d+)/m.exec(readFileSync("/proc/self/status", "utf8"))[1]);',
    "import { realpathSync } from 'node:fs';",
    'const exe = realpathSync(process.execPath);',
    'const threads = () => Number(/^Threads:\\s+(\\d+)/m.exec(readFileSync("/proc/self/status", "utf8"))[1]);',
    'const binaryKb = () => { let kb = 0, mine = false; for (const l of readFileSync("/proc/self/smaps", "utf8").split("\\n")) { const h = /^[0-9a-f]+-[0-9a-f]+ \\S+ \\S+ \\S+ \\d+\\s*(.*)$/.exec(l); if (h) mine = h[1].trim() === exe; else if (mine && l.startsWith("Rss:")) kb += Number(/\\d+/.exec(l)[0]); } return kb; };',
    'const settle = async () => { for (let i = 0; i < 3; i++) { gc(); await new Promise((r) => setTimeout(r, 50)); } };',
    'const out = [];',
  ];
  for (const s of STEPS) {
    lines.push(
      `${s.load};`,
      'await settle();',
      'out.push([rssKb(), process.memoryUsage().heapUsed, binaryKb(), threads()]);',
    );
  }
  lines.push('process.stdout.write(JSON.stringify(out));');
  return lines.join('\n');
}

/** Runs in `root` (the repository: node_modules and a built dist/). */
export async function moduleCosts(root: string): Promise<ModuleCost[]> {
  const child = spawn(
    process.execPath,
    [...AGENT_NODE_FLAGS, '--expose-gc', '--input-type=module', '-e', script(root)],
    { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  clearTimeout(timer);
  if (code !== 0) throw new Error(`module cost script failed (${code}): ${err.slice(-500)}`);
  const rows = JSON.parse(out) as [number, number, number, number][];
  const r1 = (x: number) => Math.round(x * 10) / 10;
  return STEPS.map((s, i) => {
    const [rss, heap, bin, threads] = rows[i];
    const [prevRss, prevHeap, prevBin] = rows[Math.max(0, i - 1)];
    return {
      module: s.module,
      note: s.note,
      rssMB: r1(rss / 1024),
      rssDeltaMB: i === 0 ? 0 : r1((rss - prevRss) / 1024),
      binaryMB: r1(bin / 1024),
      threads,
      binaryDeltaMB: i === 0 ? 0 : r1((bin - prevBin) / 1024),
      heapUsedMB: r1(heap / 1048576),
      heapDeltaMB: i === 0 ? 0 : r1((heap - prevHeap) / 1048576),
    };
  });
}
