/**
 * One timer for many due times. 10,000 sensors at 1 Hz need 10,000 slot waits and 10,000
 * round deadlines a second; one setTimeout each costs a Timeout object, a closure and a
 * timer-list insert per wait, and fires every sensor in a callback of its own, so frames
 * bound for the same socket leave one syscall each. Here every waiter owns one reusable
 * entry in a binary min-heap; a single clock timer is armed for the earliest, and when it
 * fires every entry due by then fires in the same callback — their work reaches the
 * sockets within one tick, where BatchedWriter coalesces it. until() serves async waiters
 * the same way: one promise per millisecond that anyone waits for, shared by every waiter
 * due in it.
 */
import type { Clock } from '../../drivers/time.js';

/**
 * Entries fire at most this early (ms): timers are millisecond-grained, and a wait that
 * ends a fraction of a millisecond early costs less than a second timer turn.
 */
export const EARLY_MS = 0.5;
/** Waits longer than this are cut short by SLACK_FRACTION of their length (see arm()). */
const LONG_WAIT_MS = 20;
const SLACK_FRACTION = 0.002;

export class TimerEntry {
  /** Monotonic due time; meaningful while queued. */
  due = 0;
  /** Position in the heap, -1 while not queued. */
  pos = -1;
  /** Insertion order, so entries due at the same time fire first-come first-served. */
  order = 0;

  constructor(public fire: () => void) {}

  get queued(): boolean {
    return this.pos >= 0;
  }
}

/** The waits of one millisecond: one promise, settled when its entry fires. */
class Wake {
  readonly promise: Promise<void>;
  readonly entry: TimerEntry;
  private resolve!: () => void;

  constructor(
    readonly key: number,
    queue: TimerQueue,
  ) {
    this.promise = new Promise<void>((resolve) => (this.resolve = resolve));
    this.entry = new TimerEntry(() => queue.settle(this));
  }

  settle(): void {
    this.resolve();
  }
}

export class TimerQueue {
  private readonly heap: TimerEntry[] = [];
  private readonly wakes = new Map<number, Wake>();
  private inserted = 0;
  private armedFor = Number.POSITIVE_INFINITY;
  private cancelArmed: (() => void) | undefined;
  private firing = false;

  constructor(private readonly clock: Clock) {}

  get size(): number {
    return this.heap.length;
  }

  /** Queue entry to fire at monotonic time `due` (rescheduling it if already queued). */
  schedule(entry: TimerEntry, due: number): void {
    if (entry.pos >= 0) this.remove(entry);
    entry.due = due;
    entry.order = this.inserted++;
    entry.pos = this.heap.length;
    this.heap.push(entry);
    this.up(entry.pos);
    if (!this.firing && due < this.armedFor) this.arm();
  }

  /** A reusable one-shot timer on this queue: start(ms) arms it, stop() disarms it. */
  oneShot(fire: () => void): OneShot {
    return new OneShot(this, new TimerEntry(fire));
  }

  /**
   * A promise that settles at monotonic time `due`, rounded up to the millisecond (at most
   * EARLY_MS before `due`), shared by every wait for the same millisecond: waiting
   * allocates nothing per waiter. It settles early when wakeEarly() is called for it.
   */
  until(due: number): Promise<void> {
    const key = Math.ceil(due);
    let wake = this.wakes.get(key);
    if (wake === undefined) {
      wake = new Wake(key, this);
      this.wakes.set(key, wake);
      this.schedule(wake.entry, key);
    }
    return wake.promise;
  }

  /**
   * Settle the until(due) promise now (a waiter that is being stopped), and with it every
   * other wait of that millisecond: those find their slot not yet due and wait again.
   */
  wakeEarly(due: number): void {
    const wake = this.wakes.get(Math.ceil(due));
    if (wake === undefined) return;
    this.cancel(wake.entry);
    this.settle(wake);
  }

  /** @internal A Wake's entry fired (or was woken early). */
  settle(wake: Wake): void {
    if (this.wakes.get(wake.key) === wake) this.wakes.delete(wake.key);
    wake.settle();
  }

  /** Monotonic now, as this queue's clock tells it. */
  now(): number {
    return this.clock.now();
  }

  /** Take entry out of the queue; a no-op when it is not queued. */
  cancel(entry: TimerEntry): void {
    if (entry.pos < 0) return;
    this.remove(entry);
    // The armed timer may now be early; it re-arms itself when it fires, which is cheaper
    // than re-arming on every cancel (most cancels are deadlines of rounds that finished).
    if (this.heap.length === 0) this.disarm();
  }

  private fireDue = (): void => {
    this.armedFor = Number.POSITIVE_INFINITY;
    this.cancelArmed = undefined;
    this.firing = true;
    try {
      const limit = this.clock.now() + EARLY_MS;
      // Bounded by the entries queued now: an entry re-queued for "now" by its own fire()
      // waits for the next turn instead of spinning here.
      for (let n = this.heap.length; n > 0 && this.heap.length > 0; n--) {
        const top = this.heap[0];
        if (top.due > limit) break;
        this.remove(top);
        top.fire();
      }
    } finally {
      this.firing = false;
      if (this.heap.length > 0) this.arm();
    }
  };

  private arm(): void {
    this.disarm();
    const due = this.heap[0].due;
    this.armedFor = due;
    const timer = this.clock.timer;
    let ms = Math.max(0, due - this.clock.now());
    // Linux lets a poll timeout slip by ~0.1 % of its length (timer slack): a 2 s wait
    // ended 1.7–3.4 ms late here. Wake a little early instead; fireDue finds nothing due
    // yet and arms a short timer for the rest.
    if (ms > LONG_WAIT_MS) ms -= Math.max(1, ms * SLACK_FRACTION);
    if (timer) {
      this.cancelArmed = timer.call(this.clock, ms, this.fireDue);
    } else {
      // A clock without timer(): sleep with a private abort controller.
      const ctl = new AbortController();
      this.clock.sleep(ms, ctl.signal).then(this.fireDue, () => undefined);
      this.cancelArmed = () => ctl.abort();
    }
  }

  private disarm(): void {
    this.cancelArmed?.();
    this.cancelArmed = undefined;
    this.armedFor = Number.POSITIVE_INFINITY;
  }

  private remove(entry: TimerEntry): void {
    const i = entry.pos;
    const last = this.heap.pop()!;
    entry.pos = -1;
    if (last === entry) return;
    this.heap[i] = last;
    last.pos = i;
    this.down(i);
    this.up(last.pos);
  }

  private before(a: TimerEntry, b: TimerEntry): boolean {
    return a.due < b.due || (a.due === b.due && a.order < b.order);
  }

  private up(i: number): void {
    const heap = this.heap;
    const entry = heap[i];
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.before(entry, heap[parent])) break;
      heap[i] = heap[parent];
      heap[i].pos = i;
      i = parent;
    }
    heap[i] = entry;
    entry.pos = i;
  }

  private down(i: number): void {
    const heap = this.heap;
    const n = heap.length;
    const entry = heap[i];
    for (;;) {
      let child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && this.before(heap[child + 1], heap[child])) child++;
      if (!this.before(heap[child], entry)) break;
      heap[i] = heap[child];
      heap[i].pos = i;
      i = child;
    }
    heap[i] = entry;
    entry.pos = i;
  }
}

/** One object per sensor rather than two closures and their context. */
export class OneShot {
  constructor(
    private readonly queue: TimerQueue,
    private readonly entry: TimerEntry,
  ) {}

  start(ms: number): void {
    this.queue.schedule(this.entry, this.queue.now() + ms);
  }

  stop(): void {
    this.queue.cancel(this.entry);
  }
}
