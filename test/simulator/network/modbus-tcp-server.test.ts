import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { waitUntil } from '../../helpers/wait.js';
import { encodeMbap, MbapReader, type MbapFrame } from '../../../drivers/network/mbap.js';
import {
  decodeReadResponse,
  encodeReadRequest,
  registerValue,
} from '../../../drivers/modbus-pdu.js';
import {
  startModbusTcpSensorServer,
  type ModbusTcpSensorServer,
} from '../../../simulator/network/modbus-tcp-server.js';

let server: ModbusTcpSensorServer | undefined;
let socket: net.Socket | undefined;
afterEach(async () => {
  socket?.destroy();
  await server?.close();
  server = socket = undefined;
});

/** A bare client: send frames, collect `n` reply frames (bounded by a timeout). */
async function exchange(
  port: number,
  frames: MbapFrame[],
  n = frames.length,
): Promise<MbapFrame[]> {
  socket = net.connect(port, '127.0.0.1');
  const reader = new MbapReader();
  const got: MbapFrame[] = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`only ${got.length}/${n} replies`)), 20_000);
    socket!.on('data', (c: Buffer) => {
      got.push(...reader.push(c));
      if (got.length >= n) {
        clearTimeout(timer);
        resolve(got);
      }
    });
    socket!.on('error', reject);
    socket!.write(Buffer.concat(frames.map(encodeMbap)));
  });
}

describe('simulated Modbus TCP gateway', () => {
  it('answers requests pipelined on one connection each on its own timer, tids echoed', async () => {
    server = await startModbusTcpSensorServer({ delayMs: 100, units: 10, sensorsPerUnit: 10 });
    const frames = Array.from({ length: 50 }, (_, i) => ({
      transactionId: 1000 + i,
      unitId: 1 + (i % 10),
      pdu: encodeReadRequest(4, 1 + 2 * (i % 10), 2),
    }));
    const replies = await exchange(server.port, frames);
    expect(replies.map((r) => r.transactionId).sort()).toEqual(
      frames.map((f) => f.transactionId).sort(),
    );
    for (const r of replies) {
      const [t, rh] = decodeReadResponse(r.pdu, 4, 2).map((raw) =>
        registerValue(raw, { scale: 0.1, signed: true }),
      );
      expect(t).toBeGreaterThan(10);
      expect(t).toBeLessThan(35);
      expect(rh).toBeGreaterThan(30);
      expect(rh).toBeLessThan(70);
    }
    expect(server.stats()).toMatchObject({
      requests: 50,
      responses: 50,
      connections: 1,
      openConnections: 1,
    });
    expect(server.device(3).requests).toBe(5);
    // Serialised answering would never have more than one request waiting. (A count, not the
    // elapsed time, which depends on the machine's speed.)
    expect(server.stats().peakWaiting).toBeGreaterThanOrEqual(25);
    expect(server.stats().waiting).toBe(0);
  });

  it('gives each sensor index its own unit and register block', async () => {
    server = await startModbusTcpSensorServer({ delayMs: 0, sensorsPerUnit: 100 });
    expect(server.sensor(0)).toMatchObject({
      unitId: 1,
      registers: [{ address: 1 }, { address: 2 }],
    });
    expect(server.sensor(99)).toMatchObject({
      unitId: 1,
      registers: [{ address: 199 }, { address: 200 }],
    });
    expect(server.sensor(9999)).toMatchObject({
      unitId: 100,
      registers: [{ address: 199 }, { address: 200 }],
    });
  });

  it('answers unknown units with 0x0B, unmapped registers with 0x02, other functions with 0x01', async () => {
    server = await startModbusTcpSensorServer({ delayMs: 0, units: 2, sensorsPerUnit: 5 });
    const replies = await exchange(server.port, [
      { transactionId: 1, unitId: 3, pdu: encodeReadRequest(4, 1, 1) },
      { transactionId: 2, unitId: 1, pdu: encodeReadRequest(3, 11, 1) },
      { transactionId: 3, unitId: 1, pdu: encodeReadRequest(3, 0, 1) },
      { transactionId: 4, unitId: 1, pdu: Buffer.from([0x06, 0, 1, 0, 1]) },
    ]);
    const byTid = new Map(replies.map((r) => [r.transactionId, r.pdu.toString('hex')]));
    expect(byTid.get(1)).toBe('840b');
    expect(byTid.get(2)).toBe('8302');
    expect(byTid.get(3)).toBe('8302');
    expect(byTid.get(4)).toBe('8601');
  });

  it('drops a connection that sends something other than MBAP', async () => {
    server = await startModbusTcpSensorServer({ delayMs: 0 });
    socket = net.connect(server.port, '127.0.0.1');
    const closed = new Promise((r) => socket!.on('close', r));
    socket.on('error', () => undefined);
    socket.write('GET / HTTP/1.1\r\n\r\n');
    await closed;
    expect(server.stats().requests).toBe(0);
  });

  it('closes with requests still pending (timeout fault) without hanging', async () => {
    server = await startModbusTcpSensorServer({ delayMs: 10 });
    server.device(1).inject('timeout');
    socket = net.connect(server.port, '127.0.0.1');
    socket.on('error', () => undefined);
    await new Promise((r) => socket!.on('connect', r));
    socket.write(encodeMbap({ transactionId: 1, unitId: 1, pdu: encodeReadRequest(4, 1, 1) }));
    await waitUntil(() => server!.device(1).requests > 0, {
      timeoutMs: 10_000,
      what: 'the request at the device',
    });
    expect(server.device(1).requests).toBe(1);
    expect(server.stats().responses).toBe(0);
    await server.close();
    server = undefined;
  });
});
