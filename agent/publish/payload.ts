/**
 * The bytes on the wire. Telemetry is assembled from the worker's encoded body without
 * parsing it again: the header fields are written as JSON text and the body's own fields
 * follow after its leading `{`. Schemas: docs/schemas/*.json.
 */
export const TELEMETRY_SCHEMA = 'edge-agent/telemetry/1';
export const STATUS_SCHEMA = 'edge-agent/status/1';
export const HEALTH_SCHEMA = 'edge-agent/health/1';

const OPEN_BRACE = 0x7b;

/** Seqs the agent dropped before this batch (see docs/payload.md). */
export interface DroppedNote {
  count: number;
  firstSeq: number;
  lastSeq: number;
  reason: string;
}

/** Part i (1-based) of n, for a batch the broker would not take in one message. */
export interface TelemetryPart {
  part: number;
  parts: number;
}

/**
 * `{"schema":..,"gateway":..,"seq":..,"createdAt":..,` (+ `"dropped":{..},` when given) +
 * body minus its `{`; a part of a split batch also carries `"part":i,"parts":n` after its
 * seq. The body must be a JSON object with at least one field (`{"windows":[...]...}`).
 */
export function assembleTelemetry(
  gateway: string,
  seq: number,
  createdAt: number,
  body: Uint8Array,
  dropped?: DroppedNote,
  part?: TelemetryPart,
): Buffer {
  let start = 0;
  // Tolerate leading whitespace; anything else than an object is a programming error upstream.
  while (start < body.length && body[start] !== OPEN_BRACE) {
    const c = body[start];
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
    start++;
  }
  if (body[start] !== OPEN_BRACE) throw new Error('telemetry body must be a JSON object');
  const note = dropped
    ? `"dropped":${JSON.stringify({ count: dropped.count, firstSeq: dropped.firstSeq, lastSeq: dropped.lastSeq, reason: dropped.reason })},`
    : '';
  const partOf = part ? `"part":${part.part},"parts":${part.parts},` : '';
  const header = `{"schema":"${TELEMETRY_SCHEMA}","gateway":${JSON.stringify(gateway)},"seq":${seq},${partOf}"createdAt":${createdAt},${note}`;
  const headerBytes = Buffer.byteLength(header);
  // One allocation, one copy of the body (no intermediate header Buffer).
  const out = Buffer.allocUnsafe(headerBytes + body.length - start - 1);
  out.write(header, 0, headerBytes, 'utf8');
  out.set(body.subarray(start + 1), headerBytes);
  return out;
}

export interface StatusInfo {
  gateway: string;
  version: string;
  startedAt: number;
  sensors: string[];
}

/** Retained on the status topic after every connect. */
export function onlineStatus(info: StatusInfo, now: number): Buffer {
  return Buffer.from(
    JSON.stringify({
      schema: STATUS_SCHEMA,
      state: 'online',
      gateway: info.gateway,
      version: info.version,
      startedAt: info.startedAt,
      sensors: info.sensors,
      t: now,
    }),
  );
}

/**
 * Offline status: `reason` "shutdown" when published on a clean stop, "connection-lost" as
 * the Last Will (the broker publishes it, so its time is the connect time, `since`).
 */
export function offlineStatus(
  info: StatusInfo,
  reason: 'shutdown' | 'connection-lost',
  now: number,
): Buffer {
  return Buffer.from(
    JSON.stringify({
      schema: STATUS_SCHEMA,
      state: 'offline',
      gateway: info.gateway,
      reason,
      version: info.version,
      startedAt: info.startedAt,
      t: now,
    }),
  );
}

/** Health: the integrator's counters under a fixed header. */
export function healthPayload(gateway: string, report: object, now: number): Buffer {
  return Buffer.from(JSON.stringify({ ...report, schema: HEALTH_SCHEMA, gateway, t: now }));
}
