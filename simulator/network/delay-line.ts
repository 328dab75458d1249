/**
 * The simulated devices' fixed latency: every request waits `delayMs` from its arrival,
 * then its reply leaves, on time to a fraction of a millisecond, so that a benchmark charges
 * the agent only for its own lateness. A bare setTimeout per request cannot promise that
 * (libuv keeps time in whole milliseconds and re-polls when it wakes a fraction early),
 * hence:
 *
 * - one queue per server: with a fixed delay, due times come in arrival order, so a FIFO
 *   is already sorted, and one timer serves the head;
 * - while few requests wait (≤ PRECISE_MAX), the timer is set 1 ms short and the last
 *   stretch is covered by setImmediate turns, so replies leave within ~0.1 ms of their
 *   due time; with many waiting (thousands of sensors) that spin would never end and
 *   take a core from the agent under test, so it falls back to plain timers;
 * - never early: an entry leaves only once performance.now() has reached its due time.
 */

/** Up to this many waiting requests, the last millisecond of a wait is spun (see above). */
const PRECISE_MAX = 32;
/** The timer is armed this much short of the head's due time in precise mode. */
const SPIN_MS = 1;

export class DelayedReply {
  /** performance.now() when the reply may leave. */
  constructor(
    readonly due: number,
    public fire: (() => void) | undefined,
  ) {}
}

export class DelayLine {
  private readonly queue: DelayedReply[] = [];
  private head = 0;
  private timer: NodeJS.Timeout | undefined;
  private spinning = false;

  constructor(private readonly delayMs: number) {}

  /** Waiting replies, cancelled ones included until they reach the head. */
  get pending(): number {
    return this.queue.length - this.head;
  }

  /** Run `fire` delayMs from now. */
  add(fire: () => void): DelayedReply {
    const reply = new DelayedReply(performance.now() + this.delayMs, fire);
    this.queue.push(reply);
    if (this.pending === 1) this.arm();
    return reply;
  }

  /** The reply will not fire (its connection closed). */
  cancel(reply: DelayedReply): void {
    reply.fire = undefined;
  }

  /** Drop everything waiting (server closing). */
  clear(): void {
    for (let i = this.head; i < this.queue.length; i++) this.queue[i].fire = undefined;
    this.queue.length = 0;
    this.head = 0;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private readonly release = (): void => {
    this.timer = undefined;
    this.spinning = false;
    const now = performance.now();
    // Bounded by the entries queued now; a fire() that queues a new reply puts it behind.
    for (let n = this.pending; n > 0 && this.queue[this.head].due <= now; n--) {
      const reply = this.queue[this.head++];
      const fire = reply.fire;
      reply.fire = undefined;
      fire?.();
    }
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
    if (this.pending > 0) this.arm();
    else {
      this.queue.length = 0;
      this.head = 0;
    }
  };

  private arm(): void {
    if (this.timer || this.spinning) return;
    const wait = this.queue[this.head].due - performance.now();
    const precise = this.pending <= PRECISE_MAX;
    if (precise && wait <= SPIN_MS) {
      this.spinning = true;
      setImmediate(this.release);
    } else {
      this.timer = setTimeout(this.release, Math.max(0, precise ? wait - SPIN_MS : wait));
    }
  }
}
