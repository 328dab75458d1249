import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { waitUntil } from '../../helpers/wait.js';
import { ds18b20Celsius, parseW1Slave } from '../../../drivers/onewire/ds18b20.js';
import { SensorError } from '../../../drivers/types.js';
import { Signal } from '../../../simulator/signal.js';
import {
  crc8Maxim,
  removeOrphanTrees,
  SimulatedW1Tree,
  w1SlaveText,
} from '../../../simulator/onewire/w1-tree.js';
import type { ProbeResult } from '../../../simulator/onewire/threadpool-probe.js';

let tree: SimulatedW1Tree | undefined;
afterEach(async () => {
  await tree?.close();
  tree = undefined;
});

describe('w1_slave text', () => {
  it('carries a real Dallas CRC-8 (kernel sample: 72 01 4b 46 7f ff 0e 10 → 57)', () => {
    expect(crc8Maxim([0x72, 0x01, 0x4b, 0x46, 0x7f, 0xff, 0x0e, 0x10])).toBe(0x57);
  });

  it.each([23.125, 85, -10.125, -55, 125, 0.0625])(
    'encodes %d °C the way the driver reads it',
    (c) => {
      const text = w1SlaveText(c);
      const bytes = text
        .split('\n')[0]
        .split(' ')
        .slice(0, 9)
        .map((h) => parseInt(h, 16));
      expect(crc8Maxim(bytes.slice(0, 8))).toBe(bytes[8]);
      expect(ds18b20Celsius(bytes[0], bytes[1])).toBe(c);
      expect(parseW1Slave(text)).toBe(Math.trunc(c * 1000));
    },
  );

  it('marks a bad CRC with NO and a wrong CRC byte', () => {
    const text = w1SlaveText(20, false);
    const bytes = text
      .split('\n')[0]
      .split(' ')
      .slice(0, 9)
      .map((h) => parseInt(h, 16));
    expect(crc8Maxim(bytes.slice(0, 8))).not.toBe(bytes[8]);
    expect(() => parseW1Slave(text)).toThrow(SensorError);
  });
});

describe('SimulatedW1Tree', () => {
  const ID = '28-0000000000aa';

  it('lays out the sysfs files, power-on value first, and removes them on unplug', async () => {
    tree = await SimulatedW1Tree.create({
      devices: [{ id: ID, signal: new Signal({ setPoint: 30, noise: 0, driftAmplitude: 0 }) }],
      updateMs: 3_600_000,
    });
    const dir = join(tree.root, ID);
    expect(await readFile(join(dir, 'temperature'), 'utf8')).toBe('85000\n');
    await tree.device(ID).refresh();
    expect(parseW1Slave(await readFile(join(dir, 'w1_slave'), 'utf8'))).toBe(30000);
    await tree.device(ID).unplug();
    expect(existsSync(dir)).toBe(false);
    await tree.device(ID).replug();
    expect(await readFile(join(dir, 'temperature'), 'utf8')).toBe('85000\n');
  });

  it('keeps the power-on value through conversions until it was read, as an idle chip does', async () => {
    const OTHER = '28-0000000000bb';
    tree = await SimulatedW1Tree.create({
      devices: [
        { id: ID, signal: new Signal({ setPoint: 30, noise: 0, driftAmplitude: 0 }) },
        { id: OTHER, powerOn: false },
      ],
      updateMs: 20,
    });
    const other = tree.device(OTHER);
    const conversions = (n: number) =>
      waitUntil(() => other.reads >= n, { timeoutMs: 20_000, what: `${n} conversions` });
    // Conversions go on (the other device's), the unread power-on value stays.
    await conversions(5);
    const file = join(tree.root, ID, 'temperature');
    expect(await readFile(file, 'utf8')).toBe('85000\n');
    // Read once, it is replaced by the next conversion.
    const seen = other.reads;
    await conversions(seen + 3);
    expect(await readFile(file, 'utf8')).toBe('30000\n');
  });

  it('makes w1_slave a FIFO whose read blocks until the conversion is done', async () => {
    tree = await SimulatedW1Tree.create({
      mode: 'fifo',
      conversionMs: 100,
      devices: [{ id: ID, powerOn: false }],
    });
    const fifo = join(tree.root, ID, 'w1_slave');
    expect(statSync(fifo).isFIFO()).toBe(true);
    const t0 = Date.now();
    const text = await readFile(fifo, 'latin1');
    // A lower bound only: load can make it slower, never faster.
    expect(Date.now() - t0).toBeGreaterThanOrEqual(90);
    expect(parseW1Slave(text)).toBeGreaterThan(15_000);
    // The next read is a whole new conversion, not the tail of the last one.
    expect((await readFile(fifo, 'latin1')).split('\n').filter(Boolean)).toHaveLength(2);
  });
});

describe('thread-pool probe (docs/benchmarks/onewire.md)', () => {
  const probe = (limit: number) =>
    new Promise<ProbeResult>((resolve, reject) => {
      const script = fileURLToPath(
        new URL('../../../simulator/onewire/threadpool-probe.ts', import.meta.url),
      );
      const child = spawn(
        process.execPath,
        [
          '--import',
          'tsx',
          script,
          '--devices',
          '8',
          '--limit',
          String(limit),
          '--conversion',
          '600',
        ],
        { env: { ...process.env, UV_THREADPOOL_SIZE: '4' }, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let out = '';
      let err = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      child.on('exit', (code) =>
        code === 0
          ? resolve(JSON.parse(out) as ProbeResult)
          : reject(new Error(`probe failed: ${err}`)),
      );
    });

  it('shows unbounded reads stalling other file I/O, and the limit of 2 holding the kernel to 2 reads at once', async () => {
    const unbounded = await probe(0);
    const bounded = await probe(2);
    expect(unbounded.readsOk).toBe(8);
    expect(bounded.readsOk).toBe(8);
    // Lower bounds only (load makes them larger, never smaller). With 8 reads on 4 threads a
    // stat waits for a conversion (600 ms).
    expect(unbounded.maxStatMs).toBeGreaterThan(240);
    // A conversion starts when its read gets a thread: with at most 2 in flight, 8 reads
    // take 4 conversions back to back (unbounded, 4 threads: 2).
    expect(bounded.roundMs).toBeGreaterThanOrEqual(0.95 * 4 * 600);
    // How short the stat stays under the limit is a figure of the machine's load:
    // docs/benchmarks/onewire.md has it.
  });
});

describe('trees left behind', () => {
  it('removes the tree of a process that is gone, and keeps those of live ones', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'w1-orphans-'));
    try {
      const child = spawnSync(process.execPath, ['-e', '0']);
      const dead = child.pid!;
      mkdirSync(join(dir, `edge-w1-${dead}-abc123`, 'devices'), { recursive: true });
      mkdirSync(join(dir, `edge-w1-${process.pid}-def456`));
      mkdirSync(join(dir, 'edge-w1-unrelated'));
      expect(await removeOrphanTrees(dir)).toEqual([`edge-w1-${dead}-abc123`]);
      expect(readdirSync(dir).sort()).toEqual([
        `edge-w1-${process.pid}-def456`,
        'edge-w1-unrelated',
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
