/**
 * Sparkplug B payloads of this agent, encoded with the Eclipse Tahu package
 * (`sparkplug-payload`): NBIRTH with every metric, NDATA per aggregation window, NDEATH.
 *
 * Metrics are node metrics named `<sensor>/<quantity>` (Double, the window's mean, timestamped
 * with the window's end, unit in the `engUnit` property as Ignition names it), plus the
 * `bdSeq` and `Node Control/Rebirth` metrics the spec requires. A window without readings
 * carries its metric as null (`is_null`).
 */
import sparkplug from 'sparkplug-payload';
import type { UMetric, UPayload } from 'sparkplug-payload/lib/sparkplugbpayload.js';

const codec = (() => {
  const c = sparkplug.get('spBv1.0');
  if (!c) throw new Error('sparkplug-payload does not know the spBv1.0 namespace');
  return c;
})();

export const BD_SEQ_METRIC = 'bdSeq';
export const REBIRTH_METRIC = 'Node Control/Rebirth';

/** A series the node announces: `<sensor>/<quantity>` and its unit. */
export interface SeriesMetric {
  name: string;
  unit: string;
}

/** The fields of a telemetry window (output.ts, TelemetryWindow) this mapping reads. */
export interface WindowValues {
  sensor: string;
  quantity: string;
  unit: string;
  end: number;
  mean: number | null;
}

export const metricName = (sensor: string, quantity: string): string => `${sensor}/${quantity}`;

export function encodeBirth(
  bdSeq: number,
  series: readonly SeriesMetric[],
  now: number,
): Uint8Array {
  const metrics: UMetric[] = [
    { name: BD_SEQ_METRIC, type: 'Int64', value: bdSeq, timestamp: now },
    { name: REBIRTH_METRIC, type: 'Boolean', value: false, timestamp: now },
    ...series.map((s): UMetric => ({
      name: s.name,
      type: 'Double',
      value: null,
      timestamp: now,
      properties: { engUnit: { type: 'String', value: s.unit } },
    })),
  ];
  return codec.encodePayload({ timestamp: now, seq: 0, metrics });
}

/** The NDEATH (the MQTT Will of the session, and what a clean stop publishes). */
export function encodeDeath(bdSeq: number, now: number): Uint8Array {
  return codec.encodePayload({
    timestamp: now,
    metrics: [{ name: BD_SEQ_METRIC, type: 'Int64', value: bdSeq, timestamp: now }],
  });
}

/** One NDATA: the windows of one period (same end), in the order given. */
export function encodeData(
  windows: readonly WindowValues[],
  seq: number,
  historical: boolean,
  now: number,
): Uint8Array {
  const metrics = windows.map((w): UMetric => ({
    name: metricName(w.sensor, w.quantity),
    type: 'Double',
    value: w.mean,
    timestamp: w.end,
    ...(historical ? { isHistorical: true } : {}),
  }));
  return codec.encodePayload({ timestamp: now, seq, metrics });
}

/** True when an NCMD asks for a rebirth (`Node Control/Rebirth` = true). */
export function isRebirthRequest(body: Uint8Array): boolean {
  let payload: UPayload;
  try {
    payload = codec.decodePayload(body);
  } catch {
    return false;
  }
  return (payload.metrics ?? []).some((m) => m.name === REBIRTH_METRIC && m.value === true);
}
