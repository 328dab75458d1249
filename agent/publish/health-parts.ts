/**
 * Health that fits the broker's packet limit. A report travels whole when the broker takes it
 * in one message; otherwise in parts (docs/payload.md, Health): every part is a complete
 * report of the gateway's own figures, with the same `t`, and carries a share of the
 * per-sensor fields (`sensors` and the matching keys of `faults`), each sensor in exactly one
 * part, `part` i of `parts` n. Parts are no larger than the broker announced, was seen to
 * take, or any broker takes, so health does not cost the connection:
 * - MQTT 5: the Maximum Packet Size of CONNACK; none announced means no limit.
 * - MQTT 3.1.1 says nothing, and a broker refuses by closing the connection: the limit the
 *   telemetry learned from refusals (part-planner.ts), else the largest message the broker
 *   has acknowledged, and at least HEALTH_FLOOR_BYTES (every broker takes a few KiB; the
 *   gateway's own figures with a sensor need more than SIZE_FLOOR_BYTES).
 * A close teaches a limit only on evidence, as for telemetry: twice in a row, on a connection
 * where the broker had answered a publish, a health message larger than every size
 * acknowledged (and SIZE_FLOOR_BYTES) was in flight. The limit is a size step below the
 * smaller of the two, or the largest size acknowledged. A broker that answers nothing and
 * then closes (a cluster node without its quorum) says nothing of size, nor does one close:
 * a limit learned from a close that was not a refusal would cut health for good.
 */
import type { MqttClient } from 'mqtt';
import type { Logger } from '../ops/logger.js';
import { describeError } from './connection-options.js';
import type { HealthReport, SensorHealthReport } from './health.js';
import { SIZE_FLOOR_BYTES, stepAtOrBelow } from './part-planner.js';
import { healthPayload } from './payload.js';

/** MQTT PUBLISH bytes besides topic and payload: fixed header, topic length, packet id, properties. */
const PUBLISH_OVERHEAD = 1 + 4 + 2 + 2 + 1;

/** Under MQTT 3.1.1 with nothing learned, health goes in messages up to this size unproven. */
export const HEALTH_FLOOR_BYTES = 2 * SIZE_FLOOR_BYTES;

export type HealthPlan =
  | { kind: 'send'; payloads: Buffer[] }
  /** Not even the gateway's own figures with one sensor fit in `limit` bytes. */
  | { kind: 'too-large'; bytes: number; limit: number };

/** The messages of one report under a payload limit (undefined: no limit). */
export function planHealth(
  gateway: string,
  report: HealthReport,
  now: number,
  limit: number | undefined,
): HealthPlan {
  const whole = healthPayload(gateway, { ...report, part: 1, parts: 1 }, now);
  if (limit === undefined || whole.length <= limit) return { kind: 'send', payloads: [whole] };
  const n = report.sensors.length;
  // The gateway's own figures, with room for the largest part numbers.
  const core = healthPayload(
    gateway,
    { ...report, part: n, parts: n, faults: {}, sensors: [] },
    now,
  ).length;
  // Each sensor's entry and its `faults` key, each with a comma.
  const costs = report.sensors.map(
    (s) =>
      Buffer.byteLength(JSON.stringify(s)) +
      Buffer.byteLength(JSON.stringify(s.id)) +
      String(report.faults[s.id] ?? 0).length +
      3,
  );
  const needed = core + Math.max(0, ...costs);
  if (n === 0 || needed > limit) return { kind: 'too-large', bytes: needed, limit };
  const groups: SensorHealthReport[][] = [];
  let group: SensorHealthReport[] = [];
  let size = core;
  for (const [i, s] of report.sensors.entries()) {
    const cost = costs[i];
    if (group.length > 0 && size + cost > limit) {
      groups.push(group);
      group = [];
      size = core;
    }
    group.push(s);
    size += cost;
  }
  groups.push(group);
  const payloads = groups.map((g, i) =>
    healthPayload(
      gateway,
      {
        ...report,
        part: i + 1,
        parts: groups.length,
        faults: Object.fromEntries(
          g.filter((s) => s.id in report.faults).map((s) => [s.id, report.faults[s.id]]),
        ),
        sensors: g,
      },
      now,
    ),
  );
  return { kind: 'send', payloads };
}

/** What the telemetry knows of the broker (part-planner.ts, broker-terms.ts). */
export interface TelemetryTerms {
  protocolVersion: 4 | 5;
  /** The telemetry's payload limit, announced or learned; undefined when none is known. */
  limit: number | undefined;
  /** The largest telemetry payload the broker acknowledged. */
  largestAcked: number;
}

/** Publishes health reports on one topic within the broker's limit (see the file comment). */
export class HealthSender {
  /** Payload bytes the broker announced (this connection). */
  private announced: number | undefined;
  /** Payload bytes learned from closes (kept until forgetLearned or restart). */
  private learned: number | undefined;
  private largestAcked = 0;
  /** Payload sizes of the health messages awaiting PUBACK on this connection. */
  private readonly inflight = new Set<{ bytes: number }>();
  /** The broker answered a publish on this connection. */
  private answeredHere = false;
  /** The size in flight at the last close held against health that taught nothing yet. */
  private suspect: number | undefined;
  private readonly said = new Set<string>();

  constructor(
    private readonly gateway: string,
    private readonly topic: string,
    private readonly logger: Logger,
  ) {}

  /** CONNACK: the broker's Maximum Packet Size (MQTT 5), undefined when it announced none. */
  connected(maxPacketSize: number | undefined): void {
    this.inflight.clear();
    this.answeredHere = false;
    this.announced =
      maxPacketSize === undefined
        ? undefined
        : maxPacketSize - PUBLISH_OVERHEAD - Buffer.byteLength(this.topic);
  }

  /** The broker answered a publish on this connection (a PUBACK, whatever its reason code). */
  answered(): void {
    this.answeredHere = true;
  }

  /** The limit learned from closes, if any. */
  learnedLimit(): number | undefined {
    return this.learned;
  }

  /** Forget the learned limit (the operator raised the broker's): reports go larger again. */
  forgetLearned(): void {
    this.learned = undefined;
    this.suspect = undefined;
    this.said.delete('parts');
  }

  /** The payload limit for the next report; undefined when the broker takes any size. */
  limit(terms: TelemetryTerms): number | undefined {
    const known = [this.announced, this.learned, terms.limit].filter(
      (x): x is number => x !== undefined,
    );
    if (known.length > 0) return Math.min(...known);
    // MQTT 5: a broker that announces no Maximum Packet Size imposes none.
    if (terms.protocolVersion === 5) return undefined;
    return Math.max(HEALTH_FLOOR_BYTES, this.knownToPass(terms));
  }

  /** Publish one report (QoS 1, not retained); false when it cannot be sent at all. */
  send(client: MqttClient, report: HealthReport, terms: TelemetryTerms): boolean {
    const limit = this.limit(terms);
    const plan = planHealth(this.gateway, report, Date.now(), limit);
    if (plan.kind === 'too-large') {
      this.once(
        'too-large',
        { bytes: plan.bytes, payloadLimitBytes: plan.limit },
        `health report not sent: the gateway's own figures with one sensor need ${plan.bytes} bytes, the broker takes ${plan.limit} bytes of payload. Raise the broker's packet limit (mosquitto: max_packet_size); reports not sent are counted in healthSkipped`,
      );
      return false;
    }
    if (plan.payloads.length > 1) {
      this.once(
        'parts',
        { parts: plan.payloads.length, payloadLimitBytes: limit },
        `health reports exceed what the broker takes in one message: sending each in parts (docs/payload.md, Health)`,
      );
    }
    for (const payload of plan.payloads) {
      const sent = { bytes: payload.length };
      this.inflight.add(sent);
      client.publish(this.topic, payload, { qos: 1 }, (err) => {
        this.inflight.delete(sent);
        if (err) this.logger.debug({ err: describeError(err) }, 'health publish failed');
        else {
          this.answeredHere = true;
          this.largestAcked = Math.max(this.largestAcked, sent.bytes);
        }
      });
    }
    return true;
  }

  /**
   * The connection closed. True when the close is held against a health message in flight:
   * one larger than every size known to pass, on a connection where the broker answered.
   * The second such close in a row cuts later reports to a limit below it.
   */
  closed(terms: TelemetryTerms): boolean {
    const largest = Math.max(0, ...[...this.inflight].map((m) => m.bytes));
    const answered = this.answeredHere;
    this.inflight.clear();
    this.answeredHere = false;
    if (!answered) return false;
    const known = this.knownToPass(terms);
    if (largest <= known) {
      // A working connection closed with no suspect health in flight: closes come for
      // other reasons too, so the last suspect close proves nothing.
      this.suspect = undefined;
      return false;
    }
    const before = this.suspect;
    if (before === undefined || before <= known) {
      this.suspect = largest;
      this.logger.info(
        { bytes: largest },
        'the broker closed the connection while a health report was in flight: if it closes on one again, health goes in parts',
      );
      return true;
    }
    this.suspect = undefined;
    const refused = Math.min(before, largest);
    // A step below the smaller refused size, and no less than a size the broker did take.
    const below = Math.max(known, stepAtOrBelow(refused - 1));
    this.learned = Math.min(this.learned ?? below, below);
    this.logger.warn(
      { bytes: refused, payloadLimitBytes: this.learned },
      `the broker closed the connection twice in a row while a health report of ${refused} bytes or more was in flight: health goes in parts of at most ${this.learned} bytes from now on`,
    );
    return true;
  }

  /** The largest size the broker acknowledged, on either topic, and at least SIZE_FLOOR_BYTES. */
  private knownToPass(terms: TelemetryTerms): number {
    return Math.max(SIZE_FLOOR_BYTES, this.largestAcked, terms.largestAcked);
  }

  private once(key: string, fields: object, msg: string): void {
    if (this.said.has(key)) return;
    this.said.add(key);
    this.logger.warn(fields, msg);
  }
}
