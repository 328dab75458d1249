/**
 * An event-loop probe preloaded into a measured Node process (`node --import <url>`), so a
 * benchmark can take the main thread's delay over exactly its own window rather than the
 * since-start histogram the agent reports. A timer every PERIOD_MS records how late it
 * fired (start − due) with the wall-clock time it was due at, so a stall counts where it
 * began even when it ends after the window; at exit the samples are written as JSON to the
 * file named by LOOP_PROBE_OUT. Worker threads are not probed: the figure is the main
 * thread's, the one that runs the sensors. The timer is unref'd and adds one wake-up every
 * PERIOD_MS to the measured process, the same in every run.
 */
import { readFileSync } from 'node:fs';
import { percentile } from './rounds.js';

export const LOOP_PROBE_PERIOD_MS = 20;
/** Samples kept: 50 a second for 400 s; later ones are not recorded. */
const CAPACITY = 20_000;

const SOURCE = `
import { writeFileSync } from 'node:fs';
import { isMainThread } from 'node:worker_threads';
const out = process.env.LOOP_PROBE_OUT;
if (isMainThread && out) {
  const at = new Float64Array(${CAPACITY});
  const late = new Float64Array(${CAPACITY});
  let n = 0;
  let due = performance.now() + ${LOOP_PROBE_PERIOD_MS};
  const tick = () => {
    const now = performance.now();
    if (n < at.length) { at[n] = performance.timeOrigin + due; late[n] = now - due; n++; }
    due = now + ${LOOP_PROBE_PERIOD_MS};
    setTimeout(tick, ${LOOP_PROBE_PERIOD_MS}).unref();
  };
  setTimeout(tick, ${LOOP_PROBE_PERIOD_MS}).unref();
  process.on('exit', () => writeFileSync(out, JSON.stringify({
    at: Array.from(at.subarray(0, n)), late: Array.from(late.subarray(0, n)),
  })));
}
`;

/** The node argument that preloads the probe. */
export const LOOP_PROBE_IMPORT = `--import=data:text/javascript,${encodeURIComponent(SOURCE)}`;

export interface LoopSamples {
  /** Wall-clock ms each sample's timer was due at. */
  at: number[];
  /** How late the timer fired, ms. */
  late: number[];
}

export function readLoopSamples(file: string): LoopSamples | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as LoopSamples;
  } catch {
    return undefined;
  }
}

const r1 = (x: number) => Math.round(x * 10) / 10;

/**
 * The samples with what a stall hid put back: a timer held for D ms stood for every tick
 * due within D, each late by what was left of the stall (D − period, D − 2·period, …), as
 * HdrHistogram's recordCorrectedValue does. Without it one 5 s stall is one sample of 1,500
 * and no percentile below the maximum sees it; with it, p99 is how late work due at a
 * random moment of the window started.
 */
export function correctedSamples(s: LoopSamples): LoopSamples {
  const at: number[] = [];
  const late: number[] = [];
  for (let i = 0; i < s.at.length; i++) {
    at.push(s.at[i]);
    late.push(s.late[i]);
    // Bounded: one tick per period of the stall.
    for (let k = 1; s.late[i] - k * LOOP_PROBE_PERIOD_MS > 0; k++) {
      at.push(s.at[i] + k * LOOP_PROBE_PERIOD_MS);
      late.push(s.late[i] - k * LOOP_PROBE_PERIOD_MS);
    }
  }
  return { at, late };
}

/** Delay figures (ms) of the timers due within [from, to) (wall-clock ms). */
export function loopDelayBetween(s: LoopSamples, from: number, to: number) {
  const late: number[] = [];
  for (let i = 0; i < s.at.length; i++) if (s.at[i] >= from && s.at[i] < to) late.push(s.late[i]);
  late.sort((a, b) => a - b);
  return {
    samples: late.length,
    p50: r1(percentile(late, 50)),
    p99: r1(percentile(late, 99)),
    max: r1(late.length ? late[late.length - 1] : 0),
  };
}

/** The longest delay of the timers due in each whole second from `from` (ms), for a timeline. */
export function loopDelayPerSecond(s: LoopSamples, from: number, seconds: number): number[] {
  const max = new Array<number>(seconds).fill(0);
  for (let i = 0; i < s.at.length; i++) {
    const k = Math.floor((s.at[i] - from) / 1000);
    if (k >= 0 && k < seconds) max[k] = Math.max(max[k], s.late[i]);
  }
  return max.map(r1);
}
