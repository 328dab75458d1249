/**
 * Modbus TCP temperature/humidity sensor: a unit (often an RS-485 module such as the
 * XY-MD02 behind a TCP gateway) whose registers hold the values.
 *
 * Facts: TCP port 502; MBAP header (transaction id, protocol 0, length, unit id; mbap.ts)
 * in front of the same PDU as RTU (drivers/modbus-pdu.ts); function 0x04 input registers or 0x03
 * holding registers; XY-MD02 layout: 0x0001 = temperature × 10 (int16), 0x0002 = humidity
 * × 10. Register address, scale and signedness come from the config, one entry per
 * quantity; adjacent registers are read in one request.
 *
 * Errors: exception replies and malformed PDUs → PROTOCOL; no reply before the round's
 * signal aborts → TIMEOUT; refused / reset connection → DISCONNECTED, and the pool dials
 * again on the next round. The connection is shared (ModbusTcpPool) and never owned by one
 * sensor, so close() has nothing to release and there is no resource key: network sensors
 * run fully in parallel.
 */
import { z } from 'zod';
import { count } from '../config/bounds.js';
import { scalarText } from '../config/describe-value.js';
import { sensorKeys } from '../config/sensor-keys.js';
import type { DriverDescriptor } from '../descriptor.js';
import { modbusKeys, modbusUnitText } from '../modbus-config.js';
import type { Driver, Measurement } from '../types.js';
import {
  decodeReadResponse,
  encodeReadRequest,
  planReadSpans,
  registerValue,
} from '../modbus-pdu.js';
import type { ModbusTcpPool } from './modbus-tcp-pool.js';

export type ModbusTcpConfig = Pick<
  z.output<typeof modbusTcpSchema>,
  'host' | 'port' | 'unitId' | 'function' | 'registers'
>;

export function createModbusTcp(config: ModbusTcpConfig, pool: ModbusTcpPool): Driver {
  const { host, port, unitId, registers } = config;
  const fn = config.function;
  const spans = planReadSpans(registers.map((r) => r.address));
  const requests = spans.map((s) => ({ ...s, pdu: encodeReadRequest(fn, s.start, s.quantity) }));

  const measureSpans = requests.length > 1 ? spanReader(config, pool, requests) : undefined;
  return {
    kind: 'modbus-tcp',
    quantities: registers.map((r) => r.quantity),
    measure(signal: AbortSignal): Promise<Measurement[]> {
      if (measureSpans) return measureSpans(signal);
      // The common case (adjacent registers): one request, and no async frame for it.
      const { start, quantity, pdu } = requests[0];
      return pool.request(host, port, unitId, pdu, signal).then((reply) => {
        const words = decodeReadResponse(reply, fn, quantity);
        return registers.map((r) => ({
          quantity: r.quantity,
          value: registerValue(words[r.address - start], r),
        }));
      });
    },
  };
}

/** Registers far apart: several requests, sent together on the shared connection. */
function spanReader(
  config: ModbusTcpConfig,
  pool: ModbusTcpPool,
  requests: ReadonlyArray<{ start: number; quantity: number; pdu: Buffer }>,
): (signal: AbortSignal) => Promise<Measurement[]> {
  const { host, port, unitId, registers } = config;
  const fn = config.function;
  return async (signal) => {
    const replies = await Promise.all(
      requests.map((r) => pool.request(host, port, unitId, r.pdu, signal)),
    );
    const raw = new Map<number, number>();
    replies.forEach((pdu, i) => {
      const { start, quantity } = requests[i];
      decodeReadResponse(pdu, fn, quantity).forEach((v, j) => raw.set(start + j, v));
    });
    return registers.map((r) => ({
      quantity: r.quantity,
      value: registerValue(raw.get(r.address)!, r),
    }));
  };
}

const modbusTcpSchema = z.strictObject({
  ...sensorKeys,
  ...modbusKeys,
  driver: z.literal('modbus-tcp'),
  host: z.string().min(1).describe('Modbus TCP device or gateway.'),
  port: count(1, 65535).default(502).describe('Modbus TCP port.'),
});

export const modbusTcp: DriverDescriptor<typeof modbusTcpSchema> = {
  name: 'modbus-tcp',
  schema: modbusTcpSchema,
  location: (entry) => ({
    key: `Modbus TCP ${scalarText(entry.host)}:${scalarText(entry.port ?? 502)} ${modbusUnitText(entry)}`,
    field: 'unitId',
  }),
  create: (config, seams) => createModbusTcp(config, seams.modbusTcp),
};
