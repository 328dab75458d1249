/**
 * A driver that ignores its AbortSignal (a hung syscall, a bug) would hold its sensor's
 * loop forever, and stop() with it. The guard makes every call settle when the signal
 * aborts or the sensor's timeout passes, whatever the driver does.
 *
 * The guard keeps its own timer on purpose: on Node 20 the AbortSignal.timeout() inside an
 * AbortSignal.any() is only weakly held, so when a hung driver holds no reference to its
 * signal the garbage collector can take the signal and its timer, and the round would
 * never end (seen in tests).
 */
import type { Driver, Measurement } from '../../drivers/types.js';

function bounded<T>(work: Promise<T>, signal: AbortSignal, timeoutMs: number): Promise<T> {
  if (signal.aborted) {
    work.catch(() => undefined);
    return Promise.reject(signal.reason as Error);
  }
  return new Promise<T>((resolve, reject) => {
    const finish = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
    };
    const onAbort = () => {
      finish();
      reject(signal.reason as Error);
    };
    // A strong, referenced timer: it roots this promise until the call settles.
    const timer = setTimeout(() => {
      finish();
      reject(new DOMException('no answer in time', 'TimeoutError'));
    }, timeoutMs);
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (v) => {
        finish();
        resolve(v);
      },
      (e: unknown) => {
        finish();
        reject(e as Error);
      },
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
