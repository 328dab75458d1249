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
import type { ModbusTcpEndpoint, ModbusTcpPool } from './modbus-tcp-pool.js';

export type ModbusTcpConfig = Pick<
  z.output<typeof modbusTcpSchema>,
  'host' | 'port' | 'unitId' | 'function' | 'registers'
>;

export function createModbusTcp(config: ModbusTcpConfig, pool: ModbusTcpPool): Driver {
  const { unitId, registers } = config;
  const fn = config.function;
  const endpoint = pool.endpoint(config.host, config.port);
  const spans = planReadSpans(registers.map((r) => r.address));
  const requests = spans.map((s) => ({ ...s, pdu: encodeReadRequest(fn, s.start, s.quantity) }));

  if (requests.length > 1) return driverOf(config, spanReader(config, endpoint, requests));
  // The common case (adjacent registers): one request per round, its reply decoded straight
  // into the round's measurements, by one decoder made here rather than a closure per round.
  const [{ start, quantity, pdu }] = requests;
  const decode = (reply: Buffer): Measurement[] => {
    const words = decodeReadResponse(reply, fn, quantity);
    return registers.map((r) => ({
      quantity: r.quantity,
      value: registerValue(words[r.address - start], r),
    }));
  };
  return {
    ...driverOf(config, (signal) => endpoint.request(unitId, pdu, signal, decode)),
    measureInto: (signal, sink) => endpoint.requestInto(unitId, pdu, signal, decode, sink),
  };
}

function driverOf(
  config: ModbusTcpConfig,
  measure: (signal: AbortSignal) => Promise<Measurement[]>,
): Driver {
  return { kind: 'modbus-tcp', quantities: config.registers.map((r) => r.quantity), measure };
}

/** Registers far apart: several requests, sent together on the shared connection. */
function spanReader(
  config: ModbusTcpConfig,
  endpoint: ModbusTcpEndpoint,
  requests: ReadonlyArray<{ start: number; quantity: number; pdu: Buffer }>,
): (signal: AbortSignal) => Promise<Measurement[]> {
  const { unitId, registers } = config;
  const fn = config.function;
  const decoders = requests.map(
    ({ quantity }) =>
      (reply: Buffer) =>
        decodeReadResponse(reply, fn, quantity),
  );
  return async (signal) => {
    const replies = await Promise.all(
      requests.map((r, i) => endpoint.request(unitId, r.pdu, signal, decoders[i])),
    );
    const raw = new Map<number, number>();
    replies.forEach((words, i) => {
      const { start } = requests[i];
      words.forEach((v, j) => raw.set(start + j, v));
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
