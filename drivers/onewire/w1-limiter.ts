/**
 * Bounds how many 1-Wire sysfs reads run at once. A w1_slave / temperature read blocks in
 * the kernel for the whole conversion (750 ms at 12 bits) and Node runs it on one of
 * libuv's thread-pool threads (4 by default, UV_THREADPOOL_SIZE). Unbounded, eight DS18B20
 * would occupy every thread for 750 ms at a time and every other fs call, dns.lookup and
 * zlib job of the agent would queue behind them (measured: docs/benchmarks/onewire.md).
 *
 * A slot is held until the read itself settles, even when the caller gave up (timeout):
 * the thread stays busy in the kernel until then, so the slot must too.
 */
import { SensorError } from '../types.js';

export class ReadLimiter {
  private running = 0;
  private readonly queue: (() => void)[] = [];

  constructor(readonly limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`limit must be >= 1: ${limit}`);
  }

  /** Reads in progress (each occupying a thread-pool thread). */
  get active(): number {
    return this.running;
  }

  /** Reads waiting for a slot. */
  get waiting(): number {
    return this.queue.length;
  }

  async run<T>(read: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    await this.acquire(signal);
    const p = read();
    p.then(
      () => this.release(),
      () => this.release(),
    );
    if (!signal) return p;
    return new Promise<T>((resolve, reject) => {
      const onAbort = () => reject(timeout(signal));
      if (signal.aborted) return onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
      p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
    });
  }

  private acquire(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(timeout(signal));
    if (this.running < this.limit) {
      this.running++;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const grant = () => {
        signal?.removeEventListener('abort', onAbort);
        this.running++;
        resolve();
      };
      const onAbort = () => {
        const i = this.queue.indexOf(grant);
        if (i >= 0) this.queue.splice(i, 1);
        reject(timeout(signal!));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.queue.push(grant);
    });
  }

  private release(): void {
    this.running--;
    this.queue.shift()?.();
  }
}

function timeout(signal: AbortSignal): SensorError {
  return new SensorError('TIMEOUT', '1-Wire read did not finish in time', { cause: signal.reason });
}

/**
 * How many 1-Wire reads may block pool threads at once: half of libuv's thread pool
 * (UV_THREADPOOL_SIZE, default 4 → 2), so the other half stays free for file I/O,
 * dns.lookup and zlib. Measured in docs/benchmarks/onewire.md.
 */
export function defaultW1Concurrency(env: NodeJS.ProcessEnv = process.env): number {
  const pool = Number(env.UV_THREADPOOL_SIZE);
  return Math.max(1, Math.floor((Number.isInteger(pool) && pool > 0 ? pool : 4) / 2));
}

/** The agent-wide limiter every DS18B20 shares by default. */
export const sharedW1Reads = new ReadLimiter(defaultW1Concurrency());
