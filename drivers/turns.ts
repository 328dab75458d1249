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
 * priority-0 waiter is overtaken at most once per other sensor. Callers that ask in the
 * same synchronous run (one timer callback) compete on priority even for a free wire; only
 * a caller of the highest priority the wire has seen takes a free wire at once.
 */
export class Turns {
  private held = false;
  private readonly queue: { priority: number; seq: number; go: () => void }[] = [];
  private seq = 0;
  private waiting = 0;
  /** A grant of the free wire is queued (a microtask). */
  private granting = false;
  /** The highest priority ever asked for here: the wire's longest conversion. */
  private highest = 0;

  /** Callers queued or running. */
  get depth(): number {
    return this.waiting;
  }

  async run<T>(fn: () => Promise<T>, priority = 0): Promise<T> {
    this.waiting++;
    const highest = priority > 0 && priority >= this.highest;
    if (priority > this.highest) this.highest = priority;
    try {
      if (!this.held && highest) {
        // The longest conversion this wire has been asked for takes a free wire at once:
        // nobody can outrank it, and its bytes leave while the slot's timer callback is
        // still starting the other rounds (on a Pi the ioctl runs on a pool thread
        // meanwhile), instead of after the callback.
        this.held = true;
      } else {
        await this.turn(priority);
      }
      return await fn();
    } finally {
      this.waiting--;
      this.handOn();
    }
  }

  private turn(priority: number): Promise<void> {
    return new Promise<void>((go) => {
      this.queue.push({ priority, seq: this.seq++, go });
      // A free wire is granted at the end of the caller's synchronous run (a microtask),
      // not at once: the rounds of one slot all ask within one timer callback, and the
      // first to ask is rarely the one with the longest conversion. A wire granted on the
      // spot went to whoever the timer fired first (an LM75 read) and was then held for
      // as long as the slot's burst kept the event loop busy
      // while the TMP102s, the bus's critical path, waited behind it.
      if (!this.held && !this.granting) {
        this.granting = true;
        queueMicrotask(this.grant);
      }
    });
  }

  private readonly grant = (): void => {
    this.granting = false;
    if (!this.held) this.handOn();
  };

  /** Give the wire to the highest-priority waiter (the earliest among equals), or free it. */
  private handOn(): void {
    if (this.queue.length === 0) {
      this.held = false;
      return;
    }
    this.held = true;
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
