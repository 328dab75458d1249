/**
 * What this broker accepts, learned as the publisher goes: the MQTT version (5 unless
 * mqtt.protocolVersion says otherwise; 3.1.1 once the broker refuses 5) and the QoS of
 * telemetry (mqtt.qos; 1 once the broker refuses 2). Each change is logged once, with what
 * it costs — under 3.1.1 a publish the broker denies is acknowledged as if delivered.
 *
 * Some brokers (RabbitMQ before 3.13) close the connection on an MQTT 5 CONNECT instead of
 * refusing it in CONNACK. So does a broker that goes down at that moment, which must not
 * turn a broker that speaks 5 into a 3.1.1 one. A close is therefore only a reason to try
 * 3.1.1 at once on the same broker when the broker closed the connection itself, without any
 * error (not refused, reset, timed out or a TLS failure), and that 3.1.1 is kept only if it
 * gets a CONNACK, and only for that connection: the next connection tries 5 again.
 */
import type { Logger } from '../ops/logger.js';
import type { MqttConfig } from './connection-options.js';

/** Connections closed in a row on our first QoS 2 publishes before QoS 2 counts as refused. */
const QOS2_CLOSES_TO_DOWNGRADE = 2;

const MQTT311_FALLBACK =
  'the broker does not speak MQTT 5: using MQTT 3.1.1. Under 3.1.1 a publish the broker denies (ACL) is acknowledged as if delivered, so such a loss cannot be seen unless mqtt.deliveryCheck is on; see docs/operations.md';

const MQTT311_AFTER_CLOSE =
  'the broker closed the connection on our MQTT 5 CONNECT without answering, and accepts MQTT 3.1.1 (RabbitMQ before 3.13 does this): using MQTT 3.1.1, and trying 5 again on each new connection (set mqtt.protocolVersion: 4 to skip that). Under 3.1.1 a publish the broker denies (ACL) is acknowledged as if delivered, so such a loss cannot be seen unless mqtt.deliveryCheck is on; see docs/operations.md';

const V5_CLOSED =
  'the broker closed the connection on our MQTT 5 CONNECT without answering (mqtt.protocolVersion: 5): it may not speak MQTT 5 (RabbitMQ before 3.13 does this). Set mqtt.protocolVersion: 4, or leave it unset to fall back automatically';

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
  /**
   * 3.1.1 after a v5 CONNECT was closed on: 'trying' until its CONNACK, then 'in-use' until
   * that connection ends.
   */
  private afterClose: 'no' | 'trying' | 'in-use' = 'no';
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

  /**
   * A connection or connection attempt closed. `answered`: it got a CONNACK. `quietly`: no
   * error came with it (no refusal, reset, timeout or TLS failure), so the broker took the
   * TCP connection, read our CONNECT and closed. True when that is answered by trying
   * MQTT 3.1.1 on the same broker at once; otherwise the version to try next is set back to 5
   * where it was 3.1.1 only because of such a close.
   */
  closed(broker: string, answered: boolean, quietly: boolean): boolean {
    const v5Closed = !answered && quietly && this.protocolVersion === 5;
    if (this.afterClose === 'no' && v5Closed && this.negotiated()) {
      this.protocolVersion = 4;
      this.afterClose = 'trying';
      this.logger.debug(
        { broker },
        'the broker closed the connection on our MQTT 5 CONNECT without answering: trying MQTT 3.1.1',
      );
      return true;
    }
    if (v5Closed && !this.negotiated()) this.once('v5-closed', { broker }, V5_CLOSED);
    if (this.afterClose !== 'no') {
      this.protocolVersion = 5;
      this.afterClose = 'no';
    }
    return false;
  }

  /** CONNACK accepted: its MQTT 5 properties may lower what we may send. */
  connected(maximumQoS: number | undefined, broker: string): void {
    if (this.afterClose === 'trying') {
      this.afterClose = 'in-use';
      this.once('fallback', { broker }, MQTT311_AFTER_CLOSE);
    }
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
