/**
 * Under MQTT 3.1.1 a broker acknowledges a publish its ACL denies as if it had delivered it:
 * the PUBACK carries no reason code. With `mqtt.deliveryCheck` on, each connection of the
 * publisher is watched by a second, clean-session connection subscribed to the telemetry
 * topic; until one of our batches comes back through it, the publisher removes nothing from
 * the spool. Once one has come back, the topic is known to be deliverable and the watcher
 * leaves (no lasting subscription, no second copy of the stream).
 *
 * A broker that refuses the subscription (SUBACK 0x80) or the watcher's connection leaves
 * the check "unverifiable": the publisher goes on as plain 3.1.1 does, and says so once.
 */
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';

/** Bound on connecting and subscribing the watcher. */
const WATCHER_START_MS = 10_000;

export type DeliveryCheckState = 'starting' | 'watching' | 'confirmed' | 'unverifiable';

export interface DeliveryCheckEvents {
  /** The watcher is subscribed: publishing may start. */
  ready(): void;
  /** One of our telemetry messages came back: the broker delivers what it acknowledges. */
  confirmed(): void;
  /** The check cannot be made (why); publish as plain 3.1.1 would. */
  unverifiable(why: string): void;
}

export class DeliveryCheck {
  private client: MqttClient | undefined;
  private timer: NodeJS.Timeout | undefined;
  private current: DeliveryCheckState = 'starting';

  constructor(
    private readonly url: string,
    private readonly options: IClientOptions,
    private readonly topic: string,
    private readonly events: DeliveryCheckEvents,
  ) {}

  state(): DeliveryCheckState {
    return this.current;
  }

  /** True while acknowledged publishes must wait for the echo before leaving the spool. */
  pending(): boolean {
    return this.current === 'starting' || this.current === 'watching';
  }

  start(): void {
    const { will: _will, properties: _properties, ...base } = this.options;
    const client = mqtt.connect(this.url, {
      ...base,
      clientId: `${String(this.options.clientId)}-check`,
      clean: true,
      protocolVersion: 4,
      reconnectPeriod: 0,
    });
    this.client = client;
    this.timer = setTimeout(
      () => this.give('the watcher did not connect and subscribe within 10 s'),
      WATCHER_START_MS,
    );
    client.on('error', (err) => this.give(`the watcher's connection failed: ${err.message}`));
    client.on('close', () => {
      if (this.pending()) this.give("the watcher's connection closed");
    });
    client.on('connect', () => {
      client.subscribe(this.topic, { qos: 1 }, (err, granted) => {
        if (err || !granted || granted.some((g) => g.qos === 0x80)) {
          this.give(`the broker refuses the watcher's subscription to ${this.topic}`);
          return;
        }
        if (this.current !== 'starting') return;
        clearTimeout(this.timer);
        this.current = 'watching';
        this.events.ready();
      });
    });
    client.on('message', (topic) => {
      if (topic !== this.topic || this.current !== 'watching') return;
      this.current = 'confirmed';
      this.close();
      this.events.confirmed();
    });
  }

  /** The publisher's connection is gone: so is the watcher. */
  stop(): void {
    if (this.pending()) this.current = 'unverifiable';
    this.close();
  }

  private give(why: string): void {
    if (!this.pending()) return;
    this.current = 'unverifiable';
    this.close();
    this.events.unverifiable(why);
  }

  private close(): void {
    clearTimeout(this.timer);
    const client = this.client;
    this.client = undefined;
    client?.removeAllListeners('close');
    client?.end(true);
  }
}
