/**
 * A serialport binding (the BindingInterface that @serialport/stream drives) wired to
 * simulated devices instead of a UART. Bytes take their real time on the wire: one
 * character is start + data + parity + stop bits at the opened baud rate, the host's bytes
 * reach the device after their transmit time, and the device's bytes reach the host in
 * UART-FIFO-sized chunks (8 bytes) as they would come out of a USB-RS485 adapter.
 *
 * Unplug: the open port's pending read fails with a non-canceled error, which makes the
 * stream close with `disconnected: true`, exactly like a vanished /dev/ttyUSB0; opening
 * fails with ENOENT until replug.
 */
import { performance } from 'node:perf_hooks';
import type { SerialBinding } from '../../drivers/serial/serial-lines.js';
import { characterTimeMs } from '../../drivers/serial/modbus-rtu-frame.js';

type PortBinding = Awaited<ReturnType<SerialBinding['open']>>;
type BindingOpenOptions = Parameters<SerialBinding['open']>[0];
type PortInfo = Awaited<ReturnType<SerialBinding['list']>>[number];

/** The device end of an open port. */
export interface DevicePort {
  readonly settings: Readonly<Required<BindingOpenOptions>>;
  /** Time of one character on the wire, ms. */
  readonly characterMs: number;
  /** Send bytes to the host; they arrive after their transmit time, in order. */
  send(bytes: Buffer): void;
  /** performance.now() when the device's last byte reached the host (0: never). */
  readonly lastDeliveredAt: number;
}

/** Facts about bytes from the host, beyond the bytes. */
export interface HostWrite {
  /** performance.now() when the host handed the bytes to the port. */
  writtenAt: number;
}

/** A simulated device behind a serial port. */
export interface SerialDevice {
  /** The host opened the port. */
  attach?(port: DevicePort): void;
  /** The host closed the port or the cable was pulled. */
  detach?(port: DevicePort): void;
  /** Bytes from the host, after they have been on the wire. */
  receive(bytes: Buffer, port: DevicePort, write: HostWrite): void;
}

/** How many bytes a USB-serial adapter hands over at once. */
const FIFO_CHUNK = 8;

class CanceledError extends Error {
  readonly canceled = true;
}

class SimulatedPort implements PortBinding, DevicePort {
  isOpen = true;
  lastDeliveredAt = 0;
  readonly characterMs: number;
  private readonly rx: Buffer[] = [];
  private pendingRead: (() => void) | undefined;
  /**
   * Deliveries still on the wire, in time order, behind one timer, so bytes arrive in the
   * order they were sent. One setTimeout per chunk cannot promise that: Node keeps one list
   * per duration, and when the loop runs late it may fire a 9 ms timer before an 8 ms one
   * set in the same tick, letting a reply's last byte overtake its first.
   */
  private readonly due: { at: number; fn: () => void }[] = [];
  private timer: NodeJS.Timeout | undefined;
  /** When the device → host wire is free again (performance.now()). */
  private txFreeAt = 0;
  private gone = false;

  constructor(
    readonly openOptions: Required<BindingOpenOptions>,
    private readonly device: SerialDevice,
    private readonly onClosed: (port: SimulatedPort) => void,
  ) {
    this.characterMs = characterTimeMs(openOptions);
  }

  get settings(): Readonly<Required<BindingOpenOptions>> {
    return this.openOptions;
  }

  send(bytes: Buffer): void {
    if (!this.isOpen || this.gone) return;
    let at = Math.max(performance.now(), this.txFreeAt);
    for (let i = 0; i < bytes.length; i += FIFO_CHUNK) {
      const chunk = Buffer.from(bytes.subarray(i, i + FIFO_CHUNK));
      at += chunk.length * this.characterMs;
      this.at(at, () => {
        this.rx.push(chunk);
        this.lastDeliveredAt = performance.now();
        this.wakeReader();
      });
    }
    this.txFreeAt = at;
  }

  /** Pull the cable: the pending read fails (not canceled), so the stream disconnects. */
  disconnect(): void {
    this.gone = true;
    this.clearTimers();
    this.wakeReader();
  }

  async read(
    buffer: Buffer,
    offset: number,
    length: number,
  ): Promise<{ buffer: Buffer; bytesRead: number }> {
    for (;;) {
      if (!this.isOpen) throw new CanceledError('port is closed');
      if (this.gone) throw new Error('device disconnected (EIO)');
      const head = this.rx[0];
      if (head) {
        const n = Math.min(length, head.length);
        head.copy(buffer, offset, 0, n);
        if (n === head.length) this.rx.shift();
        else this.rx[0] = head.subarray(n);
        return { buffer, bytesRead: n };
      }
      await new Promise<void>((r) => (this.pendingRead = r));
    }
  }

  async write(buffer: Buffer): Promise<void> {
    if (!this.isOpen) throw new CanceledError('port is closed');
    if (this.gone) throw new Error('device disconnected (EIO)');
    const bytes = Buffer.from(buffer);
    const write = { writtenAt: performance.now() };
    this.at(write.writtenAt + bytes.length * this.characterMs, () =>
      this.device.receive(bytes, this, write),
    );
  }

  async close(): Promise<void> {
    if (!this.isOpen) throw new Error('Port is not open');
    this.isOpen = false;
    this.clearTimers();
    this.wakeReader();
    // After an unplug the device was already told.
    if (!this.gone) this.device.detach?.(this);
    this.onClosed(this);
  }

  async update(): Promise<void> {}
  async set(): Promise<void> {}
  async get(): Promise<{ cts: boolean; dsr: boolean; dcd: boolean }> {
    return { cts: true, dsr: true, dcd: false };
  }
  async getBaudRate(): Promise<{ baudRate: number }> {
    return { baudRate: this.openOptions.baudRate };
  }
  async flush(): Promise<void> {
    this.rx.length = 0;
  }
  async drain(): Promise<void> {}

  private wakeReader(): void {
    const r = this.pendingRead;
    this.pendingRead = undefined;
    r?.();
  }

  /** Run fn at performance.now() time `at`, after everything due earlier or at the same time. */
  private at(at: number, fn: () => void): void {
    let i = this.due.length;
    while (i > 0 && this.due[i - 1].at > at) i--;
    this.due.splice(i, 0, { at, fn });
    this.arm();
  }

  private arm(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const next = this.due[0];
    if (!next) return;
    this.timer = setTimeout(() => this.fire(), Math.max(0, next.at - performance.now()));
  }

  private fire(): void {
    this.timer = undefined;
    // Within the timers' 1 ms grain counts as due: a timer cannot be asked for less.
    const now = performance.now() + 1;
    while (this.due.length > 0 && this.due[0].at <= now) this.due.shift()!.fn();
    this.arm();
  }

  private clearTimers(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.due.length = 0;
  }
}

interface Slot {
  device: SerialDevice;
  plugged: boolean;
  open: SimulatedPort | undefined;
  opens: number;
}

export class SimulatedSerialBinding implements SerialBinding {
  private readonly slots = new Map<string, Slot>();

  /** Put a device behind a port path, e.g. "/dev/ttySIM0". */
  add(path: string, device: SerialDevice): this {
    this.slots.set(path, { device, plugged: true, open: undefined, opens: 0 });
    return this;
  }

  /** Pull the adapter: an open port disconnects, opening fails until replug(). */
  unplug(path: string): void {
    const slot = this.slot(path);
    slot.plugged = false;
    const port = slot.open;
    slot.open = undefined;
    if (port) {
      port.disconnect();
      slot.device.detach?.(port);
    }
  }

  replug(path: string): void {
    this.slot(path).plugged = true;
  }

  /** How many times the port was opened (tests check reopen). */
  opens(path: string): number {
    return this.slot(path).opens;
  }

  isOpen(path: string): boolean {
    return this.slot(path).open?.isOpen === true;
  }

  async list(): Promise<PortInfo[]> {
    return [...this.slots.entries()]
      .filter(([, s]) => s.plugged)
      .map(([path]) => ({
        path,
        manufacturer: 'edge-agent simulator',
        serialNumber: undefined,
        pnpId: undefined,
        locationId: undefined,
        productId: undefined,
        vendorId: undefined,
      }));
  }

  async open(options: BindingOpenOptions): Promise<PortBinding> {
    await Promise.resolve();
    const slot = this.slots.get(options.path);
    if (!slot || !slot.plugged) {
      throw Object.assign(
        new Error(`Error: No such file or directory, cannot open ${options.path}`),
        {
          code: 'ENOENT',
        },
      );
    }
    if (slot.open) throw new Error(`Error Resource temporarily unavailable Cannot lock port`);
    const full: Required<BindingOpenOptions> = {
      dataBits: 8,
      lock: true,
      stopBits: 1,
      parity: 'none',
      rtscts: false,
      xon: false,
      xoff: false,
      xany: false,
      hupcl: true,
      ...options,
    };
    const port = new SimulatedPort(full, slot.device, (p) => {
      if (slot.open === p) slot.open = undefined;
    });
    slot.open = port;
    slot.opens++;
    slot.device.attach?.(port);
    return port;
  }

  private slot(path: string): Slot {
    const s = this.slots.get(path);
    if (!s) throw new Error(`no simulated serial device at ${path}`);
    return s;
  }
}
