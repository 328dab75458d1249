import { afterEach, describe, expect, it } from 'vitest';
import { sensorSchema, type SensorConfigOf } from '../../../drivers/registry.js';
import { createModbusRtu } from '../../../drivers/serial/modbus-rtu.js';
import { SerialLines } from '../../../drivers/serial/serial-lines.js';
import { ReadingStatus, type Reading } from '../../../drivers/types.js';
import { SimulatedSerialBinding } from '../../../simulator/serial/binding.js';
import {
  ModbusRtuBusDevice,
  SimulatedModbusSlave,
} from '../../../simulator/serial/modbus-rtu-bus.js';
import { createSerialSimulation, SIM_RS485_PATH } from '../../../simulator/serial/scenario.js';
import { rig, runDriver, type Rig } from '../../helpers/run-driver.js';

const PATH = '/dev/ttyTEST0';
const rtu = (o: Record<string, unknown>) =>
  sensorSchema.parse({
    id: 'x',
    driver: 'modbus-rtu',
    port: PATH,
    ...o,
  }) as SensorConfigOf<'modbus-rtu'>;

let lines: SerialLines | undefined;
let hardware: Rig | undefined;
afterEach(async () => {
  await lines?.closeAll();
  lines = undefined;
  await hardware?.close();
  hardware = undefined;
});

/** A slave with fixed registers, so values are exact. */
function fixedSlave(unitId: number, registers: Record<number, number>): SimulatedModbusSlave {
  const table = Object.fromEntries(Object.entries(registers).map(([a, v]) => [a, () => v]));
  return new SimulatedModbusSlave({ unitId, input: table, holding: table, turnaroundMs: 2 });
}

const ok = (rs: Reading[]) => rs.filter((r) => r.status === ReadingStatus.Ok);

describe('modbus-rtu driver on the simulated RS-485 line', () => {
  it('reads temperature and humidity of an XY-MD02 in one request, signed and scaled', async () => {
    const bus = new ModbusRtuBusDevice([fixedSlave(1, { 1: 0xff90, 2: 456 })]);
    hardware = rig({ serial: new SimulatedSerialBinding().add(PATH, bus) });
    const driver = hardware.driver({ id: 'x', driver: 'modbus-rtu', port: PATH });
    const { readings } = await runDriver(driver, { until: (rs) => ok(rs).length >= 4 });
    const t = ok(readings).filter((r) => r.quantity === 'temperature');
    const h = ok(readings).filter((r) => r.quantity === 'humidity');
    expect(t.map((r) => r.value)).toEqual([-11.2, -11.2]);
    expect(h.map((r) => r.value)).toEqual([45.6, 45.6]);
    // Registers 1 and 2 are contiguous: one request per round.
    expect(bus.slave(1)!.counters.requests).toBe(2);
  });

  it('uses function 0x03 and unsigned registers when configured', async () => {
    const bus = new ModbusRtuBusDevice([
      new SimulatedModbusSlave({ unitId: 5, holding: { 10: () => 0xfffe }, turnaroundMs: 1 }),
    ]);
    hardware = rig({ serial: new SimulatedSerialBinding().add(PATH, bus) });
    const driver = hardware.driver({
      id: 'x',
      driver: 'modbus-rtu',
      port: PATH,
      unitId: 5,
      function: 3,
      registers: [{ quantity: 'temperature', address: 10, scale: 0.01, signed: false }],
    });
    const { readings } = await runDriver(driver, {
      until: (rs) => ok(rs).length >= 1,
    });
    expect(ok(readings)[0].value).toBe(655.34);
  });

  it('lets two slaves share the port without their frames colliding', async () => {
    const sim = createSerialSimulation();
    hardware = rig({ serial: sim.binding });
    const [a, b] = sim.sensors;
    const run = (c: typeof a) =>
      runDriver(hardware!.driver(c), {
        intervalMs: 1,
        until: (rs) => ok(rs).length >= 20,
      });
    const [ra, rb] = await Promise.all([run(a), run(b)]);
    expect(ra.faults).toEqual([]);
    expect(rb.faults).toEqual([]);
    // Unit 1 sits near 21.5 °C / 45 %RH, unit 2 near 4.2 °C / 80 %RH.
    const temp = (rs: Reading[]) => ok(rs).find((r) => r.quantity === 'temperature')!.value;
    expect(Math.abs(temp(ra.readings) - 21.5)).toBeLessThan(3);
    expect(Math.abs(temp(rb.readings) - 4.2)).toBeLessThan(3);
    // Had two requests overlapped on the wire, the bus would have seen a bad frame.
    expect(sim.bus.counters.badFrames).toBe(0);
    // And every request waited the 3.5-character silence after the previous reply.
    expect(sim.bus.counters.silenceViolations).toBe(0);
    expect(sim.bus.counters.frames).toBe(
      sim.slaves[0].counters.requests + sim.slaves[1].counters.requests,
    );
    expect(sim.binding.opens(SIM_RS485_PATH)).toBe(1);
  });

  it('counts a corrupted CRC, a missing reply and an exception reply, then recovers', async () => {
    const slave = fixedSlave(1, { 1: 245, 2: 500 });
    lines = new SerialLines(
      new SimulatedSerialBinding().add(PATH, new ModbusRtuBusDevice([slave])),
    );
    const driver = createModbusRtu(rtu({}), lines, { responseTimeoutMs: 150 });
    let injected = false;
    const { readings, faults } = await runDriver(driver, {
      reopenAfter: 10,
      onReading: () => {
        if (injected) return;
        injected = true;
        slave.inject('crc');
        slave.inject('timeout');
        slave.inject('exception', 1, 0x06);
      },
      until: (rs, fs) => fs.length >= 3 && ok(rs).length >= 4,
    });
    expect(faults.map((f) => f.code)).toEqual(['CRC', 'TIMEOUT', 'PROTOCOL']);
    expect(faults[2].message).toMatch(/0x06.*busy/);
    const faultReadings = readings.filter((r) => r.status === ReadingStatus.Fault);
    expect(faultReadings).toHaveLength(6);
    expect(faultReadings.every((r) => Number.isNaN(r.value))).toBe(true);
    // The readings after the faults are good again.
    expect(readings.slice(-2).map((r) => r.value)).toEqual([24.5, 50]);
  });

  it('does not answer for a unit nobody configured: a timeout, not a crash', async () => {
    lines = new SerialLines(
      new SimulatedSerialBinding().add(
        PATH,
        new ModbusRtuBusDevice([fixedSlave(1, { 1: 1, 2: 2 })]),
      ),
    );
    const driver = createModbusRtu(rtu({ unitId: 9 }), lines, { responseTimeoutMs: 100 });
    const { faults } = await runDriver(driver, { until: (_rs, fs) => fs.length >= 2 });
    expect(faults.map((f) => f.code)).toEqual(['TIMEOUT', 'TIMEOUT']);
  });

  it('reports DISCONNECTED when the adapter is pulled and reads again after replug', async () => {
    const binding = new SimulatedSerialBinding().add(
      PATH,
      new ModbusRtuBusDevice([fixedSlave(1, { 1: 245, 2: 500 })]),
    );
    lines = new SerialLines(binding, undefined, { reopenMinMs: 20, reopenMaxMs: 100 });
    const driver = createModbusRtu(rtu({}), lines, { responseTimeoutMs: 200 });
    let phase: 'before' | 'unplugged' | 'replugged' = 'before';
    const { readings, faults } = await runDriver(driver, {
      intervalMs: 20,
      ticks: 500,
      onReading: (r, rs) => {
        if (phase === 'before' && ok(rs).length >= 2) {
          phase = 'unplugged';
          binding.unplug(PATH);
        } else if (phase === 'unplugged' && r.status === ReadingStatus.Fault) {
          const n = rs.filter((x) => x.status === ReadingStatus.Fault).length;
          if (n >= 6) {
            phase = 'replugged';
            binding.replug(PATH);
          }
        }
      },
      until: (rs) =>
        phase === 'replugged' &&
        rs[rs.length - 1].status === ReadingStatus.Ok &&
        rs[rs.length - 1].quantity === 'humidity',
    });
    expect(faults.length).toBeGreaterThanOrEqual(3);
    expect(faults.every((f) => f.code === 'DISCONNECTED')).toBe(true);
    expect(readings[readings.length - 1].value).toBe(50);
    expect(binding.opens(PATH)).toBeGreaterThanOrEqual(2);
  });

  it('starts with the adapter missing, counts DISCONNECTED, and reads once it appears', async () => {
    const binding = new SimulatedSerialBinding().add(
      PATH,
      new ModbusRtuBusDevice([fixedSlave(1, { 1: 245, 2: 500 })]),
    );
    binding.unplug(PATH);
    lines = new SerialLines(binding, undefined, { reopenMinMs: 10, reopenMaxMs: 50 });
    const driver = createModbusRtu(rtu({}), lines);
    const { readings, faults } = await runDriver(driver, {
      intervalMs: 10,
      ticks: 500,
      onReading: (_r, _rs, fs) => {
        if (fs.length === 3) binding.replug(PATH);
      },
      until: (rs) => ok(rs).length >= 2,
    });
    expect(faults.map((f) => f.code)).toEqual(['DISCONNECTED', 'DISCONNECTED', 'DISCONNECTED']);
    expect(faults[0].message).toMatch(/No such file/);
    expect(ok(readings).map((r) => r.value)).toEqual([24.5, 50]);
  });

  it('gives up on a write stuck in a wedged adapter without holding the line', async () => {
    class WedgedBinding extends SimulatedSerialBinding {
      override async open(o: Parameters<SimulatedSerialBinding['open']>[0]) {
        const port = await super.open(o);
        port.write = () => new Promise<void>(() => undefined);
        return port;
      }
    }
    const binding = new WedgedBinding().add(
      PATH,
      new ModbusRtuBusDevice([fixedSlave(1, { 1: 1, 2: 2 })]),
    );
    lines = new SerialLines(binding);
    const { faults } = await runDriver(
      createModbusRtu(rtu({}), lines, { responseTimeoutMs: 100 }),
      {
        until: (_rs, fs) => fs.length >= 2,
      },
    );
    // The second round got its turn, so the first one let go of the line.
    expect(faults.map((f) => f.code)).toEqual(['TIMEOUT', 'TIMEOUT']);
  });
});
