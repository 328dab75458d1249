/** What a benchmark ran on, recorded next to its figures. */
import { readFileSync } from 'node:fs';
import os from 'node:os';

export interface Machine {
  cpu: string;
  cores: number;
  memoryGB: number;
  node: string;
  platform: string;
  load1: number;
}

export function machine(): Machine {
  return {
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.cpus().length,
    memoryGB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    platform: `${os.type()} ${os.release()} ${os.arch()}`,
    load1: Number(os.loadavg()[0].toFixed(2)),
  };
}

/** CPU time (user + system) of a process in ms, from /proc (Linux); 0 when unknown. */
export function procCpuMs(pid: number | undefined): number {
  if (!pid) return 0;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Fields 14 and 15 (utime, stime) in clock ticks (USER_HZ = 100 on Linux).
    return (Number(f[11]) + Number(f[12])) * 10;
  } catch {
    return 0;
  }
}
