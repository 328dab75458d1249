/**
 * bench/sampler-cost — what the Sampler itself costs per sensor, without I/O and without
 * depending on how busy the machine is: N sensors whose driver answers at once, driven by a
 * TestClock (no real waiting), measured as
 *   - heap retained per sensor while every sensor waits for its next slot (after a full GC);
 *   - CPU per round (process CPU time over 20 slots ÷ rounds, TestClock bookkeeping included).
 * With --baseline DIR it measures another checkout's compiled bench (tsc -p
 * tsconfig.bench.json there) the same way, each in a fresh process, alternating.
 *
 *   npm run bench:sampler-cost -- [--n 10000] [--repeat 2] [--baseline DIR]
 *
 * Prints JSON on stdout.
 */
import { fork } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { AGENT_NODE_FLAGS } from '../agent/ops/node-flags.js';

const self = fileURLToPath(import.meta.url);
/** The compiled tree this script belongs to (bench/out/dist). */
const ownRoot = path.resolve(path.dirname(self), '..');
const SLOTS = 20;
const INTERVAL_MS = 1000;

interface CostResult {
  version: string;
  n: number;
  retainedBytesPerSensor: number;
  cpuMicrosPerRound: number;
}

interface SamplerModule {
  Sampler: new (opts: object) => {
    start(): void;
    stop(): Promise<void>;
  };
}
interface TestClockLike {
  advance(ms: number): Promise<void>;
}

async function importFrom<T>(root: string, ...candidates: string[]): Promise<T> {
  let last: unknown;
  for (const c of candidates) {
    try {
      return (await import(pathToFileURL(path.join(root, c)).href)) as T;
    } catch (err) {
      last = err;
    }
  }
  throw last;
}

async function measure(root: string, n: number): Promise<Omit<CostResult, 'version'>> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('the measuring process runs with --expose-gc');
  const { Sampler } = await importFrom<SamplerModule>(root, 'agent/sampling/sampler.js');
  const { silentLogger } = await importFrom<{ silentLogger: object }>(root, 'agent/ops/logger.js');
  // The clock moved from agent/sampling/clock.ts to drivers/time.ts; either checkout works.
  const { TestClock } = await importFrom<{ TestClock: new (t: number) => TestClockLike }>(
    root,
    'drivers/time.js',
    'agent/sampling/clock.js',
  );
  const used = () => {
    gc();
    gc();
    return process.memoryUsage().heapUsed;
  };
  const answer = [
    { quantity: 'temperature', value: 21.5 },
    { quantity: 'humidity', value: 40 },
  ];
  const sensors = () =>
    Array.from({ length: n }, (_, i) => ({
      id: `s${i}`,
      index: i,
      intervalMs: INTERVAL_MS,
      timeoutMs: 500,
      driver: {
        kind: 'fake',
        quantities: ['temperature', 'humidity'],
        measure: () => Promise.resolve(answer.map((m) => ({ ...m }))),
      },
    }));
  let rounds = 0;
  const emit = (r: { quantity: string }) => {
    if (r.quantity === 'temperature') rounds++;
  };

  const clock = new TestClock(0);
  const list = sensors();
  const before = used();
  const sampler = new Sampler({ sensors: list, clock, logger: silentLogger, emit });
  sampler.start();
  // Two rounds done; every sensor now waits for slot 2.
  await clock.advance(INTERVAL_MS + 10);
  const retained = (used() - before) / n;
  const cpu0 = process.cpuUsage();
  const rounds0 = rounds;
  for (let i = 0; i < SLOTS; i++) await clock.advance(INTERVAL_MS);
  const cpu = process.cpuUsage(cpu0);
  await sampler.stop();
  return {
    n,
    retainedBytesPerSensor: Math.round(retained),
    cpuMicrosPerRound: Number(((cpu.user + cpu.system) / (rounds - rounds0)).toFixed(2)),
  };
}

function runChild(root: string, n: number): Promise<Omit<CostResult, 'version'>> {
  return new Promise((resolve, reject) => {
    const child = fork(self, ['--measure', root, String(n)], {
      execArgv: ['--expose-gc', ...AGENT_NODE_FLAGS],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    child.once('message', (m) => resolve(m as Omit<CostResult, 'version'>));
    child.once('exit', (code) => reject(new Error(`measuring ${root} exited with ${code}`)));
  });
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv[0] === '--measure') {
    const result = await measure(argv[1], Number(argv[2]));
    process.send?.(result, () => process.exit(0));
    return;
  }
  const { values } = parseArgs({
    args: argv,
    options: {
      n: { type: 'string', default: '10000' },
      repeat: { type: 'string', default: '2' },
      baseline: { type: 'string' },
    },
  });
  const n = Number(values.n);
  const versions: Array<[string, string]> = [['this checkout', ownRoot]];
  if (values.baseline) {
    versions.unshift(['baseline', path.resolve(values.baseline, 'bench/out/dist')]);
  }
  const results: CostResult[] = [];
  for (let r = 0; r < Number(values.repeat); r++) {
    for (const [version, root] of versions) {
      const result = { version, ...(await runChild(root, n)) };
      process.stderr.write(`${JSON.stringify(result)}\n`);
      results.push(result);
    }
  }
  process.stdout.write(`${JSON.stringify({ bench: 'sampler-cost', results }, null, 2)}\n`);
}

await main();
