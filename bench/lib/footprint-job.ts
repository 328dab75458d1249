/**
 * The job the footprint bench gives every gateway, and fleet-idle gives the agent it measures:
 * N Modbus TCP sensors (bench/lib/sensor-server-process.ts) read at 1 Hz into 10 s windows.
 */
import type { SensorAddress } from './sensor-server-process.js';

export const INTERVAL_MS = 1000;
export const WINDOW_MS = 10_000;
/** Answer latency of the simulated field bus; small, so Node-RED's per-unit queue keeps 1 Hz. */
export const SENSOR_LATENCY_MS = 5;
export const SENSORS_PER_UNIT = 10;

/** The agent's config for the job; `extra` adds or replaces top-level sections. */
export function jobConfig(o: {
  gateway: string;
  brokerUrl: string;
  sensors: readonly SensorAddress[];
  spool: Record<string, unknown>;
  extra?: Record<string, unknown>;
}): Record<string, unknown> {
  return {
    gateway: { id: o.gateway },
    mqtt: { url: o.brokerUrl, reconnectMaxMs: 5000 },
    aggregation: { windowMs: WINDOW_MS },
    spool: o.spool,
    ...o.extra,
    sensors: o.sensors.map((s, i) => ({
      id: `net-${i}`,
      driver: 'modbus-tcp',
      ...s,
      intervalMs: INTERVAL_MS,
    })),
  };
}
