/**
 * Modbus RTU sensors on RS-485, e.g. the XY-MD02 temperature/humidity module: slave 1,
 * 9600 baud (8N1 or 8E1: sources disagree, so parity is configurable), function 0x04,
 * input register 0x0001 = temperature × 10 (int16), 0x0002 = humidity × 10.
 * Request `01 04 00 01 00 01 60 0A` → reply `01 04 02 00 F5 79 77` = 24.5 °C.
 *
 * Why our own framing instead of modbus-serial: modbus-serial owns its port (one client per
 * port, its own open/close and queue), so it cannot share one RS-485 line among several
 * sensors through our turn-taking, cannot reopen through our backoff when the adapter is
 * unplugged, and its RTU buffering does not wait the 3.5-character silence by the clock.
 * The framing is drivers/serial/modbus-rtu-frame.ts (the PDU is drivers/modbus-pdu.ts,
 * shared with Modbus TCP), tested against the vectors above and fuzzed, and it runs unchanged
 * on serialport 13 and the simulator.
 *
 * Errors: no reply in time → TIMEOUT; bad CRC → CRC; exception reply (function | 0x80) →
 * PROTOCOL with the exception code (ModbusException); port gone → DISCONNECTED.
 */
import { z } from 'zod';
import { scalarText } from '../config/describe-value.js';
import { sensorKeys } from '../config/sensor-keys.js';
import type { DriverDescriptor } from '../descriptor.js';
import { modbusKeys, modbusUnitText } from '../modbus-config.js';
import { SERIAL_PATH_KEYS, serialKeys } from './config.js';
import { SensorError, type Driver, type Measurement, type Quantity } from '../types.js';
import { roundSignal } from '../rounds.js';
import {
  decodeReadResponse,
  encodeReadRequest,
  planReadSpans,
  registerValue,
  type ModbusReadFunction,
} from '../modbus-pdu.js';
import { decodeRtuFrame, encodeRtuFrame, readReplyLength } from './modbus-rtu-frame.js';
import type { SerialLines } from './serial-lines.js';

export interface ModbusRtuOptions {
  /** How long one request may wait for its reply (ms); default 1000. */
  responseTimeoutMs?: number;
}

export type ModbusRtuConfig = z.output<typeof modbusRtuSchema>;

export function createModbusRtu(
  config: ModbusRtuConfig,
  lines: SerialLines,
  options: ModbusRtuOptions = {},
): Driver {
  const line = lines.line({
    path: config.port,
    baudRate: config.baudRate,
    parity: config.parity,
    dataBits: config.dataBits,
    stopBits: config.stopBits,
  });
  const fn = config.function as ModbusReadFunction;
  const spans = planReadSpans(config.registers.map((r) => r.address));
  const quantities = [...new Set(config.registers.map((r) => r.quantity))] as Quantity[];
  const responseTimeoutMs = options.responseTimeoutMs ?? 1000;
  let acquired = false;

  const readSpan = async (start: number, quantity: number, signal: AbortSignal) => {
    const request = encodeRtuFrame(config.unitId, encodeReadRequest(fn, start, quantity));
    // Not AbortSignal.any(): the round's signal is reused across rounds, and every any()
    // leaves a weak ref in its parent's dependant set that Node 20 never prunes.
    const bound = roundSignal(signal, responseTimeoutMs);
    let reply: Buffer;
    try {
      reply = await line.transact(request, readReplyLength, bound.signal);
    } finally {
      bound.done();
    }
    const frame = decodeRtuFrame(reply);
    if (frame.unitId !== config.unitId) {
      throw new SensorError('PROTOCOL', `reply from unit ${frame.unitId}, asked ${config.unitId}`);
    }
    return decodeReadResponse(frame.pdu, fn, quantity);
  };

  return {
    kind: 'modbus-rtu',
    quantities,
    resource: line.resource,
    async open(signal) {
      if (!acquired) {
        line.acquire();
        acquired = true;
      }
      try {
        await line.ready(signal);
      } catch (err) {
        // Let go, so a sensor that never opens does not keep the port reopening forever.
        acquired = false;
        await line.release();
        throw err;
      }
    },
    async measure(signal): Promise<Measurement[]> {
      const raw = new Map<number, number>();
      for (const span of spans) {
        const words = await readSpan(span.start, span.quantity, signal);
        words.forEach((w, i) => raw.set(span.start + i, w));
      }
      return config.registers.map((r) => ({
        quantity: r.quantity,
        value: registerValue(raw.get(r.address) ?? 0, r),
      }));
    },
    async close() {
      if (!acquired) return;
      acquired = false;
      await line.release();
    },
  };
}

const modbusRtuSchema = z.strictObject({
  ...sensorKeys,
  ...serialKeys,
  ...modbusKeys,
  driver: z.literal('modbus-rtu'),
});

export const modbusRtu: DriverDescriptor<typeof modbusRtuSchema> = {
  name: 'modbus-rtu',
  schema: modbusRtuSchema,
  pathKeys: SERIAL_PATH_KEYS,
  location: (entry) => ({
    key: `serial port ${scalarText(entry.port)} ${modbusUnitText(entry)}`,
    field: 'unitId',
  }),
  create: (config, seams) => createModbusRtu(config, seams.serial),
};
