import { describe, expect, it } from 'vitest';
import {
  deviceDiscovery,
  discoveryTopic,
  expireAfterSec,
  sensorOfComponent,
  uniqueId,
  type DiscoveryContext,
} from '../../../../agent/consumers/homeassistant/discovery.js';
import { QUANTITIES } from '../../../../drivers/types.js';
import { discoveryErrors } from './ha-schema.js';

const ctx: DiscoveryContext = {
  gateway: 'gw-1',
  topicPrefix: 'edge',
  discoveryPrefix: 'homeassistant',
  version: '1.2.3',
  windowMs: 10_000,
};
const sensors = [
  { id: 'room', quantities: ['temperature', 'humidity', 'pressure'] as const, intervalMs: 1000 },
  { id: 'tank', quantities: ['temperature'] as const, intervalMs: 60_000 },
  { id: 'pipe', quantities: ['temperature'] as const, intervalMs: undefined },
];

describe('Home Assistant device discovery', () => {
  it('is one valid device message with a component per sensor and quantity', () => {
    const d = deviceDiscovery(ctx, sensors);
    expect(discoveryErrors(d)).toBe('');
    expect(discoveryTopic(ctx)).toBe('homeassistant/device/gw-1/config');
    expect(Object.keys(d.cmps).sort()).toEqual([
      'pipe_temperature',
      'room_humidity',
      'room_pressure',
      'room_temperature',
      'tank_temperature',
    ]);
    expect(d.dev).toEqual({
      ids: ['edge-agent_gw-1'],
      name: 'gw-1',
      mdl: 'edge-agent',
      sw: '1.2.3',
    });
    expect(d.availability).toEqual([
      {
        topic: 'edge/gw-1/status',
        value_template: '{{ value_json.state }}',
        payload_available: 'online',
        payload_not_available: 'offline',
      },
    ]);
    expect(d.cmps.room_pressure).toMatchObject({
      p: 'sensor',
      unique_id: 'gw-1_room_pressure',
      device_class: 'atmospheric_pressure',
      unit_of_measurement: 'Pa',
      state_class: 'measurement',
      state_topic: 'edge/gw-1/state/room',
      value_template: '{{ value_json.pressure }}',
      expire_after: 30,
    });
    expect(d.cmps.room_humidity).toMatchObject({
      device_class: 'humidity',
      unit_of_measurement: '%',
    });
    expect(d.cmps.tank_temperature).toMatchObject({ unit_of_measurement: '°C', expire_after: 180 });
    // A cron-scheduled sensor may be quiet for hours: no expiry.
    expect(d.cmps.pipe_temperature).not.toHaveProperty('expire_after');
  });

  it('removes a component with only its platform, as Home Assistant documents', () => {
    const d = deviceDiscovery(ctx, sensors.slice(0, 1), ['tank_temperature']);
    expect(discoveryErrors(d)).toBe('');
    expect(d.cmps.tank_temperature).toEqual({ p: 'sensor' });
    expect(d.cmps.room_temperature).toHaveProperty('unique_id');
  });

  it('the schema catches what Home Assistant would reject or silently ignore', () => {
    const d = deviceDiscovery(ctx, sensors);
    const broken = (edit: (c: Record<string, unknown>) => void) => {
      const copy = structuredClone(d) as unknown as {
        cmps: Record<string, Record<string, unknown>>;
      };
      edit(copy.cmps.room_temperature);
      return discoveryErrors(copy);
    };
    expect(broken((c) => (c.unit_of_measurement = 'Cel'))).not.toBe('');
    expect(broken((c) => delete c.unique_id)).not.toBe('');
    expect(broken((c) => (c.expire_afer = 30))).not.toBe('');
    expect(broken((c) => (c.state_topic = 'edge/+/state'))).not.toBe('');
    const { o: _origin, ...noOrigin } = d;
    expect(discoveryErrors(noOrigin)).not.toBe('');
  });

  it('unique_ids of different gateways, sensors and quantities differ even when ids contain _', () => {
    // Each pair met as `a_b_c_temperature` in the plain `<gateway>_<sensor>_<quantity>` form.
    const a = deviceDiscovery({ ...ctx, gateway: 'a_b' }, [
      { id: 'c', quantities: ['temperature'], intervalMs: 1000 },
    ]);
    const b = deviceDiscovery({ ...ctx, gateway: 'a' }, [
      { id: 'b_c', quantities: ['temperature'], intervalMs: 1000 },
    ]);
    expect(discoveryErrors(a)).toBe('');
    expect(discoveryErrors(b)).toBe('');
    expect(a.cmps.c_temperature.unique_id).not.toBe(b.cmps.b_c_temperature.unique_id);
    expect(uniqueId('x_y', 'z', 'humidity')).not.toBe(uniqueId('x', 'y_z', 'humidity'));
    // A gateway id without _ keeps the plain form, so existing entities keep their id.
    expect(uniqueId('gw-1', 'boiler_in', 'temperature')).toBe('gw-1_boiler_in_temperature');

    // Every triple of ids made of the allowed characters maps to its own unique_id.
    const ids = ['a', 'b', 'c', 'a_b', 'b_c', 'a_b_c', '_a', 'a_', '_', '__', 'a-b', 'a-_b'];
    const seen = new Map<string, string>();
    for (const g of ids) {
      for (const s of ids) {
        for (const q of QUANTITIES) {
          const id = uniqueId(g, s, q);
          const triple = `${g}|${s}|${q}`;
          expect(seen.get(id) ?? triple, id).toBe(triple);
          seen.set(id, triple);
        }
      }
    }
    expect(seen.size).toBe(ids.length ** 2 * QUANTITIES.length);
  });

  it('a component id names its sensor, which a restart uses to clear removed state topics', () => {
    // The encoding relies on quantities without _.
    for (const q of QUANTITIES) expect(q).not.toContain('_');
    expect(sensorOfComponent('boiler_in_temperature')).toBe('boiler_in');
    expect(sensorOfComponent('room_pressure')).toBe('room');
    expect(sensorOfComponent('room_colour')).toBeUndefined();
    expect(sensorOfComponent('_temperature')).toBeUndefined();
    expect(sensorOfComponent('temperature')).toBeUndefined();
  });

  it('expiry is three windows, or three sampling intervals when longer', () => {
    expect(expireAfterSec(10_000, 1000)).toBe(30);
    expect(expireAfterSec(500, 100)).toBe(2);
    expect(expireAfterSec(10_000, 60_000)).toBe(180);
    expect(expireAfterSec(10_000, undefined)).toBeUndefined();
  });
});
