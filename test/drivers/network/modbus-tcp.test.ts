import { getEventListeners } from 'node:events';
import net from 'node:net';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { waitUntil } from '../../helpers/wait.js';
import { ModbusTcpPool } from '../../../drivers/network/modbus-tcp-pool.js';
import { createModbusTcp } from '../../../drivers/network/modbus-tcp.js';
import { encodeReadRequest } from '../../../drivers/modbus-pdu.js';
import { ReadingStatus, SensorError, type Reading } from '../../../drivers/types.js';
import {
  startModbusTcpSensorServer,
  type ModbusFault,
  type ModbusTcpSensorServer,
} from '../../../simulator/network/modbus-tcp-server.js';
import { rig, runDriver, type Rig } from '../../helpers/run-driver.js';

let servers: ModbusTcpSensorServer[] = [];
let pools: ModbusTcpPool[] = [];
let rigs: Rig[] = [];
afterEach(async () => {
  await Promise.all(rigs.map((r) => r.close()));
  rigs = [];
  await Promise.all(pools.map((p) => p.close()));
  await Promise.all(servers.map((s) => s.close()));
  servers = [];
  pools = [];
});

async function setUp(delayMs: number, port = 0) {
  const server = await startModbusTcpSensorServer({ delayMs, port, sensorsPerUnit: 100 });
  servers.push(server);
  return server;
}
function newPool(): ModbusTcpPool {
  const pool = new ModbusTcpPool({ connectTimeoutMs: 5000 });
  pools.push(pool);
  return pool;
}
const configFor = (server: ModbusTcpSensorServer, index: number) => ({
  ...server.sensor(index),
  function: 4 as const,
});

const faultsOf = (rs: Reading[]) => rs.filter((r) => r.status === ReadingStatus.Fault);
const okOf = (rs: Reading[]) => rs.filter((r) => r.status === ReadingStatus.Ok);

describe('modbus-tcp driver against the simulated gateway', () => {
  it('reads plausible temperature and humidity through sensorReadings', async () => {
    const server = await setUp(5);
    // Made as the agent makes it: from the entry, over seams with their own pool.
    const hardware = rig();
    rigs.push(hardware);
    const driver = hardware.driver({ id: 'm', driver: 'modbus-tcp', ...configFor(server, 3) });
    expect(driver.resource).toBeUndefined();
    const readings = await runDriver(driver, { ticks: 3, intervalMs: 10 }).then((r) => r.readings);
    expect(readings.map((r) => r.quantity)).toEqual(
      Array(3).fill(['temperature', 'humidity']).flat(),
    );
    for (const r of readings) {
      expect(r.status).toBe(ReadingStatus.Ok);
      const [lo, hi] = r.quantity === 'temperature' ? [10, 35] : [30, 70];
      expect(r.value).toBeGreaterThan(lo);
      expect(r.value).toBeLessThan(hi);
      // int16 × 0.1 on the wire: one decimal.
      expect(Math.round(r.value * 10) / 10).toBe(r.value);
    }
    // Adjacent registers 7 and 8 went out as one request per round.
    expect(server.device(1, 7).requests).toBe(3);
    expect(server.stats().requests).toBe(3);
  });

  it('reads unit ids behind the gateway and holding registers (0x03)', async () => {
    const server = await setUp(1);
    const cfg = { ...configFor(server, 250), function: 3 as const };
    expect(cfg.unitId).toBe(3);
    const [t] = await createModbusTcp(cfg, newPool()).measure(AbortSignal.timeout(5000));
    expect(t.quantity).toBe('temperature');
    expect(server.device(3).requests).toBe(1);
    expect(server.device(1).requests).toBe(0);
  });

  it('reports an unmapped register as a PROTOCOL fault naming the exception', async () => {
    const server = await setUp(1);
    const driver = createModbusTcp(
      {
        ...configFor(server, 0),
        registers: [{ quantity: 'temperature', address: 5000, scale: 0.1, signed: true }],
      },
      newPool(),
    );
    await expect(driver.measure(AbortSignal.timeout(5000))).rejects.toMatchObject({
      code: 'PROTOCOL',
      message: expect.stringMatching(/illegal data address/),
    });
  });

  it.each<[ModbusFault, string, RegExp]>([
    ['exception', 'PROTOCOL', /server device failure/],
    ['malformed', 'PROTOCOL', /byte count/],
    ['timeout', 'TIMEOUT', /no reply/],
    ['drop', 'DISCONNECTED', /closed|ECONNRESET/],
    ['garbage', 'PROTOCOL', /garbage/],
  ])(
    'injected %s → %s fault readings, then recovery, nothing thrown',
    async (fault, code, message) => {
      const server = await setUp(5);
      const device = server.device(1, 1);
      const { readings, faults: seen } = await runDriver(
        createModbusTcp(configFor(server, 0), newPool()),
        {
          timeoutMs: 750,
          ticks: 6,
          intervalMs: 20,
          beforeTick: (i) => device.inject(i < 3 ? fault : null),
        },
      );
      expect(readings).toHaveLength(12);
      expect(faultsOf(readings.slice(0, 6))).toHaveLength(6);
      expect(readings.slice(0, 6).every((r) => Number.isNaN(r.value))).toBe(true);
      expect(okOf(readings.slice(6))).toHaveLength(6);
      expect(seen).toHaveLength(3);
      for (const e of seen) {
        expect(e.code).toBe(code);
        expect(e.message).toMatch(message);
      }
    },
  );

  it('a fault on one sensor leaves its neighbours on the same connection alone', async () => {
    const server = await setUp(5);
    server.device(1, 1).inject('timeout');
    const pool = newPool();
    const [bad, good] = await Promise.all([
      runDriver(createModbusTcp(configFor(server, 0), pool), {
        timeoutMs: 750,
        ticks: 3,
        intervalMs: 10,
      }).then((r) => r.readings),
      runDriver(createModbusTcp(configFor(server, 1), pool), {
        timeoutMs: 750,
        ticks: 3,
        intervalMs: 10,
      }).then((r) => r.readings),
    ]);
    expect(faultsOf(bad)).toHaveLength(6);
    expect(okOf(good)).toHaveLength(6);
    expect(server.stats().connections).toBe(1);
    // The late replies never arrive (timeout fault), so nothing is unmatched; the pool forgot them.
    expect(pools[0].stats().inFlight).toBe(0);
  });

  it('drops late replies to timed-out transactions and counts them', async () => {
    const server = await setUp(200);
    const pool = newPool();
    const driver = createModbusTcp(configFor(server, 0), pool);
    await expect(driver.measure(AbortSignal.timeout(50))).rejects.toMatchObject({
      code: 'TIMEOUT',
    });
    // Bounded wait for the 200 ms late reply to arrive and be discarded.
    for (let i = 0; i < 100 && pool.stats().unmatchedReplies === 0; i++)
      await new Promise((r) => setTimeout(r, 20));
    expect(pool.stats().unmatchedReplies).toBe(1);
    const [t] = await driver.measure(AbortSignal.timeout(5000));
    expect(t.status ?? ReadingStatus.Ok).toBe(ReadingStatus.Ok);
  });

  it('stuck value: the same raw value round after round', async () => {
    const server = await setUp(1);
    server.device(1, 1).inject('stuck');
    const readings = await runDriver(createModbusTcp(configFor(server, 0), newPool()), {
      ticks: 5,
      intervalMs: 5,
    }).then((r) => r.readings);
    const temps = readings.filter((r) => r.quantity === 'temperature').map((r) => r.value);
    expect(temps).toHaveLength(5);
    expect(new Set(temps).size).toBe(1);
  });

  it('200 sensors × 100 ms answer concurrently over one connection', async () => {
    const server = await setUp(100);
    const pool = newPool();
    const drivers = Array.from({ length: 200 }, (_, i) =>
      createModbusTcp(configFor(server, i * 37), pool),
    );
    const results = await Promise.all(
      drivers.map((d) =>
        runDriver(d, { timeoutMs: 10_000, ticks: 2, intervalMs: 0 }).then((r) => r.readings),
      ),
    );
    expect(results.flat().every((r) => r.status === ReadingStatus.Ok)).toBe(true);
    expect(results.flat()).toHaveLength(200 * 2 * 2);
    expect(server.stats()).toMatchObject({
      requests: 400,
      responses: 400,
      connections: 1,
      waiting: 0,
    });
    // Most of the 200 requests of a round were waiting at the server at the same time, where
    // serialised requests never have more than one waiting. (A count, not the elapsed time,
    // which depends on the machine's speed.)
    expect(server.stats().peakWaiting).toBeGreaterThanOrEqual(100);
    expect(pool.stats()).toMatchObject({ connects: 1, requests: 400, inFlight: 0 });
  });

  it('spreads requests over several connections when asked to', async () => {
    const server = await setUp(20);
    const pool = new ModbusTcpPool({ connectionsPerEndpoint: 3 });
    pools.push(pool);
    await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        createModbusTcp(configFor(server, i), pool).measure(AbortSignal.timeout(10_000)),
      ),
    );
    expect(server.stats().connections).toBe(3);
    expect(server.stats().responses).toBe(30);
  });

  it('server down → DISCONNECTED faults; server back on the same port → reconnects', async () => {
    const first = await setUp(5);
    const port = first.port;
    const pool = newPool();
    const driver = createModbusTcp(configFor(first, 0), pool);
    let second: ModbusTcpSensorServer | undefined;
    const { readings, faults } = await runDriver(driver, {
      timeoutMs: 1000,
      ticks: 8,
      intervalMs: 20,
      beforeTick: async (i) => {
        if (i === 2) await first.close();
        if (i === 5) {
          second = await setUp(5, port);
        }
      },
    });
    const seen = faults.map((e) => e.code);
    const status = readings.filter((r) => r.quantity === 'temperature').map((r) => r.status);
    expect(status.slice(0, 2)).toEqual([ReadingStatus.Ok, ReadingStatus.Ok]);
    expect(status.slice(2, 5)).toEqual(Array(3).fill(ReadingStatus.Fault));
    expect(status.slice(5)).toEqual(Array(3).fill(ReadingStatus.Ok));
    expect(seen).toEqual(['DISCONNECTED', 'DISCONNECTED', 'DISCONNECTED']);
    expect(second?.stats().connections).toBe(1);
    expect(pool.stats().connects).toBeGreaterThanOrEqual(2);
  });

  it('a reconnect leaves no abort listener of the dead connection on the reused round signal', async () => {
    let server = await setUp(1);
    const port = server.port;
    const driver = createModbusTcp(configFor(server, 0), newPool());
    // The sampler lends one signal to many rounds; a gateway that drops and comes back
    // must not leave one listener (and its dead socket) per reconnect on it.
    const signal = new AbortController().signal;
    const counts: number[] = [];
    for (let i = 0; i < 4; i++) {
      await driver.measure(signal);
      counts.push(getEventListeners(signal, 'abort').length);
      await server.close();
      await expect(driver.measure(signal)).rejects.toMatchObject({ code: 'DISCONNECTED' });
      server = await setUp(1, port);
    }
    expect(counts).toEqual([1, 1, 1, 1]);
  });

  it('fails in-flight requests when the pool is closed', async () => {
    const server = await setUp(5000);
    const pool = newPool();
    const pending = pool.request(
      '127.0.0.1',
      server.port,
      1,
      encodeReadRequest(4, 1, 1),
      AbortSignal.timeout(10_000),
    );
    // In flight: the server has it and is waiting out its delay before answering.
    await waitUntil(() => server.stats().waiting > 0, {
      timeoutMs: 10_000,
      what: 'the request waiting at the server',
    });
    await pool.close();
    await expect(pending).rejects.toMatchObject({ code: 'DISCONNECTED' });
  });

  it('connection refused on a port nobody listens on → DISCONNECTED', async () => {
    const server = await setUp(1);
    const port = server.port;
    await server.close();
    servers = [];
    const driver = createModbusTcp({ ...configFor(server, 0), port }, newPool());
    await expect(driver.measure(AbortSignal.timeout(5000))).rejects.toMatchObject({
      code: 'DISCONNECTED',
      message: expect.stringMatching(/ECONNREFUSED/),
    });
  });

  it('redials a connection that has gone silent (peer gone without a reset)', async () => {
    // A "gateway" that accepts and swallows every request: like a power-cycled peer.
    let accepted = 0;
    const sockets = new Set<net.Socket>();
    const blackHole = net.createServer((s) => {
      accepted++;
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => undefined);
      s.resume();
    });
    await new Promise<void>((r) => blackHole.listen(0, '127.0.0.1', r));
    try {
      const { port } = blackHole.address() as net.AddressInfo;
      const pool = new ModbusTcpPool({ silentAfterMs: 150 });
      pools.push(pool);
      const driver = createModbusTcp(
        {
          host: '127.0.0.1',
          port,
          unitId: 1,
          function: 4,
          registers: [{ quantity: 'temperature', address: 1, scale: 0.1, signed: true }],
        },
        pool,
      );
      const codes: string[] = [];
      for (let i = 0; i < 3; i++) {
        await driver
          .measure(AbortSignal.timeout(100))
          .catch((e: SensorError) => codes.push(e.code));
        await new Promise((r) => setTimeout(r, 20)); // the gap between two ticks
      }
      expect(codes).toEqual(['TIMEOUT', 'TIMEOUT', 'TIMEOUT']);
      // The first timeout came before the silence limit; a later one dropped the connection.
      expect(pool.stats().disconnects).toBeGreaterThanOrEqual(1);
      expect(accepted).toBeGreaterThanOrEqual(2);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((r) => blackHole.close(r));
    }
  });

  it('keeps the connection while other units answer, even if one unit never does', async () => {
    const server = await setUp(5);
    server.device(1, 1).inject('timeout');
    const pool = new ModbusTcpPool({ silentAfterMs: 150 });
    pools.push(pool);
    const bad = createModbusTcp(configFor(server, 0), pool);
    const good = createModbusTcp(configFor(server, 1), pool);
    // 8 rounds of a 100 ms timeout outlast silentAfterMs, but replies keep arriving.
    for (let i = 0; i < 8; i++) {
      await Promise.all([
        bad.measure(AbortSignal.timeout(100)).catch(() => undefined),
        good.measure(AbortSignal.timeout(5000)),
        new Promise((r) => setTimeout(r, 60)),
      ]);
    }
    expect(server.stats().connections).toBe(1);
    expect(pool.stats().disconnects).toBe(0);
  });

  it('a gateway answering random bytes only ever produces SensorErrors (bounded fuzz)', async () => {
    // Each connection's replies come from one generated byte sequence, echoing nothing.
    let script: Uint8Array[] = [];
    const sockets = new Set<net.Socket>();
    const noisy = net.createServer((s) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => undefined);
      let i = 0;
      s.on('data', () => {
        if (i < script.length) s.write(script[i++]);
      });
    });
    await new Promise<void>((r) => noisy.listen(0, '127.0.0.1', r));
    try {
      const { port } = noisy.address() as net.AddressInfo;
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.uint8Array({ minLength: 1, maxLength: 40 }), { minLength: 1, maxLength: 4 }),
          async (chunks) => {
            script = chunks;
            const pool = new ModbusTcpPool();
            try {
              const driver = createModbusTcp(
                {
                  host: '127.0.0.1',
                  port,
                  unitId: 1,
                  function: 4,
                  registers: [{ quantity: 'temperature', address: 1, scale: 0.1, signed: true }],
                },
                pool,
              );
              for (let round = 0; round < 2; round++) {
                try {
                  const ms = await driver.measure(AbortSignal.timeout(50));
                  expect(ms).toHaveLength(1);
                } catch (e) {
                  expect(e).toBeInstanceOf(SensorError);
                }
              }
            } finally {
              await pool.close();
              for (const s of sockets) s.destroy();
            }
          },
        ),
        { numRuns: 40 },
      );
    } finally {
      await new Promise((r) => noisy.close(r));
    }
  });
});
