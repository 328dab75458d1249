/**
 * What this broker accepts, learned as the publisher goes: the MQTT version (5 unless
 * mqtt.protocolVersion says otherwise; 3.1.1 once the broker refuses 5) and the QoS of
 * telemetry (mqtt.qos; 1 once the broker refuses 2). Each change is logged once, with what
 * it costs — under 3.1.1 a publish the broker denies is acknowledged as if delivered.
 */
import type { Logger } from '../ops/logger.js';
import type { MqttConfig } from './connection-options.js';

/** Connections closed in a row on our first QoS 2 publishes before QoS 2 counts as refused. */
const QOS2_CLOSES_TO_DOWNGRADE = 2;

const MQTT311_FALLBACK =
  'the broker does not speak MQTT 5: using MQTT 3.1.1. Under 3.1.1 a publish the broker denies (ACL) is acknowledged as if delivered, so such a loss cannot be seen unless mqtt.deliveryCheck is on; see docs/operations.md';

const MQTT311_CONFIGURED =
  'mqtt.protocolVersion: 4 (MQTT 3.1.1): a publish the broker denies (ACL) is acknowledged as if delivered, so such a loss cannot be seen here. Leave mqtt.protocolVersion unset (MQTT 5) or turn on mqtt.deliveryCheck; see docs/operations.md';

const qos2Refused = (broker: string) =>
  `the broker ${broker} refuses QoS 2 (mqtt.qos: 2): publishing telemetry at QoS 1, still at-least-once (subscribers dedupe by gateway, seq and part). Set mqtt.qos: 1 to silence this`;

const MAXIMUM_QOS_0 =
  'the broker announces a maximum QoS of 0: telemetry needs QoS 1 (at-least-once); publishes it refuses stay in the spool';

export class BrokerTerms {
  /** The MQTT version in use, or being tried. */
  protocolVersion: 4 | 5;
  /** The QoS telemetry is published at. */
  qos: 1 | 2;
  private qos2Works = false;
  private qos2Closes = 0;
  private readonly said = new Set<string>();

  constructor(
    private readonly mqtt: MqttConfig,
    private readonly logger: Logger,
    /** Names a session besides the telemetry one in what is logged. */
    private readonly name?: string,
  ) {
    this.protocolVersion = mqtt.protocolVersion ?? 5;
    this.qos = mqtt.qos;
  }

  /** Whether the version was left to negotiation (mqtt.protocolVersion unset). */
  negotiated(): boolean {
    return this.mqtt.protocolVersion === undefined;
  }

  /**
   * The broker refused the protocol version in CONNACK. True when that is answered by
   * falling back to 3.1.1 (connect again at once); false when the refusal stands.
   */
  versionRefused(broker: string): boolean {
    if (!this.negotiated() || this.protocolVersion !== 5) return false;
    this.protocolVersion = 4;
    this.once('fallback', { broker }, MQTT311_FALLBACK);
    return true;
  }

  /** CONNACK accepted: its MQTT 5 properties may lower what we may send. */
  connected(maximumQoS: number | undefined, broker: string): void {
    if (maximumQoS !== undefined && maximumQoS < this.qos) {
      if (maximumQoS === 1) {
        this.downgrade(broker, `the broker announces a maximum QoS of ${maximumQoS}`);
      } else this.once('qos0', {}, MAXIMUM_QOS_0);
    }
    if (this.mqtt.protocolVersion === 4 && !this.mqtt.deliveryCheck) {
      this.once('blind', {}, MQTT311_CONFIGURED);
    }
  }

  /** A telemetry publish was acknowledged at the QoS in use. */
  acknowledged(): void {
    if (this.qos === 2) this.qos2Works = true;
  }

  /**
   * The broker closed the connection while a telemetry publish was in flight. True when
   * that is explained by QoS 2 (a broker without it, such as NATS, closes on the first QoS 2
   * publish whatever the batch), so the batch is not to blame.
   */
  closedOnPublish(broker: string): boolean {
    if (this.qos !== 2 || this.qos2Works) return false;
    if (++this.qos2Closes >= QOS2_CLOSES_TO_DOWNGRADE) {
      this.downgrade(
        broker,
        `the broker closed the connection on our first QoS 2 publish ${this.qos2Closes} times in a row`,
      );
    }
    return true;
  }

  private downgrade(broker: string, why: string): void {
    if (this.qos !== 2) return;
    this.qos = 1;
    this.once('qos2', { broker, why }, qos2Refused(broker));
  }

  private once(key: string, fields: object, msg: string): void {
    if (this.said.has(key)) return;
    this.said.add(key);
    this.logger.warn(fields, this.name === undefined ? msg : `${this.name}: ${msg}`);
  }
}
