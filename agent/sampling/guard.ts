/**
 * A driver that ignores its AbortSignal (a hung syscall, a bug) would hold its sensor's
 * loop forever, and stop() with it. The guard makes every call settle soon after the
 * signal aborts or the sensor's timeout passes, whatever the driver does.
 *
 * It is a backstop, so it is cheap rather than precise: one shared sweep every
 * SWEEP_MS checks the calls in flight, instead of a timer and an abort listener per call
 * (10,000 sensors at 1 Hz make 10,000 calls a second). It keeps its own deadline on
 * purpose: on Node 20 the AbortSignal.timeout() inside an AbortSignal.any() is only
 * weakly held, so when a hung driver keeps no reference to its signal the garbage
 * collector can take the signal with its timer and the round would never end (seen in
 * tests). The pending set holds each call strongly until it settles.
 */
import type { Driver, Measurement } from '../../drivers/types.js';

/** How late after its deadline or abort a hung call is ended, at most. */
export const SWEEP_MS = 50;

interface Pending {
  deadline: number;
  signal: AbortSignal;
  fail(reason: Error): void;
}

const pending = new Set<Pending>();
let sweeper: NodeJS.Timeout | undefined;

function sweep(): void {
  const now = performance.now();
  for (const p of pending) {
    if (p.signal.aborted) p.fail(p.signal.reason as Error);
    else if (now >= p.deadline) p.fail(new DOMException('no answer in time', 'TimeoutError'));
  }
  if (pending.size === 0 && sweeper) {
    clearInterval(sweeper);
    sweeper = undefined;
  }
}

/** Calls in flight under a guard (for tests and the health report). */
export function guardedCallsInFlight(): number {
  return pending.size;
}

function bounded<T>(work: Promise<T>, signal: AbortSignal, timeoutMs: number): Promise<T> {
  if (signal.aborted) {
    work.catch(() => undefined);
    return Promise.reject(signal.reason as Error);
  }
  return new Promise<T>((resolve, reject) => {
    let done = false;
    const entry: Pending = {
      deadline: performance.now() + timeoutMs,
      signal,
      fail(reason) {
        if (done) return;
        done = true;
        pending.delete(entry);
        reject(reason);
      },
    };
    pending.add(entry);
    sweeper ??= setInterval(sweep, SWEEP_MS);
    work.then(
      (v) => {
        if (done) return;
        done = true;
        pending.delete(entry);
        resolve(v);
      },
      (e: unknown) => entry.fail(e as Error),
    );
  });
}

export interface GuardOptions {
  /** Upper bound of one open() or measure() call (the sensor's round timeout). */
  timeoutMs: number;
  /** Upper bound of close(): a device that never finishes closing must not block a reload. */
  closeTimeoutMs?: number;
}

export function guardDriver(driver: Driver, options: GuardOptions): Driver {
  const { timeoutMs } = options;
  const closeTimeoutMs = options.closeTimeoutMs ?? 5_000;
  const open = driver.open?.bind(driver);
  const close = driver.close?.bind(driver);
  const never = new AbortController().signal;
  return {
    kind: driver.kind,
    quantities: driver.quantities,
    resource: driver.resource,
    open: open ? (signal: AbortSignal) => bounded(open(signal), signal, timeoutMs) : undefined,
    measure: (signal: AbortSignal): Promise<Measurement[]> =>
      bounded(driver.measure(signal), signal, timeoutMs),
    close: close ? () => bounded(close(), never, closeTimeoutMs).catch(() => undefined) : undefined,
  };
}
