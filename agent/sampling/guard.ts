/**
 * A driver that ignores its AbortSignal (a hung syscall, a bug) would hold its sensor's
 * loop forever, and stop() with it. The guard makes every call settle when the signal
 * aborts — timeout or shutdown — whatever the driver does.
 */
import type { Driver, Measurement } from '../../drivers/types.js';

function raceSignal<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    work.catch(() => undefined);
    return Promise.reject(signal.reason as Error);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e as Error);
      },
    );
  });
}

/** Bounds close() too: a device that never finishes closing must not block a reload. */
export function guardDriver(driver: Driver, closeTimeoutMs = 5_000): Driver {
  const open = driver.open?.bind(driver);
  const close = driver.close?.bind(driver);
  return {
    kind: driver.kind,
    quantities: driver.quantities,
    resource: driver.resource,
    open: open ? (signal: AbortSignal) => raceSignal(open(signal), signal) : undefined,
    measure: (signal: AbortSignal): Promise<Measurement[]> =>
      raceSignal(driver.measure(signal), signal),
    close: close
      ? () => raceSignal(close(), AbortSignal.timeout(closeTimeoutMs)).catch(() => undefined)
      : undefined,
  };
}
