/**
 * Home Assistant MQTT discovery, as pure functions: one device-based discovery message per
 * gateway (`<discoveryPrefix>/device/<gateway>/config`, https://www.home-assistant.io/integrations/mqtt/#device-discovery-payload)
 * with one `sensor` component per sensor and quantity. Availability is the gateway's own
 * retained status topic; values come from the per-sensor state topic (state.ts).
 */
import { QUANTITIES, type Quantity } from '../../../drivers/types.js';

/** What discovery needs to know of one enabled sensor. */
export interface DiscoveredSensor {
  id: string;
  quantities: readonly Quantity[];
  /** Sampling period; undefined for a cron-scheduled sensor (no expiry then). */
  intervalMs: number | undefined;
}

export interface DiscoveryContext {
  gateway: string;
  /** mqtt.topicPrefix: the state and status topics live under it. */
  topicPrefix: string;
  discoveryPrefix: string;
  version: string;
  /** aggregation.windowMs: a value is expected at least once per window (or per interval). */
  windowMs: number;
}

/** How a quantity appears in Home Assistant; the unit is the one the state topic carries. */
const SENSOR_KINDS: Readonly<
  Record<Quantity, { deviceClass: string; unit: string; precision: number }>
> = {
  temperature: { deviceClass: 'temperature', unit: '°C', precision: 1 },
  humidity: { deviceClass: 'humidity', unit: '%', precision: 1 },
  // The telemetry carries pascals (SenML "Pa"); Home Assistant can show hPa (entity settings).
  pressure: { deviceClass: 'atmospheric_pressure', unit: 'Pa', precision: 0 },
};

/** Windows without a value before an entity shows "unavailable" (expire_after). */
export const EXPIRE_AFTER_PERIODS = 3;

export const discoveryTopic = (ctx: Pick<DiscoveryContext, 'discoveryPrefix' | 'gateway'>) =>
  `${ctx.discoveryPrefix}/device/${ctx.gateway}/config`;

/** Home Assistant's birth and last-will topic (`online` after it (re)started). */
export const birthTopic = (discoveryPrefix: string) => `${discoveryPrefix}/status`;

/** The retained latest-window topic of one sensor. */
export const stateTopic = (topicPrefix: string, gateway: string, sensor: string) =>
  `${topicPrefix}/${gateway}/state/${sensor}`;

/**
 * The key of a component under `cmps`; stable, so Home Assistant keeps the entity. Unique per
 * sensor and quantity: no quantity contains `_`, so the last `_` ends the sensor id.
 */
export const componentId = (sensor: string, quantity: Quantity) => `${sensor}_${quantity}`;

/** The sensor id of a component id this agent makes; undefined for any other key. */
export function sensorOfComponent(id: string): string | undefined {
  const at = id.lastIndexOf('_');
  if (at <= 0) return undefined;
  return (QUANTITIES as readonly string[]).includes(id.slice(at + 1)) ? id.slice(0, at) : undefined;
}

/**
 * Stable across restarts and reloads, and unique across gateways, sensors and quantities:
 * `<gateway>_<sensor>_<quantity>`, each `_` of the gateway id written as `.` (which ids
 * cannot contain). The first `_` then ends the gateway and the last one starts the
 * quantity, so two different triples never meet; a gateway id without `_` keeps the plain
 * form.
 */
export const uniqueId = (gateway: string, sensor: string, quantity: Quantity) =>
  `${gateway.replaceAll('_', '.')}_${sensor}_${quantity}`;

/**
 * Seconds without an update after which Home Assistant shows the value as unavailable:
 * EXPIRE_AFTER_PERIODS windows, or sampling intervals when those are longer. Undefined for
 * cron-scheduled sensors, whose gaps may legitimately last hours.
 */
export function expireAfterSec(
  windowMs: number,
  intervalMs: number | undefined,
): number | undefined {
  if (intervalMs === undefined) return undefined;
  return Math.ceil((EXPIRE_AFTER_PERIODS * Math.max(windowMs, intervalMs)) / 1000);
}

/** One entity component (`p: sensor`) of the device discovery message. */
function sensorComponent(ctx: DiscoveryContext, sensor: DiscoveredSensor, quantity: Quantity) {
  const kind = SENSOR_KINDS[quantity];
  const expire = expireAfterSec(ctx.windowMs, sensor.intervalMs);
  return {
    p: 'sensor',
    name: `${sensor.id} ${quantity}`,
    unique_id: uniqueId(ctx.gateway, sensor.id, quantity),
    device_class: kind.deviceClass,
    state_class: 'measurement',
    unit_of_measurement: kind.unit,
    suggested_display_precision: kind.precision,
    state_topic: stateTopic(ctx.topicPrefix, ctx.gateway, sensor.id),
    // A null in the state (a window without good readings) renders "None": state unknown.
    value_template: `{{ value_json.${quantity} }}`,
    ...(expire !== undefined ? { expire_after: expire } : {}),
  };
}

/**
 * The device discovery message for `sensors`. Components listed in `removing` are sent as
 * `{ p: "sensor" }` only: Home Assistant's documented way to delete one component of a
 * device; the next message then omits them.
 */
export function deviceDiscovery(
  ctx: DiscoveryContext,
  sensors: readonly DiscoveredSensor[],
  removing: readonly string[] = [],
) {
  const cmps: Record<string, Record<string, unknown>> = {};
  for (const s of sensors) {
    for (const q of s.quantities) cmps[componentId(s.id, q)] = sensorComponent(ctx, s, q);
  }
  for (const id of removing) if (!(id in cmps)) cmps[id] = { p: 'sensor' };
  return {
    dev: {
      ids: [`edge-agent_${ctx.gateway}`],
      name: ctx.gateway,
      mdl: 'edge-agent',
      sw: ctx.version,
    },
    o: { name: 'edge-agent', sw: ctx.version },
    availability: [
      {
        topic: `${ctx.topicPrefix}/${ctx.gateway}/status`,
        value_template: '{{ value_json.state }}',
        payload_available: 'online',
        payload_not_available: 'offline',
      },
    ],
    qos: 1,
    cmps,
  };
}

/** The component ids a discovery of `sensors` announces. */
export function componentIds(sensors: readonly DiscoveredSensor[]): Set<string> {
  return new Set(sensors.flatMap((s) => s.quantities.map((q) => componentId(s.id, q))));
}
