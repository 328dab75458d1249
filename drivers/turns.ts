/**
 * Turn-taking on a shared wire (one I²C bus, one RS-485 line): a FIFO async mutex.
 * Hold it for transfers only, never across a conversion wait, so that sensors on one bus
 * convert at the same time while their bytes take turns.
 */
export class Turns {
  private tail: Promise<void> = Promise.resolve();
  private waiting = 0;

  /** Callers queued or running. */
  get depth(): number {
    return this.waiting;
  }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    const prev = this.tail;
    let release!: () => void;
    this.tail = new Promise<void>((r) => (release = r));
    this.waiting++;
    try {
      await prev;
      return await fn();
    } finally {
      this.waiting--;
      release();
    }
  }
}

/** One Turns per named resource ("i2c:1", "serial:/dev/ttyUSB0"). */
export class TurnsRegistry {
  private readonly byName = new Map<string, Turns>();
  get(name: string): Turns {
    let t = this.byName.get(name);
    if (!t) this.byName.set(name, (t = new Turns()));
    return t;
  }
}

/** Resolve after ms, or reject with the signal's reason when aborted first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason as Error);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason as Error);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
