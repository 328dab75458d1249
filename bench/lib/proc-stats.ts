/**
 * What a process costs, read from /proc (Linux) without touching the process: resident
 * memory, CPU time and bytes it caused to be written to storage. Every reader returns
 * undefined once the process is gone, so a window can tell "exited" from "zero".
 */
import { readdirSync, readFileSync } from 'node:fs';
import { sleep } from '../../drivers/time.js';
import { procCpuMs } from './machine.js';

export interface ProcMemory {
  rssKb: number;
  anonKb: number;
  fileKb: number;
}

/** VmRSS and its parts (kB) from /proc/<pid>/status. */
export function procMemory(pid: number): ProcMemory | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(s)?.[1] ?? NaN);
    return { rssKb: kb('VmRSS'), anonKb: kb('RssAnon'), fileKb: kb('RssFile') + kb('RssShmem') };
  } catch {
    return undefined;
  }
}

export interface ProcIo {
  /** Bytes this process caused to be sent to the storage layer (dirtied page cache). */
  writeBytes: number;
  /** Bytes of that which were truncated away before writeback (deleted or shrunk files). */
  cancelledWriteBytes: number;
  /** Bytes passed to write()-like calls, to any file, pipe or socket. */
  wchar: number;
}

/** /proc/<pid>/io (needs the same user or root). */
export function procIo(pid: number): ProcIo | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/io`, 'utf8');
    const n = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(s)?.[1] ?? NaN);
    return {
      writeBytes: n('write_bytes'),
      cancelledWriteBytes: n('cancelled_write_bytes'),
      wchar: n('wchar'),
    };
  } catch {
    return undefined;
  }
}

/**
 * CPU ms of the main thread (TID = PID) and of all other threads together, and their
 * voluntary context switches (each one a sleep, so a wake-up: timers, I/O, futex waits),
 * from /proc. Load on the machine changes what a wake-up costs, not how many there are.
 */
export function procThreadCpuMs(pid: number): {
  main: number;
  others: number;
  mainWakeups: number;
  otherWakeups: number;
} {
  const r = { main: 0, others: 0, mainWakeups: 0, otherWakeups: 0 };
  let tids: string[] = [];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return r;
  }
  for (const tid of tids) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const ms = (Number(f[11]) + Number(f[12])) * 10;
      const status = readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
      const wakeups = Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(status)?.[1] ?? 0);
      if (tid === String(pid)) {
        r.main += ms;
        r.mainWakeups += wakeups;
      } else {
        r.others += ms;
        r.otherWakeups += wakeups;
      }
    } catch {
      // a thread that ended between the listing and the read
    }
  }
  return r;
}

export interface WindowStats {
  seconds: number;
  samples: number;
  rssMedianMB: number;
  rssPeakMB: number;
  rssMinMB: number;
  anonMedianMB: number;
  fileMedianMB: number;
  cpuMs: number;
  /** CPU ms of the main thread; the rest (aggregation worker, libuv pool, V8's GC helpers) in cpuOtherThreadsMs. */
  cpuMainThreadMs: number;
  cpuOtherThreadsMs: number;
  /** CPU time / wall time, in % of one core. */
  cpuPercent: number;
  /** Voluntary context switches a second: of the main thread, and of all others together. */
  mainWakeupsPerSec: number;
  otherWakeupsPerSec: number;
  writeBytes: number;
  cancelledWriteBytes: number;
  rssSamplesMB: number[];
}

export const mb = (kb: number): number => Math.round((kb / 1024) * 10) / 10;

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * Sample `pid` every `everyMs` for `seconds`: RSS median and peak over the samples, CPU and
 * write_bytes as differences between the window's two ends. Bounded: ⌈seconds/everyMs⌉
 * samples. Throws if the process exits within the window.
 */
export async function sampleWindow(
  pid: number,
  seconds: number,
  everyMs = 500,
): Promise<WindowStats> {
  const io0 = procIo(pid);
  const cpu0 = procCpuMs(pid);
  const threads0 = procThreadCpuMs(pid);
  const t0 = performance.now();
  const mem: ProcMemory[] = [];
  const count = Math.max(1, Math.ceil((seconds * 1000) / everyMs));
  for (let i = 0; i < count; i++) {
    await sleep(Math.max(0, t0 + (i + 1) * everyMs - performance.now()));
    const m = procMemory(pid);
    if (!m) throw new Error(`process ${pid} exited during the measuring window`);
    mem.push(m);
  }
  const io1 = procIo(pid);
  const cpuMs = procCpuMs(pid) - cpu0;
  const threads1 = procThreadCpuMs(pid);
  const wallMs = performance.now() - t0;
  const rss = mem.map((m) => m.rssKb);
  return {
    seconds: Math.round(wallMs / 100) / 10,
    samples: rss.length,
    rssMedianMB: mb(median(rss)),
    rssPeakMB: mb(Math.max(...rss)),
    rssMinMB: mb(Math.min(...rss)),
    anonMedianMB: mb(median(mem.map((m) => m.anonKb))),
    fileMedianMB: mb(median(mem.map((m) => m.fileKb))),
    cpuMs,
    cpuMainThreadMs: threads1.main - threads0.main,
    cpuOtherThreadsMs: threads1.others - threads0.others,
    cpuPercent: Math.round((cpuMs / wallMs) * 1000) / 10,
    mainWakeupsPerSec: Math.round(((threads1.mainWakeups - threads0.mainWakeups) * 1000) / wallMs),
    otherWakeupsPerSec: Math.round(
      ((threads1.otherWakeups - threads0.otherWakeups) * 1000) / wallMs,
    ),
    writeBytes: io0 && io1 ? io1.writeBytes - io0.writeBytes : NaN,
    cancelledWriteBytes: io0 && io1 ? io1.cancelledWriteBytes - io0.cancelledWriteBytes : NaN,
    rssSamplesMB: rss.map(mb),
  };
}

/**
 * Resident memory (MB) by what is mapped, from /proc/<pid>/smaps: the node binary's pages,
 * native addons (*.node, by file name), other shared libraries, malloc's brk heap and the
 * anonymous mappings (V8's heaps of every isolate, thread arenas and stacks, the ring's
 * SharedArrayBuffer). Undefined once the process is gone.
 */
export function procSmaps(pid: number, nodeBinary: string): Record<string, number> | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/smaps`, 'utf8');
  } catch {
    return undefined;
  }
  const kb: Record<string, number> = {};
  let group = 'anonymous';
  for (const line of text.split('\n')) {
    const head = /^[0-9a-f]+-[0-9a-f]+\s+\S+\s+\S+\s+\S+\s+\d+\s*(.*)$/.exec(line);
    if (head) {
      const name = head[1].trim();
      if (name === '') group = 'anonymous';
      else if (name === nodeBinary) group = 'node binary';
      else if (name.endsWith('.node')) group = `addon ${name.split('/').pop()}`;
      else if (/\.so(\.|$)/.test(name)) group = 'shared libraries';
      else if (name === '[heap]') group = 'malloc heap [heap]';
      else if (name.startsWith('[stack')) group = 'main stack';
      else if (name.startsWith('[')) group = 'kernel [vdso, vvar]';
      else group = 'other files';
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss) kb[group] = (kb[group] ?? 0) + Number(rss[1]);
  }
  return Object.fromEntries(
    Object.entries(kb)
      .sort((a, b) => b[1] - a[1])
      .map(([k, v]) => [k, mb(v)]),
  );
}
