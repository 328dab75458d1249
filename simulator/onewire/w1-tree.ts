/**
 * A fake w1 sysfs tree in a temp dir: `<root>/28-xxxxxxxxxxxx/w1_slave` and `temperature`,
 * in the kernel's formats, with plausible values from simulator/signal.ts.
 *
 * Two modes:
 * - 'files': regular files, refreshed every `updateMs` (a new "conversion"). Reads are
 *   instant. The first content after power-on (create / replug) is the 85 °C reset value,
 *   and it stays until it was read (the file's atime passed its mtime, as relatime updates
 *   it on the first read after a write) or POWER_ON_HOLD_MS passed (a file system that keeps
 *   no atime): a chip that nobody asked for a conversion still holds its reset value.
 * - 'fifo': w1_slave is a named pipe. A small writer process per device waits for a reader,
 *   sleeps the conversion time and then writes the text, so a read really blocks for the
 *   conversion and really occupies a libuv thread-pool thread, like the kernel's read.
 *   Here "the first read after power-on returns 85000" holds read by read.
 *
 * Faults for the next N contents (files) or reads (fifo): 'crc' (`crc=xx NO`, wrong CRC
 * byte; the temperature file goes empty, as a kernel read error would), 'empty'.
 * unplug() removes the device directory; replug() brings it back, powered on afresh.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, constants, openSync, statSync, writeFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Signal } from '../signal.js';

export type W1Fault = 'crc' | 'empty';

/** CRC-8/MAXIM (Dallas 1-Wire): reflected polynomial 0x8C, init 0. */
export function crc8Maxim(bytes: readonly number[]): number {
  let crc = 0;
  for (let b of bytes) {
    for (let i = 0; i < 8; i++) {
      const mix = (crc ^ b) & 1;
      crc >>= 1;
      if (mix) crc ^= 0x8c;
      b >>= 1;
    }
  }
  return crc;
}

/** The kernel's w1_slave text for a temperature (12-bit register, as the chip rounds). */
export function w1SlaveText(celsius: number, crcOk = true): string {
  const raw = Math.max(-0x8000, Math.min(0x7fff, Math.round(celsius * 16))) & 0xffff;
  const pad = [raw & 0xff, raw >> 8, 0x4b, 0x46, 0x7f, 0xff, 0x0c, 0x10];
  const crc = crc8Maxim(pad);
  const bytes = [...pad, crcOk ? crc : crc ^ 0xa5].map((b) => b.toString(16).padStart(2, '0'));
  const signed = raw >= 0x8000 ? raw - 0x10000 : raw;
  // The kernel computes (s16)raw * 1000 / 16 in C: integer division truncates.
  const milli = Math.trunc((signed * 1000) / 16);
  const hex = bytes.join(' ');
  return `${hex} : crc=${bytes[8]} ${crcOk ? 'YES' : 'NO'}\n${hex} t=${milli}\n`;
}

export interface W1DeviceOptions {
  /** sysfs name, e.g. 28-0316a2795aff. */
  id: string;
  signal?: Signal;
  /** First content after power-on is 85 °C; default true. */
  powerOn?: boolean;
}

export interface W1TreeOptions {
  devices: W1DeviceOptions[];
  mode?: 'files' | 'fifo';
  /** fifo mode: how long a read blocks (12-bit conversion: 750 ms). */
  conversionMs?: number;
  /** files mode: how often the values change. */
  updateMs?: number;
}

/**
 * Writer of one FIFO: blocks in open until a reader comes, "converts", writes, and swaps in
 * a fresh FIFO before closing, so the next open meets the next conversion rather than the
 * tail of this one (a reopen while the last reader still holds the pipe would feed it two
 * conversions' worth of text).
 */
const FIFO_WRITER = `
const fs = require('fs');
const { execFileSync } = require('child_process');
const [fifo, control, ms] = process.argv.slice(1);
const nap = new Int32Array(new SharedArrayBuffer(4));
for (let round = 0; ; round++) {
  let fd;
  try { fd = fs.openSync(fifo, 'w'); } catch { process.exit(0); }
  Atomics.wait(nap, 0, 0, Number(ms));
  let text = '';
  try { text = fs.readFileSync(control, 'latin1'); } catch {}
  try { if (text) fs.writeSync(fd, text); } catch {}
  const next = fifo + '.' + process.pid + '.' + round;
  try { execFileSync('mkfifo', [next]); fs.renameSync(next, fifo); } catch { process.exit(0); }
  try { fs.closeSync(fd); } catch {}
  process.stdout.write('r\\n');
}
`;

/** files mode: the power-on content stays at least until read, or at most this long. */
export const POWER_ON_HOLD_MS = 10_000;

export class SimulatedW1Device {
  /** Reads served (fifo mode) or contents written (files mode). */
  reads = 0;
  plugged = true;
  private faults: W1Fault[] = [];
  private busy: Promise<void> = Promise.resolve();
  private fresh = true;
  /** files mode: when the power-on content was written, while it is still there. */
  private powerOnSince: number | undefined;
  private writer: ChildProcess | undefined;
  private readonly signal: Signal;

  constructor(
    private readonly tree: SimulatedW1Tree,
    readonly options: W1DeviceOptions,
  ) {
    this.signal = options.signal ?? new Signal({ setPoint: 21, noise: 0.03 });
  }

  get dir(): string {
    return join(this.tree.root, this.options.id);
  }

  private get control(): string {
    return join(this.tree.controlDir, `${this.options.id}.txt`);
  }

  inject(kind: W1Fault, count = 1): void {
    for (let i = 0; i < count; i++) this.faults.push(kind);
  }

  /** The next w1_slave text: power-on value, a fault, or the signal. */
  nextText(): { w1Slave: string; temperature: string } {
    const fault = this.faults.shift();
    if (fault === 'empty') return { w1Slave: '', temperature: '' };
    if (fault === 'crc')
      return { w1Slave: w1SlaveText(this.signal.at(Date.now()), false), temperature: '' };
    const powerOn = this.fresh && this.options.powerOn !== false;
    this.fresh = false;
    const c = powerOn ? 85 : this.signal.at(Date.now());
    const w1Slave = w1SlaveText(c);
    const milli = /t=(-?\d+)/.exec(w1Slave)![1];
    return { w1Slave, temperature: `${milli}\n` };
  }

  /** Create the directory and files, powered on afresh. */
  async plug(): Promise<void> {
    this.plugged = true;
    this.fresh = true;
    await mkdir(this.dir, { recursive: true });
    if (this.tree.mode === 'files') return this.refresh();
    const t = this.nextText();
    writeFileSync(this.control, t.w1Slave, 'latin1');
    await writeFile(join(this.dir, 'temperature'), t.temperature);
    execFileSync('mkfifo', [join(this.dir, 'w1_slave')]);
    const child = spawn(
      process.execPath,
      ['-e', FIFO_WRITER, join(this.dir, 'w1_slave'), this.control, String(this.tree.conversionMs)],
      { stdio: ['ignore', 'pipe', 'ignore'] },
    );
    this.writer = child;
    createInterface({ input: child.stdout! }).on('line', () => {
      this.reads++;
      // Prepare what the next read will get; the conversion time leaves room to do so.
      if (this.writer === child) writeFileSync(this.control, this.nextText().w1Slave, 'latin1');
    });
  }

  /** files mode: write the next content (atomically, so a reader never sees half of it). */
  refresh(): Promise<void> {
    // Chained, so unplug and close never race a write in progress.
    this.busy = this.busy
      .catch(() => undefined)
      .then(async () => {
        if (!this.plugged || this.tree.mode !== 'files') return;
        const powerOn = this.fresh && this.options.powerOn !== false;
        const t = this.nextText();
        this.powerOnSince = powerOn ? Date.now() : undefined;
        this.reads++;
        await atomicWrite(join(this.dir, 'w1_slave'), t.w1Slave);
        await atomicWrite(join(this.dir, 'temperature'), t.temperature);
      });
    return this.busy;
  }

  /** files mode, on the tree's timer: a new conversion, unless the power-on value waits unread. */
  conversionDue(): Promise<void> {
    return this.powerOnUnread() ? this.busy : this.refresh();
  }

  /** The power-on content is there and nobody has read it yet (see the header). */
  private powerOnUnread(): boolean {
    if (this.powerOnSince === undefined) return false;
    if (Date.now() - this.powerOnSince >= POWER_ON_HOLD_MS) return false;
    for (const name of ['w1_slave', 'temperature']) {
      try {
        const st = statSync(join(this.dir, name), { bigint: true });
        if (st.atimeNs > st.mtimeNs) return false;
      } catch {
        return false;
      }
    }
    return true;
  }

  /** Resolves when no write is in progress. */
  settled(): Promise<void> {
    return this.busy.catch(() => undefined);
  }

  /** The device drops off the bus: its directory disappears. */
  async unplug(): Promise<void> {
    this.plugged = false;
    await this.settled();
    await this.stopWriter();
    await rm(this.dir, { recursive: true, force: true, maxRetries: 3 });
  }

  async replug(): Promise<void> {
    await this.plug();
  }

  async stopWriter(): Promise<void> {
    const child = this.writer;
    this.writer = undefined;
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
    }
    // A reader blocked in open() would wait for a writer forever: meet it, so it gets EOF.
    try {
      closeSync(openSync(join(this.dir, 'w1_slave'), constants.O_WRONLY | constants.O_NONBLOCK));
    } catch {
      // No reader waiting (ENXIO), or no FIFO.
    }
  }
}

async function atomicWrite(path: string, text: string): Promise<void> {
  await writeFile(`${path}.tmp`, text, 'latin1');
  await rename(`${path}.tmp`, path);
}

export class SimulatedW1Tree {
  readonly devices = new Map<string, SimulatedW1Device>();
  readonly mode: 'files' | 'fifo';
  readonly conversionMs: number;
  private timer: NodeJS.Timeout | undefined;

  private constructor(
    readonly base: string,
    o: W1TreeOptions,
  ) {
    this.mode = o.mode ?? 'files';
    this.conversionMs = o.conversionMs ?? 750;
  }

  /** The directory to give the driver as w1Root. */
  get root(): string {
    return join(this.base, 'devices');
  }

  get controlDir(): string {
    return join(this.base, 'control');
  }

  static async create(o: W1TreeOptions): Promise<SimulatedW1Tree> {
    await removeOrphanTrees();
    const tree = new SimulatedW1Tree(
      await mkdtemp(join(tmpdir(), `${TREE_PREFIX}${process.pid}-`)),
      o,
    );
    await mkdir(tree.root, { recursive: true });
    await mkdir(tree.controlDir, { recursive: true });
    for (const d of o.devices) {
      const dev = new SimulatedW1Device(tree, d);
      tree.devices.set(d.id, dev);
      await dev.plug();
    }
    if (tree.mode === 'files') {
      tree.timer = setInterval(() => {
        for (const dev of tree.devices.values()) dev.conversionDue().catch(() => undefined);
      }, o.updateMs ?? 1000);
      tree.timer.unref();
    }
    return tree;
  }

  device(id: string): SimulatedW1Device {
    const d = this.devices.get(id);
    if (!d) throw new Error(`no simulated 1-Wire device ${id}`);
    return d;
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    for (const d of this.devices.values()) {
      d.plugged = false;
      await d.settled();
      await d.stopWriter();
    }
    await rm(this.base, { recursive: true, force: true, maxRetries: 3 });
  }
}

/** Tree directories are named after the process that made them: edge-w1-<pid>-XXXXXX. */
const TREE_PREFIX = 'edge-w1-';

/**
 * Remove the trees of processes that are gone: a simulate that was SIGKILLed never ran its
 * close(), and its tree would stay in /tmp for good.
 */
export async function removeOrphanTrees(dir = tmpdir()): Promise<string[]> {
  const removed: string[] = [];
  const names = await readdir(dir).catch(() => [] as string[]);
  for (const name of names) {
    const m = new RegExp(`^${TREE_PREFIX}(\\d+)-`).exec(name);
    if (!m || isAlive(Number(m[1]))) continue;
    await rm(join(dir, name), { recursive: true, force: true }).catch(() => undefined);
    removed.push(name);
  }
  return removed;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: alive, but someone else's.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
