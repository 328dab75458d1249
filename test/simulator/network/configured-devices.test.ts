import { afterEach, describe, expect, it } from 'vitest';
import { sensorSchema, type SensorConfig } from '../../../drivers/registry.js';
import {
  simulateNetworkDevices,
  type SimulatedNetworkDevices,
} from '../../../simulator/network/configured-devices.js';
import { rig, runDriver, type Rig } from '../../helpers/run-driver.js';

// TEST-NET addresses (RFC 5737): never reached — the stand-ins replace them.
const entries = [
  { id: 'plain', driver: 'tmp102', address: 0x48 },
  { id: 'pump', driver: 'modbus-tcp', host: '192.0.2.40', unitId: 3 },
  {
    id: 'meter',
    driver: 'modbus-tcp',
    host: '192.0.2.41',
    port: 1502,
    unitId: 7,
    function: 3,
    registers: [
      { quantity: 'temperature', address: 300, scale: 0.01 },
      { quantity: 'pressure', address: 302, scale: 10, signed: false },
    ],
  },
  {
    id: 'attic-t',
    driver: 'http-json',
    url: 'https://192.0.2.50/api/status?x=1',
    path: 'sensors[1].t',
  },
  {
    id: 'attic-rh',
    driver: 'http-json',
    url: 'https://192.0.2.50/api/status?x=1',
    path: 'sensors[1].rh',
    quantity: 'humidity',
  },
];

describe('simulateNetworkDevices (simulate --config)', () => {
  let devices: SimulatedNetworkDevices | undefined;
  let r: Rig | undefined;
  afterEach(async () => {
    await r?.close();
    await devices?.close();
    devices = r = undefined;
  });

  it('points every network sensor at a loopback stand-in the real drivers read', async () => {
    const sensors: SensorConfig[] = entries.map((e) => sensorSchema.parse(e));
    devices = await simulateNetworkDevices(sensors);
    const byId = new Map(devices.sensors.map((s) => [s.id, s]));
    expect(byId.get('plain')).toEqual(sensors[0]);
    for (const id of ['pump', 'meter']) {
      const s = byId.get(id)!;
      expect(s.driver === 'modbus-tcp' && s.host).toBe('127.0.0.1');
    }
    for (const id of ['attic-t', 'attic-rh']) {
      const s = byId.get(id)!;
      expect(s.driver === 'http-json' && s.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\//);
    }
    expect(devices.replaced).toEqual([
      expect.stringMatching(/^Modbus TCP 192\.0\.2\.40:502 → 127\.0\.0\.1:\d+$/),
      expect.stringMatching(/^Modbus TCP 192\.0\.2\.41:1502 → 127\.0\.0\.1:\d+$/),
      expect.stringMatching(/^HTTP https:\/\/192\.0\.2\.50\/api\/status\?x=1 → http:\/\/127/),
    ]);

    r = rig();
    const plausible: Record<string, [number, number]> = {
      temperature: [10, 35],
      humidity: [30, 70],
      pressure: [95_000, 105_000],
    };
    for (const s of devices.sensors.filter((x) => x.id !== 'plain')) {
      const run = await runDriver(r.driver(s), { ticks: 2, intervalMs: 10 });
      expect(run.faults, s.id).toEqual([]);
      expect(run.ok.length, s.id).toBeGreaterThanOrEqual(2);
      for (const reading of run.ok) {
        const [lo, hi] = plausible[reading.quantity];
        expect(reading.value, `${s.id} ${reading.quantity}`).toBeGreaterThan(lo);
        expect(reading.value, `${s.id} ${reading.quantity}`).toBeLessThan(hi);
      }
    }
  });

  it('leaves the other sensors and disabled network ones as they are, with nothing started', async () => {
    const sensors = [
      entries[0],
      { ...entries[1], enabled: false },
      { ...entries[3], enabled: false },
    ].map((e) => sensorSchema.parse(e));
    devices = await simulateNetworkDevices(sensors);
    expect(devices.sensors).toEqual(sensors);
    expect(devices.replaced).toEqual([]);
  });
});
