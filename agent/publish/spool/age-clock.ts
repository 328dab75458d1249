/**
 * The clock of the spool's age bound (spool.maxAgeSec): elapsed time, not the wall clock, so
 * a backlog gathered before NTP set the clock (a Pi booting with a stale time) is not taken
 * for years old when the clock steps forward, nor kept forever after a step back.
 *
 * Elapsed time E runs on the monotonic clock while the spool is open and is saved with every
 * commit (meta `age_clock`). A start continues from the saved E plus the time the agent was
 * down: exactly, from the monotonic clock, when the machine has not rebooted since (same boot
 * id); else from the wall clock, when both the saved and the current wall time are plausible
 * (not before WALL_FLOOR, not going back); else nothing — time the machine was off with an
 * unset clock does not age the backlog.
 *
 * Batches keep their wall-clock `createdAt` (it is published). Their E is createdAt minus the
 * offset (wall − E) in force when they were spooled; the offset changes only when the clock
 * steps, so it is kept per range of seqs (segments), saved with E, pruned as batches leave.
 */
import { readFileSync } from 'node:fs';

/** No wall time before this is a set clock: no release of the agent is older. */
export const WALL_FLOOR = Date.UTC(2025, 0, 1);
/** A change of the offset by more than this starts a segment (a step, not drift). */
const SEGMENT_MS = 1000;
/** Bound on the segments: beyond it the oldest two merge, keeping the smaller age. */
const MAX_SEGMENTS = 64;

export interface BootTime {
  /** Changes at every boot (/proc/sys/kernel/random/boot_id). */
  id: string;
  /** Monotonic ms since boot. */
  ms: number;
}

export interface AgeClockOptions {
  wall: () => number;
  mono: () => number;
  /** Where the monotonic clock is known across restarts; undefined: it is not. */
  boot?: () => BootTime | undefined;
}

interface Saved {
  e: number;
  w: number;
  b?: string;
  m?: number;
  s: Array<[number, number]>;
}

let bootId: string | undefined | null = null;

/** This machine's boot and the monotonic time since it (Linux); undefined elsewhere. */
export function linuxBoot(): BootTime | undefined {
  if (bootId === null) {
    try {
      bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || undefined;
    } catch {
      bootId = undefined;
    }
  }
  if (bootId === undefined) return undefined;
  return { id: bootId, ms: Number(process.hrtime.bigint() / 1_000_000n) };
}

export class AgeClock {
  private base = 0;
  private monoBase: number;
  /** [first seq, offset wall − E], ascending by seq. */
  private segments: Array<[number, number]> = [];

  constructor(private readonly o: AgeClockOptions) {
    this.monoBase = o.mono();
  }

  /** Elapsed ms on this clock. */
  elapsed(): number {
    return this.base + (this.o.mono() - this.monoBase);
  }

  /** Continue from the state saved in a database (see the header); ignores what is not one. */
  resume(text: unknown): void {
    const saved = parse(text);
    if (saved === undefined) return;
    let down = 0;
    const boot = this.o.boot?.();
    if (boot !== undefined && saved.b === boot.id && saved.m !== undefined) {
      down = Math.max(0, boot.ms - saved.m);
    } else {
      const wall = this.o.wall();
      if (saved.w >= WALL_FLOOR && wall >= saved.w) down = wall - saved.w;
    }
    const before = this.elapsed();
    this.base = saved.e + down;
    this.monoBase = this.o.mono();
    // Batches stamped before the resume keep their ages.
    const shift = this.elapsed() - before;
    const own = this.segments.map(([seq, off]): [number, number] => [seq, off - shift]);
    const first = own[0]?.[0] ?? Infinity;
    this.segments = [...saved.s.filter(([seq]) => seq < first), ...own];
    this.bound();
  }

  /** Batch `seq` is being spooled now. */
  stamp(seq: number): void {
    const offset = this.o.wall() - this.elapsed();
    const last = this.segments.at(-1);
    if (last !== undefined && Math.abs(offset - last[1]) <= SEGMENT_MS) return;
    this.segments.push([seq, offset]);
    this.bound();
  }

  /** Elapsed ms since batch `seq`, created at wall time `createdAt`, was spooled. */
  ageOf(seq: number, createdAt: number): number {
    let offset: number | undefined;
    for (const [from, off] of this.segments) {
      if (from > seq) break;
      offset = off;
    }
    // A batch from before this clock (an older database): its wall-clock age.
    if (offset === undefined) return this.o.wall() - createdAt;
    return this.elapsed() - (createdAt - offset);
  }

  /** Forget segments only batches below `oldestSeq` used. */
  prune(oldestSeq: number): void {
    let keep = 0;
    while (keep + 1 < this.segments.length && this.segments[keep + 1][0] <= oldestSeq) keep++;
    if (keep > 0) this.segments.splice(0, keep);
  }

  /** The state to save (meta `age_clock`). */
  save(): string {
    const boot = this.o.boot?.();
    const saved: Saved = { e: this.elapsed(), w: this.o.wall(), s: this.segments };
    if (boot !== undefined) {
      saved.b = boot.id;
      saved.m = boot.ms;
    }
    return JSON.stringify(saved);
  }

  private bound(): void {
    while (this.segments.length > MAX_SEGMENTS) {
      const [a, b] = this.segments;
      this.segments.splice(0, 2, [a[0], Math.min(a[1], b[1])]);
    }
  }
}

function parse(text: unknown): Saved | undefined {
  if (typeof text !== 'string') return undefined;
  try {
    const v = JSON.parse(text) as Partial<Saved>;
    const finite = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);
    if (!finite(v.e) || !finite(v.w) || !Array.isArray(v.s)) return undefined;
    const s = v.s.filter(
      (p): p is [number, number] => Array.isArray(p) && finite(p[0]) && finite(p[1]),
    );
    return {
      e: v.e,
      w: v.w,
      b: typeof v.b === 'string' ? v.b : undefined,
      m: finite(v.m) ? v.m : undefined,
      s,
    };
  } catch {
    return undefined;
  }
}
