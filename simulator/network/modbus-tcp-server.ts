/**
 * A Modbus TCP gateway on 127.0.0.1 with many simulated temperature/humidity units behind
 * it, answering `delayMs` after each request arrives (delay-line.ts) — overlapping requests
 * overlap (a slow field bus behind a gateway that pipelines, as the benchmark needs).
 *
 * Register map: unit ids 1..units, each holding `sensorsPerUnit` sensors in XY-MD02 style
 * blocks of two registers: sensor k of a unit has temperature × 10 at 1 + 2k and humidity
 * × 10 at 2 + 2k (int16), readable with 0x03 and 0x04 alike. Sensor index i (0-based) lives
 * at unit 1 + ⌊i / sensorsPerUnit⌋, block i mod sensorsPerUnit; `sensor(i)` gives its
 * config. Unknown units get exception 0x0B, unmapped registers 0x02.
 */
import net from 'node:net';
import { BatchedWriter } from '../../drivers/network/batched-writer.js';
import {
  encodeMbap,
  MbapFramingError,
  MbapReader,
  type MbapFrame,
} from '../../drivers/network/mbap.js';
import {
  decodeReadRequest,
  encodeExceptionResponse,
  encodeReadResponse,
  registerRaw,
  type ReadRequest,
} from '../../drivers/modbus-pdu.js';
import type { Quantity } from '../../drivers/types.js';
import { DelayLine, type DelayedReply } from './delay-line.js';
import { listenOn, ServerBookkeeping, type SensorServerStats } from './server-stats.js';
import { SensorField } from './sensor-field.js';

/**
 * timeout: never answer. exception: exception 0x04 (server device failure). malformed: a
 * well-framed reply whose byte count is wrong. garbage: bytes that are not MBAP (the client
 * loses framing). drop: close the connection instead of answering. stuck: the value freezes.
 */
export type ModbusFault = 'timeout' | 'exception' | 'malformed' | 'garbage' | 'drop' | 'stuck';

export interface ModbusTcpSensorServerOptions {
  delayMs: number;
  host?: '127.0.0.1';
  /** 0 (default) for an ephemeral port; a fixed one to restart a server on the same port. */
  port?: number;
  /** Unit ids 1..units answer. Default 247. */
  units?: number;
  /** Sensors (register blocks) per unit. Default 100. */
  sensorsPerUnit?: number;
  /**
   * Serve these registers instead of the XY-MD02 blocks: the raw word of (unit, address) at
   * wall-clock time t, undefined where nothing is mapped (exception 0x02).
   */
  registers?: (unitId: number, address: number, t: number) => number | undefined;
}

export interface ModbusDeviceHandle {
  /** Inject a fault on this unit (or register block), or clear it with null. */
  inject(fault: ModbusFault | null): void;
  /** Requests this unit (or block) has received. */
  readonly requests: number;
}

export type ModbusTcpSensorServerStats = SensorServerStats;

export interface ModbusTcpSensorServer {
  readonly port: number;
  readonly host: string;
  /** Fault injection and counts for one unit, or one sensor block when register is given. */
  device(unitId: number, register?: number): ModbusDeviceHandle;
  /** Where sensor index i lives, shaped like the modbus-tcp config keys. */
  sensor(index: number): {
    host: string;
    port: number;
    unitId: number;
    registers: { quantity: Quantity; address: number; scale: number; signed: boolean }[];
  };
  stats(): ModbusTcpSensorServerStats;
  close(): Promise<void>;
}

const SPEC = { scale: 0.1, signed: true };

export async function startModbusTcpSensorServer(
  options: ModbusTcpSensorServerOptions,
): Promise<ModbusTcpSensorServer> {
  const host = options.host ?? '127.0.0.1';
  const units = options.units ?? 247;
  const perUnit = options.sensorsPerUnit ?? 100;
  const field = new SensorField();
  const faults = new Map<string, ModbusFault>();
  const requestsBy = new Map<string, number>();
  const book = new ServerBookkeeping();

  const blockOf = (register: number) => Math.floor((register - 1) / 2);
  const sensorIndex = (unitId: number, block: number) => (unitId - 1) * perUnit + block;
  const bump = (key: string) => requestsBy.set(key, (requestsBy.get(key) ?? 0) + 1);

  /** The reply to one request, or a fault action. */
  const answer = (frame: MbapFrame): Buffer | 'timeout' | 'drop' | 'garbage' => {
    const { unitId, pdu } = frame;
    bump(`${unitId}`);
    const req = decodeReadRequest(pdu);
    if (!req) return encodeExceptionResponse(pdu[0] ?? 0, 0x01);
    const first = blockOf(req.start);
    const last = blockOf(req.start + req.quantity - 1);
    for (let b = first; b <= last; b++) bump(`${unitId}:${b}`);
    let fault = faults.get(`${unitId}`);
    for (let b = first; b <= last && !fault; b++) fault = faults.get(`${unitId}:${b}`);
    if (fault === 'timeout' || fault === 'drop' || fault === 'garbage') return fault;
    if (fault === 'exception') return encodeExceptionResponse(req.fn, 0x04);
    if (options.registers) return mappedReply(options.registers, unitId, req);
    if (unitId < 1 || unitId > units) return encodeExceptionResponse(req.fn, 0x0b);
    if (req.start < 1 || req.quantity < 1 || req.quantity > 125 || last >= perUnit)
      return encodeExceptionResponse(req.fn, 0x02);
    const now = Date.now();
    const regs: number[] = [];
    for (let a = req.start; a < req.start + req.quantity; a++) {
      const v = field.read(sensorIndex(unitId, blockOf(a)), now);
      regs.push(registerRaw((a - 1) % 2 === 0 ? v.temperature : v.humidity, SPEC));
    }
    const reply = encodeReadResponse(req.fn, regs);
    if (fault === 'malformed') reply[1] = reply[1] + 1;
    return reply;
  };

  const line = new DelayLine(options.delayMs);
  const server = net.createServer((socket) => {
    book.connected(socket);
    socket.setNoDelay(true);
    const waiting = new Set<DelayedReply>();
    const reader = new MbapReader();
    const writer = new BatchedWriter(socket);
    socket.on('close', () => {
      for (const r of waiting) line.cancel(r);
      book.stopWaiting(waiting.size);
      waiting.clear();
    });
    socket.on('error', () => undefined); // client resets are part of the game
    socket.on('data', (chunk: Buffer) => {
      let frames: MbapFrame[];
      try {
        frames = reader.push(chunk);
      } catch (err) {
        if (err instanceof MbapFramingError) return socket.destroy();
        throw err;
      }
      for (const frame of frames) {
        book.requested();
        book.startWaiting();
        const reply = line.add(() => {
          waiting.delete(reply);
          book.stopWaiting();
          const pdu = answer(frame);
          if (pdu === 'timeout') return;
          if (pdu === 'drop') return socket.destroy();
          if (pdu === 'garbage') return void socket.write('HTTP/1.1 400 Bad Request\r\n\r\n');
          book.responded();
          writer.write(
            encodeMbap({ transactionId: frame.transactionId, unitId: frame.unitId, pdu }),
          );
        });
        waiting.add(reply);
      }
    });
  });
  const port = await listenOn(server, host, options.port ?? 0);

  const handle = (key: string, stuckIndexes: () => number[]): ModbusDeviceHandle => ({
    inject(fault) {
      const wasStuck = faults.get(key) === 'stuck';
      if (fault) faults.set(key, fault);
      else faults.delete(key);
      if (fault === 'stuck') for (const i of stuckIndexes()) field.setStuck(i, true);
      else if (wasStuck) for (const i of stuckIndexes()) field.setStuck(i, false);
    },
    get requests() {
      return requestsBy.get(key) ?? 0;
    },
  });

  return {
    port,
    host,
    device(unitId, register) {
      if (register === undefined) {
        return handle(`${unitId}`, () =>
          Array.from({ length: perUnit }, (_, b) => sensorIndex(unitId, b)),
        );
      }
      const block = blockOf(register);
      return handle(`${unitId}:${block}`, () => [sensorIndex(unitId, block)]);
    },
    sensor(index) {
      const unitId = 1 + Math.floor(index / perUnit);
      const base = 1 + 2 * (index % perUnit);
      return {
        host,
        port,
        unitId,
        registers: [
          { quantity: 'temperature', address: base, ...SPEC },
          { quantity: 'humidity', address: base + 1, ...SPEC },
        ],
      };
    },
    stats: () => book.stats(),
    close: () =>
      new Promise<void>((resolve) => {
        line.clear();
        book.destroyAll();
        server.close(() => resolve());
      }),
  };
}

/** The reply from a register map: every register mapped, or exception 0x02. */
function mappedReply(
  registers: NonNullable<ModbusTcpSensorServerOptions['registers']>,
  unitId: number,
  req: ReadRequest,
): Buffer {
  const now = Date.now();
  const regs: number[] = [];
  for (let a = req.start; a < req.start + req.quantity; a++) {
    const raw = registers(unitId, a, now);
    if (raw === undefined) return encodeExceptionResponse(req.fn, 0x02);
    regs.push(raw);
  }
  return encodeReadResponse(req.fn, regs);
}
