/**
 * Simulated Modbus RTU slaves on one RS-485 line. The bus device collects the host's bytes
 * and treats 3.5 character times of silence as the end of a frame (as a real slave does),
 * checks the CRC (a bad frame gets no reply), and lets the addressed slave answer after its
 * turnaround delay. Unknown unit ids get no reply; unknown registers an exception 0x02.
 *
 * Faults, injected per slave for the next N requests: 'crc' (reply with a corrupted CRC),
 * 'timeout' (no reply), 'exception' (exception reply, code 0x04 by default).
 */
import { Signal } from '../signal.js';
import {
  decodeReadRequest,
  encodeExceptionResponse,
  encodeReadResponse,
} from '../../drivers/modbus-pdu.js';
import {
  decodeRtuFrame,
  encodeRtuFrame,
  interFrameSilenceMs,
} from '../../drivers/serial/modbus-rtu-frame.js';
import type { DevicePort, HostWrite, SerialDevice } from './binding.js';

export type ModbusFault = 'crc' | 'timeout' | 'exception';

/** Register address → current raw 16-bit value (called at reply time). */
export type RegisterSource = Readonly<Record<number, (now: number) => number>>;

export interface ModbusSlaveOptions {
  unitId: number;
  /** Function 0x04. */
  input?: RegisterSource;
  /** Function 0x03. */
  holding?: RegisterSource;
  /** Time between the end of the request and the start of the reply, ms. */
  turnaroundMs?: number;
}

export interface ModbusSlaveCounters {
  requests: number;
  replies: number;
  exceptions: number;
  injected: number;
}

export class SimulatedModbusSlave {
  readonly unitId: number;
  readonly turnaroundMs: number;
  readonly counters: ModbusSlaveCounters = { requests: 0, replies: 0, exceptions: 0, injected: 0 };
  private readonly faults: { kind: ModbusFault; exceptionCode: number }[] = [];

  constructor(private readonly o: ModbusSlaveOptions) {
    this.unitId = o.unitId;
    this.turnaroundMs = o.turnaroundMs ?? 5;
  }

  /** The next `count` requests meet this fault. */
  inject(kind: ModbusFault, count = 1, exceptionCode = 0x04): void {
    for (let i = 0; i < count; i++) this.faults.push({ kind, exceptionCode });
  }

  /** Reply PDU to a request PDU, plus what to do to the frame; undefined = stay silent. */
  answer(pdu: Buffer, now: number): { pdu: Buffer; corruptCrc: boolean } | undefined {
    this.counters.requests++;
    const fault = this.faults.shift();
    if (fault) this.counters.injected++;
    if (fault?.kind === 'timeout') return undefined;
    const fn = pdu[0];
    let reply: Buffer;
    if (fault?.kind === 'exception') reply = encodeExceptionResponse(fn, fault.exceptionCode);
    else reply = this.serve(pdu, now);
    if (reply[0] & 0x80) this.counters.exceptions++;
    this.counters.replies++;
    return { pdu: reply, corruptCrc: fault?.kind === 'crc' };
  }

  private serve(pdu: Buffer, now: number): Buffer {
    const fn = pdu[0];
    const table = fn === 4 ? this.o.input : fn === 3 ? this.o.holding : undefined;
    if (!table) return encodeExceptionResponse(fn, 0x01);
    const req = decodeReadRequest(pdu);
    if (!req || req.quantity < 1 || req.quantity > 125) return encodeExceptionResponse(fn, 0x03);
    const words: number[] = [];
    for (let a = req.start; a < req.start + req.quantity; a++) {
      const source = table[a];
      if (!source) return encodeExceptionResponse(fn, 0x02);
      words.push(source(now) & 0xffff);
    }
    return encodeReadResponse(req.fn, words);
  }
}

/** An XY-MD02: input registers 1 = temperature × 10, 2 = humidity × 10 (int16). */
export function xyMd02Slave(
  unitId: number,
  signals: { temperature: Signal; humidity: Signal },
  turnaroundMs?: number,
): SimulatedModbusSlave {
  const tenths = (s: Signal) => (now: number) => Math.round(s.at(now) * 10);
  const input = { 1: tenths(signals.temperature), 2: tenths(signals.humidity) };
  return new SimulatedModbusSlave({ unitId, input, holding: input, turnaroundMs });
}

export interface BusCounters {
  frames: number;
  badFrames: number;
  unanswered: number;
  /** Requests that started less than 3.5 characters after a reply ended. */
  silenceViolations: number;
}

export class ModbusRtuBusDevice implements SerialDevice {
  readonly counters: BusCounters = { frames: 0, badFrames: 0, unanswered: 0, silenceViolations: 0 };
  private readonly slaves = new Map<number, SimulatedModbusSlave>();
  private rx: Buffer[] = [];
  private silence: NodeJS.Timeout | undefined;
  private readonly pending = new Set<NodeJS.Timeout>();

  constructor(
    slaves: readonly SimulatedModbusSlave[],
    private readonly now = Date.now,
  ) {
    for (const s of slaves) this.slaves.set(s.unitId, s);
  }

  slave(unitId: number): SimulatedModbusSlave | undefined {
    return this.slaves.get(unitId);
  }

  receive(bytes: Buffer, port: DevicePort, write: HostWrite): void {
    if (this.rx.length === 0 && port.lastDeliveredAt > 0) {
      // Both instants are performance.now() of this process: the host's write call and the
      // arrival of our last reply byte. 0.25 ms of slack for float rounding only.
      const gap = write.writtenAt - port.lastDeliveredAt;
      if (gap < interFrameSilenceMs(port.settings) - 0.25) this.counters.silenceViolations++;
    }
    this.rx.push(bytes);
    clearTimeout(this.silence);
    this.silence = setTimeout(() => this.endOfFrame(port), interFrameSilenceMs(port.settings));
  }

  detach(): void {
    clearTimeout(this.silence);
    for (const t of this.pending) clearTimeout(t);
    this.pending.clear();
    this.rx = [];
  }

  private endOfFrame(port: DevicePort): void {
    const frame = Buffer.concat(this.rx);
    this.rx = [];
    this.counters.frames++;
    let decoded;
    try {
      decoded = decodeRtuFrame(frame);
    } catch {
      this.counters.badFrames++;
      return;
    }
    const slave = this.slaves.get(decoded.unitId);
    const answer = slave?.answer(decoded.pdu, this.now());
    if (!slave || !answer) {
      this.counters.unanswered++;
      return;
    }
    const out = encodeRtuFrame(slave.unitId, answer.pdu);
    if (answer.corruptCrc) out[out.length - 1] ^= 0x5a;
    const t = setTimeout(() => {
      this.pending.delete(t);
      port.send(out);
    }, slave.turnaroundMs);
    this.pending.add(t);
  }
}
