/**
 * Turn-taking on a shared wire (one I²C bus, one RS-485 line): an async mutex.
 * Hold it for transfers only, never across a conversion wait, so that sensors on one bus
 * convert at the same time while their bytes take turns.
 *
 * Waiters are served by priority, then in arrival order. A transfer that starts a
 * conversion passes the conversion's length as its priority: when several sensors of one
 * slot wait for the wire, the longest conversion starts first (critical path first), so
 * the bus's round ends when its slowest chip is done rather than when the slowest chip's
 * turn happened to come. Each sensor has one transfer pending at a time, so a
 * priority-0 waiter is overtaken at most once per other sensor.
 */
export class Turns {
  private held = false;
  private readonly queue: { priority: number; seq: number; go: () => void }[] = [];
  private seq = 0;
  private waiting = 0;

  /** Callers queued or running. */
  get depth(): number {
    return this.waiting;
  }

  async run<T>(fn: () => Promise<T>, priority = 0): Promise<T> {
    this.waiting++;
    try {
      if (this.held) {
        await new Promise<void>((go) => this.queue.push({ priority, seq: this.seq++, go }));
      } else {
        this.held = true;
      }
      return await fn();
    } finally {
      this.waiting--;
      this.handOn();
    }
  }

  /** Give the wire to the highest-priority waiter (the earliest among equals), or free it. */
  private handOn(): void {
    if (this.queue.length === 0) {
      this.held = false;
      return;
    }
    let best = 0;
    for (let i = 1; i < this.queue.length; i++) {
      const q = this.queue[i];
      const b = this.queue[best];
      if (q.priority > b.priority || (q.priority === b.priority && q.seq < b.seq)) best = i;
    }
    const [next] = this.queue.splice(best, 1);
    next.go();
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
