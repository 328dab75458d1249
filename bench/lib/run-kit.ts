/**
 * What every process-level bench needs: rounding for its report, the load average it ran
 * under, and one place to register the children and servers to end whatever happens.
 */
import os from 'node:os';

export const r1 = (x: number) => Math.round(x * 10) / 10;
export const r2 = (x: number) => Math.round(x * 100) / 100;
/** The 1, 5 and 15 minute load averages, rounded. */
export const load = () => os.loadavg().map(r2);

/** Children and servers to end whatever happens; run in reverse order of creation. */
export const cleanups: (() => Promise<void>)[] = [];

/**
 * Sample the load average every 10 s until the bench ends; `range()` is the range of the
 * 1-minute average over the samples so far.
 */
export function watchLoad(): { range(): { min: number; max: number; samples: number } } {
  const loads = [load()];
  const timer = setInterval(() => loads.push(load()), 10_000);
  cleanups.push(async () => clearInterval(timer));
  return {
    range: () => ({
      min: Math.min(...loads.map((l) => l[0])),
      max: Math.max(...loads.map((l) => l[0])),
      samples: loads.length,
    }),
  };
}
export async function cleanUp(): Promise<void> {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
}

/**
 * Run a bench's `main`: on SIGINT/SIGTERM or when it ends, whatever happens, everything in
 * `cleanups` is ended; a failure is one line on stderr and exit code 1.
 */
export function runBench(main: () => Promise<void>): void {
  for (const sig of ['SIGINT', 'SIGTERM'] as const)
    process.once(sig, () => void cleanUp().then(() => process.exit(130)));
  main()
    .catch((err: unknown) => {
      process.stderr.write(`bench failed: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 1;
    })
    .finally(() => cleanUp());
}
