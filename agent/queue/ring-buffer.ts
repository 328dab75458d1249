/**
 * Single-producer / single-consumer ring of fixed-size reading records in a
 * SharedArrayBuffer, shared between the main thread (producer: the sampler) and the
 * aggregation worker (consumer). Allocated once; nothing on the hot path allocates.
 *
 * Memory layout (all little-endian, native):
 *   header, 512 bytes, Int32 slots; producer- and consumer-written fields sit on separate
 *   64-byte cache lines so the two threads do not false-share:
 *     line 0  capacity, policy, magic
 *     line 1  head (next write index, wraps mod 2^32), head epoch (wraps of head), seqlock
 *     line 2  tail (next read index, wraps mod 2^32)
 *     line 3  read counter (lo, hi, seqlock)      — consumer only
 *     line 4  dropped counter (lo, hi, seqlock)   — producer only
 *     line 5  consumer-waiting mark (0: awake; 1: wake on any push; m > 1: wake once m records
 *             are unread), producer-waiting flag
 *     line 6  consumer heartbeat (liveness, see AggregationWorker)
 *   records, capacity × 24 bytes: u32 sensorIndex, u32 (quantity u16 | status u8 << 16),
 *   f64 t (ms since epoch), f64 value.
 *
 * Overflow policies:
 *   drop-newest  a push into a full ring is refused and counted.
 *   drop-oldest  the producer claims the oldest unread slot by advancing `tail` with a CAS
 *                and counts it. The consumer copies records out first and then commits with
 *                a CAS on `tail`; if the producer moved `tail` meanwhile, the records it took
 *                are discarded (they are counted as dropped, and may be torn), the rest are
 *                provably untouched (the producer overwrites a slot only after moving `tail`
 *                past it). So no torn record is ever visited.
 *   block        push() refuses like drop-newest but does not count (nothing is lost, the
 *                caller retries); pushAsync() waits for space with Atomics.waitAsync, which
 *                parks a promise instead of the event loop.
 *
 * Counters: `written` = records stored, `read` = records handed to the consumer,
 * `dropped` = records lost (refused under drop-newest, overwritten under drop-oldest).
 * Conservation: pushes attempted (excluding block refusals) = read + dropped + fill.
 *
 * Sleeping: the consumer raises its waiting flag, re-checks, then Atomics.wait()s on `head`;
 * the producer notifies only when it is the one to clear that flag (one notify per sleep,
 * not one per push while the sleeper wakes up). Atomics are sequentially consistent, so
 * either the producer sees the flag or the consumer sees the new head — no lost wake-up and
 * no notify syscall per push. A consumer that takes readings in batches sleeps with a fill
 * mark instead (waitForFill): pushes below the mark do not wake it, so it wakes once per
 * period or per mark's worth of readings rather than once per push (a futex call each).
 */

export type OverflowPolicy = 'drop-oldest' | 'drop-newest' | 'block';
const POLICIES: readonly OverflowPolicy[] = ['drop-oldest', 'drop-newest', 'block'];

/** Visitor for one record; arguments in record order. */
export type RecordVisitor = (
  sensorIndex: number,
  quantity: number,
  t: number,
  value: number,
  status: number,
) => void;

export interface RingCounters {
  written: number;
  read: number;
  dropped: number;
  capacity: number;
  fill: number;
}

const HEADER_BYTES = 512;
const RECORD_BYTES = 24;
const MAGIC = 0x52494e47; // "RING"

// Int32 indices into the header.
const CAPACITY = 0;
const POLICY = 1;
const MAGIC_AT = 2;
const HEAD = 16;
const HEAD_EPOCH = 17;
const HEAD_SEQ = 18;
const TAIL = 32;
const READ_LO = 48;
const DROPPED_LO = 64;
const CONSUMER_WAITING = 80;
const PRODUCER_WAITING = 81;
const HEARTBEAT = 96;

const TWO32 = 4294967296;
const MAX_SEQLOCK_TRIES = 1000;

type WaitAsyncResult =
  | { async: false; value: 'not-equal' | 'timed-out' }
  | { async: true; value: Promise<'ok' | 'timed-out'> };
// Node 20 has Atomics.waitAsync; TypeScript's ES2023 lib does not declare it yet.
const waitAsync = (
  Atomics as unknown as {
    waitAsync: (ta: Int32Array, index: number, value: number, timeout?: number) => WaitAsyncResult;
  }
).waitAsync;

export class RingBuffer {
  readonly shared: SharedArrayBuffer;
  readonly capacity: number;
  readonly policy: OverflowPolicy;
  private readonly ctrl: Int32Array;
  private readonly u32: Uint32Array;
  private readonly f64: Float64Array;
  private readonly mask: number;
  /** Producer's last seen tail (see push). */
  private producerTail: number;
  // Consumer-side scratch for drop-oldest validation (allocated lazily, once).
  private scratchU32: Uint32Array | undefined;
  private scratchF64: Float64Array | undefined;

  private constructor(sab: SharedArrayBuffer) {
    this.shared = sab;
    this.ctrl = new Int32Array(sab, 0, HEADER_BYTES / 4);
    if (this.ctrl[MAGIC_AT] !== MAGIC) throw new Error('not a ring buffer (bad magic)');
    this.capacity = this.ctrl[CAPACITY];
    this.policy = POLICIES[this.ctrl[POLICY]];
    this.mask = this.capacity - 1;
    this.producerTail = Atomics.load(this.ctrl, TAIL);
    this.u32 = new Uint32Array(sab, HEADER_BYTES, (this.capacity * RECORD_BYTES) / 4);
    this.f64 = new Float64Array(sab, HEADER_BYTES, (this.capacity * RECORD_BYTES) / 8);
  }

  /** Allocates the ring once. `capacity` (records) must be a power of two, 2..2^26. */
  static create(capacity: number, overflow: OverflowPolicy): RingBuffer {
    if (!Number.isInteger(capacity) || capacity < 2 || capacity > 2 ** 26) {
      throw new RangeError(`ring capacity must be an integer 2..2^26, got ${capacity}`);
    }
    if ((capacity & (capacity - 1)) !== 0) {
      throw new RangeError(`ring capacity must be a power of two, got ${capacity}`);
    }
    const policy = POLICIES.indexOf(overflow);
    if (policy < 0) throw new RangeError(`unknown overflow policy ${String(overflow)}`);
    const sab = new SharedArrayBuffer(HEADER_BYTES + capacity * RECORD_BYTES);
    const ctrl = new Int32Array(sab, 0, HEADER_BYTES / 4);
    ctrl[CAPACITY] = capacity;
    ctrl[POLICY] = policy;
    Atomics.store(ctrl, MAGIC_AT, MAGIC);
    return new RingBuffer(sab);
  }

  /** Another view of an existing ring (the worker's side, or a restarted worker). */
  static attach(sab: SharedArrayBuffer): RingBuffer {
    return new RingBuffer(sab);
  }

  // ---------------------------------------------------------------- producer side

  /**
   * Stores one reading. Returns false when the ring was full and the reading was not stored
   * (drop-newest: counted as dropped; block: not counted, retry or use pushAsync).
   * Under drop-oldest it always stores, dropping the oldest unread record if needed.
   */
  push(sensorIndex: number, quantity: number, t: number, value: number, status: number): boolean {
    const ctrl = this.ctrl;
    const head = ctrl[HEAD]; // only this thread writes head
    // The consumer's tail only moves forward: a stale copy can only make the ring look
    // fuller than it is, so reload it (a contended cache line) only when it looks full.
    let tail = this.producerTail;
    if (((head - tail) | 0) >>> 0 >= this.capacity) {
      tail = this.producerTail = Atomics.load(ctrl, TAIL);
    }
    if (((head - tail) | 0) >>> 0 >= this.capacity) {
      if (this.policy === 'block') return false;
      if (this.policy === 'drop-newest') {
        this.countDrop();
        return false;
      }
      // drop-oldest: claim the oldest slot unless the consumer just freed space.
      for (;;) {
        if (((head - tail) | 0) >>> 0 < this.capacity) break;
        const seen = Atomics.compareExchange(ctrl, TAIL, tail, (tail + 1) | 0);
        if (seen === tail) {
          this.producerTail = (tail + 1) | 0;
          this.countDrop();
          break;
        }
        tail = this.producerTail = seen;
      }
    }
    const slot = head & this.mask;
    const u = slot * 6;
    const f = slot * 3;
    this.u32[u] = sensorIndex;
    this.u32[u + 1] = (quantity & 0xffff) | ((status & 0xff) << 16);
    this.f64[f + 1] = t;
    this.f64[f + 2] = value;
    const next = (head + 1) | 0;
    if (next === 0) this.wrapHead();
    else Atomics.store(ctrl, HEAD, next);
    // One notify per sleep: whoever clears the flag wakes the consumer; a consumer that set a
    // fill mark only once the mark is reached (the fill read from the consumer's tail).
    const mark = Atomics.load(ctrl, CONSUMER_WAITING);
    if (
      mark !== 0 &&
      (mark === 1 || ((next - Atomics.load(ctrl, TAIL)) | 0) >>> 0 >= mark) &&
      Atomics.exchange(ctrl, CONSUMER_WAITING, 0) !== 0
    ) {
      Atomics.notify(ctrl, HEAD);
    }
    return true;
  }

  /**
   * Stores one reading, waiting for space under the block policy (without blocking the event
   * loop and without spinning). Under the drop policies it is push() and resolves at once.
   */
  async pushAsync(
    sensorIndex: number,
    quantity: number,
    t: number,
    value: number,
    status: number,
  ): Promise<void> {
    while (!this.push(sensorIndex, quantity, t, value, status)) {
      if (this.policy !== 'block') return;
      await this.waitForSpace(1000);
    }
  }

  /** Resolves when the consumer has freed space (or after timeoutMs); no spinning. */
  async waitForSpace(timeoutMs: number): Promise<void> {
    const ctrl = this.ctrl;
    Atomics.store(ctrl, PRODUCER_WAITING, 1);
    const tail = Atomics.load(ctrl, TAIL);
    if (((ctrl[HEAD] - tail) | 0) >>> 0 < this.capacity) {
      Atomics.store(ctrl, PRODUCER_WAITING, 0);
      return;
    }
    const r = waitAsync(ctrl, TAIL, tail, timeoutMs);
    if (r.async) await r.value;
    Atomics.store(ctrl, PRODUCER_WAITING, 0);
  }

  private wrapHead(): void {
    // Seqlock so counters() never pairs the new head with the old epoch.
    const ctrl = this.ctrl;
    Atomics.add(ctrl, HEAD_SEQ, 1);
    Atomics.add(ctrl, HEAD_EPOCH, 1);
    Atomics.store(ctrl, HEAD, 0);
    Atomics.add(ctrl, HEAD_SEQ, 1);
  }

  private countDrop(): void {
    this.write64(DROPPED_LO, this.read64(DROPPED_LO) + 1);
  }

  // ---------------------------------------------------------------- consumer side

  /**
   * Hands up to `max` records, oldest first, to `visit` and frees their slots. Returns how
   * many were visited. Never visits a record that is being overwritten.
   */
  drain(max: number, visit: RecordVisitor): number {
    const ctrl = this.ctrl;
    const head = Atomics.load(ctrl, HEAD);
    const tail = Atomics.load(ctrl, TAIL);
    const avail = ((head - tail) | 0) >>> 0;
    const n = Math.min(avail, max, this.capacity);
    if (n === 0) return 0;
    if (this.policy === 'drop-oldest') return this.drainValidated(tail, n, visit);
    // The producer never touches unread slots under these policies: visit in place, then free.
    const u32 = this.u32;
    const f64 = this.f64;
    const mask = this.mask;
    for (let i = 0; i < n; i++) {
      const slot = (tail + i) & mask;
      const u = slot * 6;
      const f = slot * 3;
      const meta = u32[u + 1];
      visit(u32[u], meta & 0xffff, f64[f + 1], f64[f + 2], meta >>> 16);
    }
    this.commit(tail, n);
    return n;
  }

  private drainValidated(tail: number, n: number, visit: RecordVisitor): number {
    const ctrl = this.ctrl;
    const mask = this.mask;
    if (this.scratchU32 === undefined || this.scratchU32.length < n * 2) {
      this.scratchU32 = new Uint32Array(this.capacity * 2);
      this.scratchF64 = new Float64Array(this.capacity * 2);
    }
    const su = this.scratchU32;
    const sf = this.scratchF64!;
    for (let i = 0; i < n; i++) {
      const slot = (tail + i) & mask;
      su[i * 2] = this.u32[slot * 6];
      su[i * 2 + 1] = this.u32[slot * 6 + 1];
      sf[i * 2] = this.f64[slot * 3 + 1];
      sf[i * 2 + 1] = this.f64[slot * 3 + 2];
    }
    // Commit; if the producer advanced tail past some copied records, those are dropped.
    let from = tail;
    const end = (tail + n) | 0;
    for (;;) {
      const seen = Atomics.compareExchange(ctrl, TAIL, from, end);
      if (seen === from) break;
      if (((seen - tail) | 0) >>> 0 >= n) return 0; // all copied records were taken
      from = seen;
    }
    this.wakeProducer();
    const skip = ((from - tail) | 0) >>> 0;
    const got = n - skip;
    this.write64(READ_LO, this.read64(READ_LO) + got);
    for (let i = skip; i < n; i++) {
      const meta = su[i * 2 + 1];
      visit(su[i * 2], meta & 0xffff, sf[i * 2], sf[i * 2 + 1], meta >>> 16);
    }
    return got;
  }

  private commit(tail: number, n: number): void {
    const ctrl = this.ctrl;
    Atomics.store(ctrl, TAIL, (tail + n) | 0);
    this.write64(READ_LO, this.read64(READ_LO) + n);
    this.wakeProducer();
  }

  private wakeProducer(): void {
    const ctrl = this.ctrl;
    if (
      Atomics.load(ctrl, PRODUCER_WAITING) !== 0 &&
      Atomics.exchange(ctrl, PRODUCER_WAITING, 0) !== 0
    ) {
      Atomics.notify(ctrl, TAIL);
    }
  }

  /**
   * Sleeps (Atomics.wait: the calling thread blocks, so only in the worker) until the ring is
   * non-empty, wakeConsumer() is called, or timeoutMs passes. Returns whether data is there.
   */
  waitForData(timeoutMs: number): boolean {
    const ctrl = this.ctrl;
    Atomics.store(ctrl, CONSUMER_WAITING, 1);
    const head = Atomics.load(ctrl, HEAD);
    if (head === Atomics.load(ctrl, TAIL)) Atomics.wait(ctrl, HEAD, head, timeoutMs);
    Atomics.store(ctrl, CONSUMER_WAITING, 0);
    return Atomics.load(ctrl, HEAD) !== Atomics.load(ctrl, TAIL);
  }

  /**
   * Sleeps like waitForData, except that pushes wake it only once `mark` records (at least 1,
   * at most the capacity) are unread: until then it sleeps the whole timeoutMs, or until
   * wakeConsumer(). Returns whether data is there.
   */
  waitForFill(mark: number, timeoutMs: number): boolean {
    const ctrl = this.ctrl;
    const m = Math.min(this.capacity, Math.max(1, Math.floor(mark)));
    Atomics.store(ctrl, CONSUMER_WAITING, m);
    const head = Atomics.load(ctrl, HEAD);
    if (((head - Atomics.load(ctrl, TAIL)) | 0) >>> 0 < m)
      Atomics.wait(ctrl, HEAD, head, timeoutMs);
    Atomics.store(ctrl, CONSUMER_WAITING, 0);
    return Atomics.load(ctrl, HEAD) !== Atomics.load(ctrl, TAIL);
  }

  /**
   * The fill mark of a consumer asleep in waitForData (1) or waitForFill (its mark); 0 when
   * none is, or once the push that wakes it has cleared the mark.
   */
  consumerWaiting(): number {
    return Atomics.load(this.ctrl, CONSUMER_WAITING);
  }

  /** Wakes a consumer sleeping in waitForData (e.g. because a control message is waiting). */
  wakeConsumer(): void {
    Atomics.notify(this.ctrl, HEAD);
  }

  /** Consumer liveness: bumped by the consumer on every loop; read by the host. */
  beat(): void {
    Atomics.add(this.ctrl, HEARTBEAT, 1);
  }

  heartbeat(): number {
    return Atomics.load(this.ctrl, HEARTBEAT);
  }

  // ---------------------------------------------------------------- counters

  counters(): RingCounters {
    const ctrl = this.ctrl;
    let written = 0;
    for (let i = 0; i < MAX_SEQLOCK_TRIES; i++) {
      const s1 = Atomics.load(ctrl, HEAD_SEQ);
      const head = Atomics.load(ctrl, HEAD) >>> 0;
      const epoch = Atomics.load(ctrl, HEAD_EPOCH) >>> 0;
      written = epoch * TWO32 + head;
      if ((s1 & 1) === 0 && Atomics.load(ctrl, HEAD_SEQ) === s1) break;
    }
    const head = Atomics.load(ctrl, HEAD);
    const tail = Atomics.load(ctrl, TAIL);
    return {
      written,
      read: this.read64(READ_LO),
      dropped: this.read64(DROPPED_LO),
      capacity: this.capacity,
      fill: Math.min(this.capacity, ((head - tail) | 0) >>> 0),
    };
  }

  /** A 64-bit counter as lo/hi Int32 plus a seqlock word, written by one thread only. */
  private write64(at: number, value: number): void {
    const ctrl = this.ctrl;
    Atomics.add(ctrl, at + 2, 1);
    Atomics.store(ctrl, at, (value % TWO32) | 0);
    Atomics.store(ctrl, at + 1, Math.floor(value / TWO32));
    Atomics.add(ctrl, at + 2, 1);
  }

  private read64(at: number): number {
    const ctrl = this.ctrl;
    let value = 0;
    for (let i = 0; i < MAX_SEQLOCK_TRIES; i++) {
      const s1 = Atomics.load(ctrl, at + 2);
      value = (Atomics.load(ctrl, at + 1) >>> 0) * TWO32 + (Atomics.load(ctrl, at) >>> 0);
      if ((s1 & 1) === 0 && Atomics.load(ctrl, at + 2) === s1) break;
    }
    return value;
  }
}
