/**
 * A simulated ASCII-line sensor: while the port is open it prints one reading per period,
 * e.g. "  23.5\r\n". Faults for the next N lines: 'garbage' (random bytes and an
 * unparsable line) and 'err' (the device's own "Err 3" line).
 */
import { Signal, seededRandom } from '../signal.js';
import type { DevicePort, SerialDevice } from './binding.js';

export type AsciiFault = 'garbage' | 'err';

export interface AsciiDeviceOptions {
  signal: Signal;
  periodMs?: number;
  /** Formats one line, terminator included. */
  format?: (value: number) => string;
  seed?: number;
}

export class AsciiLineDevice implements SerialDevice {
  readonly counters = { lines: 0, injected: 0 };
  private readonly periodMs: number;
  private readonly format: (value: number) => string;
  private readonly rand: () => number;
  private readonly faults: AsciiFault[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly o: AsciiDeviceOptions) {
    this.periodMs = o.periodMs ?? 1000;
    this.format = o.format ?? ((v) => `  ${v.toFixed(1)}\r\n`);
    this.rand = seededRandom(o.seed ?? 7);
  }

  inject(kind: AsciiFault, count = 1): void {
    for (let i = 0; i < count; i++) this.faults.push(kind);
  }

  attach(port: DevicePort): void {
    clearInterval(this.timer);
    this.timer = setInterval(
      () => port.send(Buffer.from(this.nextLine(), 'latin1')),
      this.periodMs,
    );
  }

  detach(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  receive(): void {
    // A streaming sensor ignores what the host sends.
  }

  private nextLine(): string {
    this.counters.lines++;
    const fault = this.faults.shift();
    if (fault) this.counters.injected++;
    if (fault === 'err') return 'Err 3\r\n';
    if (fault === 'garbage') {
      let s = '';
      const n = 1 + Math.floor(this.rand() * 20);
      for (let i = 0; i < n; i++) s += String.fromCharCode(Math.floor(this.rand() * 256));
      // Always unparsable, whatever the random bytes were.
      return `\u00ff${s.replace(/[\r\n]/g, '')}#?\r\n`;
    }
    return this.format(this.o.signal.at(Date.now()));
  }
}
