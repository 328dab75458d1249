/**
 * Measures what blocking 1-Wire reads do to libuv's thread pool, against the FIFO-mode
 * simulated w1 tree (each read really blocks a pool thread for the conversion time).
 * Prints one JSON object. Run with the pool size under test, e.g.
 *   UV_THREADPOOL_SIZE=4 node --import tsx simulator/onewire/threadpool-probe.ts \
 *     --devices 8 --limit 2 --conversion 750
 * --limit 0 means unbounded. Results: docs/benchmarks/onewire.md.
 */
import { stat } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { sensorSchema, type SensorConfigOf } from '../../drivers/registry.js';
import { createDs18b20 } from '../../drivers/onewire/ds18b20.js';
import { ReadLimiter } from '../../drivers/onewire/w1-limiter.js';
import { SimulatedW1Tree } from './w1-tree.js';

export interface ProbeResult {
  threadpool: number;
  devices: number;
  limit: number;
  conversionMs: number;
  /** All devices read once, concurrently. */
  roundMs: number;
  firstReadMs: number;
  /** fs.stat calls issued one after another (25 ms apart) while the reads run. */
  stats: number;
  maxStatMs: number;
  medianStatMs: number;
  /** Nominal round on the kernel, where a conversion starts when its read gets a thread. */
  kernelRoundMs: number;
  readsOk: number;
}

export async function probe(
  devices: number,
  limit: number,
  conversionMs: number,
): Promise<ProbeResult> {
  const ids = Array.from(
    { length: devices },
    (_, i) => `28-0000000000${(i + 10).toString(16).padStart(2, '0')}`,
  );
  const tree = await SimulatedW1Tree.create({
    mode: 'fifo',
    conversionMs,
    devices: ids.map((id) => ({ id, powerOn: false })),
  });
  try {
    const limiter = new ReadLimiter(limit > 0 ? limit : 1_000_000);
    const drivers = ids.map((deviceId, i) =>
      createDs18b20(
        sensorSchema.parse({
          id: `t${i}`,
          driver: 'ds18b20',
          deviceId,
          w1Root: tree.root,
        }) as SensorConfigOf<'ds18b20'>,
        { limiter },
      ),
    );
    // One signal per sensor, as the sampler gives them.
    const signal = () => AbortSignal.timeout(60_000);
    for (const d of drivers) await d.open!(signal());
    // Warm-up round: starts the pool's threads and makes sure every writer is waiting.
    await Promise.all(drivers.map((d) => d.measure(signal())));

    const t0 = performance.now();
    let firstReadAt = Number.POSITIVE_INFINITY;
    let readsOk = 0;
    const reads = drivers.map((d) =>
      d.measure(signal()).then((m) => {
        firstReadAt = Math.min(firstReadAt, performance.now() - t0);
        if (m.length === 1 && Number.isFinite(m[0].value)) readsOk++;
      }),
    );
    let done = false;
    const all = Promise.all(reads).finally(() => (done = true));
    const statLatencies: number[] = [];
    for (let i = 0; i < 10_000 && !done; i++) {
      const s0 = performance.now();
      await stat(tree.root);
      statLatencies.push(performance.now() - s0);
      await new Promise((r) => setTimeout(r, 25));
    }
    await all;
    const roundMs = performance.now() - t0;
    statLatencies.sort((a, b) => a - b);
    const parallel = Math.min(
      limit > 0 ? limit : devices,
      Number(process.env.UV_THREADPOOL_SIZE ?? 4),
    );
    return {
      threadpool: Number(process.env.UV_THREADPOOL_SIZE ?? 4),
      devices,
      limit,
      conversionMs,
      roundMs: Math.round(roundMs),
      firstReadMs: Math.round(firstReadAt),
      stats: statLatencies.length,
      maxStatMs: Math.round(statLatencies[statLatencies.length - 1] * 10) / 10,
      medianStatMs: Math.round(statLatencies[statLatencies.length >> 1] * 10) / 10,
      kernelRoundMs: Math.ceil(devices / parallel) * conversionMs,
      readsOk,
    };
  } finally {
    await tree.close();
  }
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  const { values } = parseArgs({
    options: {
      devices: { type: 'string', default: '8' },
      limit: { type: 'string', default: '2' },
      conversion: { type: 'string', default: '750' },
    },
  });
  const r = await probe(Number(values.devices), Number(values.limit), Number(values.conversion));
  process.stdout.write(`${JSON.stringify(r)}\n`);
}
