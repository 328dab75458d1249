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
/** How long an acknowledged publish may take to come back through the watcher. */
export const ECHO_MS = 5000;

export type DeliveryCheckState = 'starting' | 'watching' | 'confirmed' | 'unverifiable';

export interface DeliveryCheckEvents<M> {
  /** The watcher is subscribed: publishing may start. */
  ready(): void;
  /** One of our telemetry messages came back: the waiting ones were delivered. */
  confirmed(delivered: M[]): void;
  /** The check cannot be made (why); the waiting ones go as plain 3.1.1 would have them. */
  unverifiable(why: string, released: M[]): void;
  /** Acknowledged, yet none came back within ECHO_MS: how a 3.1.1 ACL denial looks. */
  notDelivered(kept: M[]): void;
}

/** `M`: the publisher's message, held here between its PUBACK and the echo. */
export class DeliveryCheck<M> {
  private client: MqttClient | undefined;
  private timer: NodeJS.Timeout | undefined;
  private echoTimer: NodeJS.Timeout | undefined;
  private current: DeliveryCheckState = 'starting';
  private waiting: M[] = [];

  constructor(
    private readonly url: string,
    private readonly options: IClientOptions,
    private readonly topic: string,
    private readonly events: DeliveryCheckEvents<M>,
  ) {}

  /** Acknowledged messages waiting for the echo; they still take room in the window. */
  waitingCount(): number {
    return this.waiting.length;
  }

  /** Whether a waiting message matches. */
  isWaiting(match: (message: M) => boolean): boolean {
    return this.waiting.some(match);
  }

  /**
   * The broker acknowledged `message`. True when the check keeps it until the echo (the
   * caller must not remove it from the spool yet); false once delivery is settled.
   */
  hold(message: M): boolean {
    if (!this.pending()) return false;
    this.waiting.push(message);
    this.echoTimer ??= setTimeout(() => {
      this.echoTimer = undefined;
      if (!this.pending()) return;
      this.events.notDelivered(this.waiting.splice(0));
    }, ECHO_MS);
    return true;
  }

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
      this.events.confirmed(this.waiting.splice(0));
    });
  }

  /** The publisher's connection is gone: so is the watcher; the waiting ones stay unsent. */
  stop(): void {
    if (this.pending()) this.current = 'unverifiable';
    this.waiting = [];
    this.close();
  }

  private give(why: string): void {
    if (!this.pending()) return;
    this.current = 'unverifiable';
    this.close();
    this.events.unverifiable(why, this.waiting.splice(0));
  }

  private close(): void {
    clearTimeout(this.timer);
    clearTimeout(this.echoTimer);
    this.echoTimer = undefined;
    const client = this.client;
    this.client = undefined;
    client?.removeAllListeners('close');
    client?.end(true);
  }
}
