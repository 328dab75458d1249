/**
 * One I²C bus shared by every sensor on it. The bus is one wire: transfers take turns
 * through a lock served by priority (drivers/turns.ts), held only while bytes move, so
 * drivers do their conversion waits outside `transfer()` and all sensors on a bus convert
 * at the same time.
 *
 * EIO / EREMOTEIO (errno 121, frequent on the Pi with long wires or marginal pull-ups) are
 * retried here with a short backoff, taken outside the lock so other sensors keep going.
 * When transfers keep failing across the whole bus, the handle is closed and reopened
 * through the opener (a wedged adapter often recovers that way) — never per sensor, since a
 * single unplugged sensor must not disturb the others.
 */
import { access, constants } from 'node:fs/promises';
import type { I2CBus } from '../types.js';
import { Turns } from '../turns.js';
import { sleep } from '../time.js';

export interface SharedI2CBusOptions {
  /** The bus's turn-taking lock; pass the sampling engine's one to share it. */
  turns?: Turns;
  /** Extra attempts of a transfer after EIO / EREMOTEIO (default 2). */
  retries?: number;
  /** Backoff before the first retry, doubled each time (default 2 ms). */
  retryDelayMs?: number;
  /** Consecutive failed transfers on the bus after which the handle is reopened (default 3). */
  reopenAfter?: number;
}

export interface TransferOptions {
  /** Gives up waiting (for the turn or the transfer) when aborted; the wire stays held until the transfer really ends. */
  signal?: AbortSignal;
  /**
   * false: no retry and no bus-failure accounting. For polling a chip that NACKs while it
   * converts (Si7021): those refusals are expected, not bus trouble.
   */
  retry?: boolean;
  /**
   * For a transfer that starts a conversion: how long the conversion takes (ms). Among
   * transfers waiting for the bus, the one starting the longest wait goes first (Turns).
   */
  priority?: number;
}

export interface SharedI2CBusStats {
  transfers: number;
  /** Attempts repeated after EIO / EREMOTEIO. */
  retries: number;
  /** Transfers that failed after their retries. */
  failures: number;
  reopens: number;
}

const RETRYABLE = new Set(['EIO', 'EREMOTEIO']);
/** Errors that point at the bus or adapter rather than one device. */
const BUS_TROUBLE = new Set(['EIO', 'EREMOTEIO', 'ETIMEDOUT']);

const errorCode = (err: unknown): string | undefined =>
  (err as NodeJS.ErrnoException | undefined)?.code;

export class SharedI2CBus {
  readonly resource: string;
  readonly stats: SharedI2CBusStats = { transfers: 0, retries: 0, failures: 0, reopens: 0 };
  private readonly turns: Turns;
  private readonly retries: number;
  private readonly retryDelayMs: number;
  private readonly reopenAfter: number;
  private handle: Promise<I2CBus> | undefined;
  /** The handle once open, so a transfer on a free bus starts in the caller's own turn. */
  private opened: I2CBus | undefined;
  private consecutiveFailures = 0;
  private readonly touched = new Set<number>();

  constructor(
    readonly busNumber: number,
    private readonly opener: (busNumber: number) => Promise<I2CBus>,
    options: SharedI2CBusOptions = {},
  ) {
    this.resource = `i2c:${busNumber}`;
    this.turns = options.turns ?? new Turns();
    this.retries = options.retries ?? 2;
    this.retryDelayMs = options.retryDelayMs ?? 2;
    this.reopenAfter = options.reopenAfter ?? 3;
  }

  /** Run fn with the bus to itself. fn must only move bytes: never wait for a conversion in it. */
  async transfer<T>(fn: (bus: I2CBus) => Promise<T>, options: TransferOptions = {}): Promise<T> {
    const { signal, retry = true, priority = 0 } = options;
    const attempts = retry ? this.retries + 1 : 1;
    for (let attempt = 1; ; attempt++) {
      signal?.throwIfAborted();
      try {
        const result = await this.once(fn, signal, priority);
        if (retry) this.consecutiveFailures = 0;
        return result;
      } catch (err) {
        const code = errorCode(err);
        if (!retry || signal?.aborted || code === undefined) throw err;
        if (RETRYABLE.has(code) && attempt < attempts) {
          this.stats.retries++;
          await sleep(this.retryDelayMs * 2 ** (attempt - 1), signal);
          continue;
        }
        this.stats.failures++;
        if (BUS_TROUBLE.has(code) && ++this.consecutiveFailures >= this.reopenAfter) {
          this.consecutiveFailures = 0;
          await this.reopen();
        }
        throw err;
      }
    }
  }

  /**
   * i2c-bus opens one file descriptor per address on first use, and two concurrent first
   * uses leak one: call this once at start-up with every configured address. Each address
   * is touched in turn; the addresses that answered are returned (absent ones are reported
   * later by their drivers, so errors are not thrown here).
   */
  async touch(addresses: Iterable<number>): Promise<number[]> {
    const answered: number[] = [];
    for (const address of new Set(addresses)) {
      this.touched.add(address);
      try {
        await this.transfer((bus) => bus.receiveByte(address), { retry: false });
        answered.push(address);
      } catch {
        // Not there (yet): its driver reports it as a fault.
      }
    }
    return answered;
  }

  /** Close the handle; the next transfer opens it again. */
  async close(): Promise<void> {
    await this.turns.run(() => this.closeHandle());
  }

  private async once<T>(
    fn: (bus: I2CBus) => Promise<T>,
    signal: AbortSignal | undefined,
    priority: number,
  ): Promise<T> {
    const work = this.turns.run(async () => {
      // Aborted while queued: give the turn back without touching the wire.
      signal?.throwIfAborted();
      this.stats.transfers++;
      // No extra hop when the handle is open: the first transfer of a slot goes out (into
      // i2c-bus's thread pool) while the sampler is still starting the other rounds.
      return fn(this.opened ?? (await this.open()));
    }, priority);
    if (!signal) return work;
    // An ioctl cannot be cancelled: the caller stops waiting, the wire is held until it ends.
    work.catch(() => undefined);
    return new Promise<T>((resolve, reject) => {
      const onAbort = () => reject(signal.reason as Error);
      if (signal.aborted) return onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
      work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
    });
  }

  private open(): Promise<I2CBus> {
    if (!this.handle) {
      const opening = this.opener(this.busNumber);
      this.handle = opening;
      opening.then(
        (bus) => {
          if (this.handle === opening) this.opened = bus;
        },
        // A failed open is retried on the next transfer.
        () => {
          if (this.handle === opening) this.handle = undefined;
        },
      );
    }
    return this.handle;
  }

  private async reopen(): Promise<void> {
    await this.turns.run(async () => {
      this.stats.reopens++;
      await this.closeHandle();
      // A fresh handle has no per-address descriptors: touch them again, in turn.
      const bus = await this.open().catch(() => undefined);
      if (!bus) return;
      for (const address of this.touched) await bus.receiveByte(address).catch(() => undefined);
    });
  }

  private async closeHandle(): Promise<void> {
    const handle = this.handle;
    this.handle = undefined;
    this.opened = undefined;
    if (!handle) return;
    const bus = await handle.catch(() => undefined);
    await bus?.close().catch(() => undefined);
  }
}

/** The i2c-bus module's shape we use (it is an optional dependency). */
interface I2CBusModule {
  openPromisified(busNumber: number): Promise<I2CBus>;
}

/** Could not open an I²C bus on real hardware; the message says what to do. */
export class I2CBusOpenError extends Error {
  override name = 'I2CBusOpenError';
}

/** Open /dev/i2c-<n> through i2c-bus (real hardware only). */
export async function openI2CBus(busNumber: number): Promise<I2CBus> {
  const device = `/dev/i2c-${busNumber}`;
  try {
    await access(device, constants.R_OK | constants.W_OK);
  } catch (err) {
    const code = errorCode(err);
    throw new I2CBusOpenError(
      code === 'ENOENT'
        ? `${device} does not exist: enable I²C (raspi-config → Interface Options → I2C, or dtparam=i2c_arm=on) and check the bus number`
        : `${device} is not accessible (${code ?? String(err)}): run as a member of the i2c group`,
      { cause: err },
    );
  }
  let mod: I2CBusModule;
  try {
    mod = (await import('i2c-bus')) as unknown as I2CBusModule;
  } catch (err) {
    throw new I2CBusOpenError(
      'the i2c-bus module is not installed (it is an optional dependency built on Linux): npm install i2c-bus',
      { cause: err },
    );
  }
  try {
    return await mod.openPromisified(busNumber);
  } catch (err) {
    throw new I2CBusOpenError(`cannot open ${device}: ${(err as Error).message}`, { cause: err });
  }
}
