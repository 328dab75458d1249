import { vi } from 'vitest';

export interface VirtualTimeOptions {
  /** Virtual time added per turn of the real event loop (ms). */
  stepMs?: number;
  /** Virtual time after which a body that has not settled fails the test (ms). */
  limitMs?: number;
}

/**
 * Runs `body` on a virtual clock: setTimeout, setInterval, Date and performance.now are
 * vitest's fake timers, and the clock moves by `stepMs` per turn of the real event loop,
 * however long a turn takes. Whatever `body` does with time — a driver's polls and deadlines,
 * a simulated chip's conversion, the wire time of a transfer — then happens at the same
 * virtual instants on an idle and on a starved machine, so a test can assert how many polls
 * a conversion took. setImmediate and microtasks stay real: sub-millisecond waits that spin
 * on setImmediate (drivers/time.ts sleepUntil) see the clock move one step per turn.
 *
 * Create the simulated devices inside `body`: they take their power-on time from the clock.
 * Only for code that does no real I/O (the simulated I²C bus, in-memory fakes).
 */
export async function onVirtualTime<T>(
  body: () => Promise<T>,
  options: VirtualTimeOptions = {},
): Promise<T> {
  const stepMs = options.stepMs ?? 0.05;
  const limitMs = options.limitMs ?? 10_000;
  vi.useFakeTimers({
    toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date', 'performance'],
  });
  try {
    let settled = false;
    const result = body().finally(() => {
      settled = true;
    });
    // Awaited below; this only keeps a rejection from being reported before that.
    result.catch(() => undefined);
    for (let t = 0; !settled && t < limitMs; t += stepMs) {
      await vi.advanceTimersByTimeAsync(stepMs);
    }
    if (!settled) throw new Error(`still running after ${limitMs} ms of virtual time`);
    return await result;
  } finally {
    vi.useRealTimers();
  }
}
