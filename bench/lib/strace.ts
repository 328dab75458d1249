/**
 * strace as a slow disk: every fsync/fdatasync of a process and all its threads (-f) held
 * on its way out of the kernel (`delay_exit`), or only the Nth call of one thread (`when=N`;
 * strace counts calls per syscall and per thread). Only those two syscalls stop the tracee
 * (`--seccomp-bpf`), so the rest of the process runs at full speed; the calls are written
 * with their thread id and time to a trace file, read back here.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

export const SYNC_CALLS = ['fsync', 'fdatasync'] as const;
export type SyncCall = (typeof SYNC_CALLS)[number];

export interface StraceCheck {
  ok: boolean;
  /** Why not, when not: what a reader should fix. */
  reason?: string;
  version?: string;
  /** False when strace runs but without seccomp-bpf (every syscall then stops the tracee). */
  seccompBpf?: boolean;
}

/** Whether strace exists and may trace a child here, and whether seccomp-bpf filtering works. */
export function checkStrace(): StraceCheck {
  const v = spawnSync('strace', ['-V'], { encoding: 'utf8' });
  if (v.error)
    return { ok: false, reason: `strace not found (${v.error.message}); install strace` };
  const version = v.stdout.split('\n')[0].trim();
  const t = spawnSync(
    'strace',
    ['-f', '--seccomp-bpf', '-qq', '-e', 'trace=fsync', '-o', '/dev/null', '--', 'true'],
    { encoding: 'utf8' },
  );
  if (t.status !== 0)
    return {
      ok: false,
      version,
      reason: `strace may not trace here (ptrace needs root or CAP_SYS_PTRACE, and no seccomp or Yama policy against it): ${t.stderr.trim()}`,
    };
  return { ok: true, version, seccompBpf: !/seccomp/i.test(t.stderr) };
}

export type Injection =
  | { kind: 'none' }
  | { kind: 'every'; delayMs: number }
  | { kind: 'once'; delayMs: number; call: SyncCall; nth: number };

/** strace's arguments up to and including `--`; the command follows. */
export function straceArgs(traceFile: string, injection: Injection, seccompBpf: boolean): string[] {
  const args = ['-f', ...(seccompBpf ? ['--seccomp-bpf'] : []), '-qq', '-ttt', '-o', traceFile];
  args.push('-e', `trace=${SYNC_CALLS.join(',')}`);
  if (injection.kind === 'every')
    args.push('-e', `inject=${SYNC_CALLS.join(',')}:delay_exit=${injection.delayMs * 1000}`);
  if (injection.kind === 'once')
    args.push(
      '-e',
      `inject=${injection.call}:delay_exit=${injection.delayMs * 1000}:when=${injection.nth}`,
    );
  return [...args, '--'];
}

export function describeInjection(i: Injection): string {
  if (i.kind === 'none') return 'nothing injected';
  if (i.kind === 'every') return `every fsync/fdatasync +${i.delayMs} ms (delay_exit)`;
  return `${i.call} call #${i.nth} of its thread +${i.delayMs} ms (delay_exit, when=${i.nth})`;
}

export interface SyncCallRecord {
  tid: number;
  /** Wall-clock ms at entry. */
  at: number;
  call: SyncCall;
}

/** The calls in a trace written by straceArgs (entry lines; "resumed" halves are skipped). */
export function readSyncCalls(traceFile: string): SyncCallRecord[] {
  let text: string;
  try {
    text = readFileSync(traceFile, 'utf8');
  } catch {
    return [];
  }
  const calls: SyncCallRecord[] = [];
  for (const line of text.split('\n')) {
    const m = /^(\d+)\s+(\d+\.\d+)\s+(fsync|fdatasync)\(/.exec(line);
    if (m) calls.push({ tid: Number(m[1]), at: Number(m[2]) * 1000, call: m[3] as SyncCall });
  }
  return calls;
}

/** The thread that syncs most, and the call it makes most: where the disk's time is spent. */
export function busiestSyncer(
  calls: SyncCallRecord[],
): { tid: number; call: SyncCall; calls: SyncCallRecord[] } | undefined {
  const byKey = new Map<string, SyncCallRecord[]>();
  for (const c of calls) {
    const k = `${c.tid} ${c.call}`;
    const list = byKey.get(k) ?? [];
    list.push(c);
    byKey.set(k, list);
  }
  let best: SyncCallRecord[] | undefined;
  for (const list of byKey.values()) if (!best || list.length > best.length) best = list;
  return best && { tid: best[0].tid, call: best[0].call, calls: best };
}

/**
 * Which call to hold for a single stall at `offsetMs` after `t0`, from a trace of the same
 * agent without injection: the busiest thread's first call of its busiest syscall at or
 * after that moment, as strace's per-thread ordinal. Undefined when the trace has none.
 */
export function stallCall(
  calls: SyncCallRecord[],
  t0: number,
  offsetMs: number,
): { call: SyncCall; nth: number; expectedOffsetMs: number } | undefined {
  const busiest = busiestSyncer(calls);
  if (!busiest) return undefined;
  const i = busiest.calls.findIndex((c) => c.at >= t0 + offsetMs);
  if (i < 0) return undefined;
  return {
    call: busiest.call,
    nth: i + 1,
    expectedOffsetMs: Math.round(busiest.calls[i].at - t0),
  };
}
