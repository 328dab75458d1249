/**
 * One MQTT connection kept up to the broker(s) of mqtt.url(s), for one output: telemetry
 * (whose connection Home Assistant shares) or the Sparkplug node (which needs its own, for
 * its Will). The session owns everything about the connection itself — connect, the Will,
 * protocol negotiation (MQTT 5, or 3.1.1 once the broker refuses 5), failover, backoff,
 * the limits the broker announces, goodbye, and the connect/loss log lines — and tells its
 * owner when it is up and when it closed; what is sent over it is the owner's business.
 * Why an attempt failed is diagnosed and logged by connection-errors.ts.
 *
 * Why we drive the connection ourselves (reconnectPeriod 0, one mqtt.js client per
 * connection attempt): mqtt.js's offline queue is unbounded and a publish rejected while it
 * reconnects is lost. Nothing is handed to mqtt.js unless the session is connected.
 *
 * With several brokers (mqtt.urls, the nodes of one cluster) every close or failed attempt
 * moves on to the next one, round robin, after the same backoff; the protocol fallback asks
 * the same broker again, at once. The reconnect backoff starts over only when the owner says
 * the broker took what it sent (`acknowledged()`), or when a connection stayed up long
 * enough (backoff.ts): a CONNACK alone does not reset it.
 */
import mqtt, {
  type IClientOptions,
  type IConnackPacket,
  type IPublishPacket,
  type MqttClient,
} from 'mqtt';
import type { Logger } from '../ops/logger.js';
import { Backoff, ReconnectPolicy } from './backoff.js';
import { BrokerTerms } from './broker-terms.js';
import {
  brokerLabel,
  connectionOptions,
  type MqttConfig,
  withProtocolVersion,
} from './connection-options.js';
import { disconnect, watchConnectSent } from './client-lifecycle.js';
import { ConnectionErrors, type AttemptView } from './connection-errors.js';
import { SessionHooks, type ConnectionHooks, type ConnectionLink } from './session-hooks.js';

export type { ConnectionHooks, ConnectionLink } from './session-hooks.js';

/** CONNACK refusals (bad password, not authorized) will not heal quickly: retry slower. */
export const REFUSED_BACKOFF_FACTOR = 4;
/** A connection that stayed up this long resets the backoff even without a publish. */
const STABLE_CONNECTION_MS = 60_000;
/** Bound on the goodbye (the owner's last publish) and on the DISCONNECT after it. */
export const GOODBYE_MS = 2000;

/** What the session tells the output that owns it. */
export interface SessionOwner {
  /** The Last Will of the connection about to be attempted (asked on every attempt). */
  will(): NonNullable<IClientOptions['will']>;
  /** CONNACK accepted: the connection is up (logged already). */
  connected(client: MqttClient, connack: IConnackPacket): void;
  /**
   * The connection, or the attempt, closed. Called while the session still names the broker
   * that closed, before the next attempt is planned; `slower` asks for the refused backoff
   * (what the owner sent was refused, not a network blip).
   */
  closed(wasConnected: boolean): { slower: boolean };
  /** A message on a subscription the owner made itself. */
  message?(topic: string, payload: Buffer, packet: IPublishPacket): void;
  /**
   * The CONNECT of an attempt has left for the broker (its transport connected): the attempt
   * is a session for the broker, whatever happens next. Not called when the broker could not
   * be reached at all (TCP refused, unreachable, TLS handshake failed).
   */
  connectSent?(): void;
  /** Fields of the owner for the connect and loss log lines (e.g. its backlog). */
  logFields?(): object;
}

export interface SessionOptions {
  gateway: string;
  mqtt: MqttConfig;
  logger: Logger;
  /**
   * Names a session besides the telemetry one in its log lines and client id
   * (`<mqtt.clientId>-<name>`); such a session is clean (no session kept by the broker).
   */
  name?: string;
}

export interface SessionStats {
  connected: boolean;
  /** The broker in use, or being tried (URL without user name or password). */
  broker: string;
  /** Successful connects after the first one. */
  reconnects: number;
  /** Failed connection attempts (network, TLS, CONNACK refusal). */
  connectFailures: number;
  /** The MQTT version in use (or being tried): 5, or 4 for 3.1.1. */
  protocolVersion: 4 | 5;
  lastError?: string;
}

/**
 * The owner's last publishes before DISCONNECT; resolves with what the DISCONNECT carries
 * (an MQTT 5 reason code), or undefined for a plain one.
 */
export type Goodbye = (
  client: MqttClient,
  protocolVersion: 4 | 5,
) => Promise<{ reasonCode?: number } | undefined>;

export class BrokerSession {
  readonly terms: BrokerTerms;
  private readonly policy: ReconnectPolicy;
  private readonly errors: ConnectionErrors;
  private readonly hooks: SessionHooks;
  private readonly prefix: string;
  private owner: SessionOwner | undefined;
  private clientOptions: IClientOptions | undefined;
  private client: MqttClient | undefined;
  private connectedNow = false;
  /** The broker's Maximum Packet Size in the CONNACK of the current connection. */
  private maximumPacketSize: number | undefined;
  /** Bumped per connection attempt and on every close; callbacks of older clients are ignored. */
  private gen = 0;
  /** Index in mqtt.urls of the broker in use or being tried. */
  private index = 0;
  private reconnectTimer: NodeJS.Timeout | undefined;
  /** Connect again at once, to the same broker: the protocol fallback. */
  private retryNow = false;
  /** The current connection got its CONNACK. */
  private gotConnack = false;
  private stopped = false;
  /** A connection being ended on purpose: its close does not plan a reconnect. */
  private ending = false;
  private connects = 0;
  private connectFailures = 0;

  constructor(private readonly options: SessionOptions) {
    this.prefix = options.name ? `${options.name}: ` : '';
    this.hooks = new SessionHooks(options.logger);
    this.terms = new BrokerTerms(options.mqtt, options.logger, options.name);
    this.errors = new ConnectionErrors(this.terms, options.logger, this.prefix, () =>
      this.stopped ? undefined : this.attemptView(),
    );
    this.policy = new ReconnectPolicy(
      new Backoff(options.mqtt.reconnectMinMs, options.mqtt.reconnectMaxMs),
      STABLE_CONNECTION_MS,
    );
  }

  /** Connect (and keep reconnecting). Throws MqttSetupError for unreadable credential/TLS files. */
  start(owner: SessionOwner): void {
    this.owner = owner;
    const { gateway, mqtt: config, name } = this.options;
    const base = connectionOptions(gateway, config, this.terms.protocolVersion);
    if (name === undefined) this.clientOptions = base;
    else {
      // Only the telemetry session is persistent: clean session (3.1.1), clean start without expiry (5).
      const { properties: _sessionExpiry, ...clean } = base;
      this.clientOptions = { ...clean, clientId: `${String(base.clientId)}-${name}`, clean: true };
    }
    this.connect();
  }

  /** The client of the connection when it is up (CONNACK received), else undefined. */
  connectedClient(): MqttClient | undefined {
    return this.connectedNow ? this.client : undefined;
  }

  get connected(): boolean {
    return this.connectedNow;
  }

  /** Changes on every attempt and close: a callback that saw another value is stale. */
  get generation(): number {
    return this.gen;
  }

  /** Index in mqtt.urls of the broker in use or being tried. */
  get brokerIndex(): number {
    return this.index;
  }

  /** The connect options of the current attempt (for a second client to the same broker). */
  currentOptions(): IClientOptions | undefined {
    return this.clientOptions;
  }

  /** The broker took what the owner sent: the reconnect backoff starts over. */
  acknowledged(): void {
    this.policy.acknowledged();
  }

  /** The latest connection or publish error, for stats and health. */
  noteError(text: string): void {
    this.errors.note(text);
  }

  /** Use this connection for a consumer's subscriptions and announcements (see ConnectionHooks). */
  attach(hooks: ConnectionHooks): void {
    this.hooks.attach(hooks, this.link());
  }

  /** The connection as consumers see it, when it is up. */
  private link(): ConnectionLink | undefined {
    const client = this.connectedClient();
    if (!client) return undefined;
    const link: ConnectionLink = { client, protocolVersion: this.terms.protocolVersion };
    if (this.maximumPacketSize !== undefined) link.maximumPacketSize = this.maximumPacketSize;
    return link;
  }

  stats(): SessionStats {
    const s: SessionStats = {
      connected: this.connectedNow,
      broker: brokerLabel(this.brokerUrl()),
      reconnects: Math.max(0, this.connects - 1),
      connectFailures: this.connectFailures,
      protocolVersion: this.terms.protocolVersion,
    };
    if (this.errors.lastError !== undefined) s.lastError = this.errors.lastError;
    return s;
  }

  /** The URL of the broker in use, or being tried. */
  brokerUrl(): string {
    const urls = this.options.mqtt.urls;
    return urls[this.index % urls.length] ?? this.options.mqtt.url;
  }

  /** How logs name the broker: its URL without credentials, and which of mqtt.urls it is. */
  brokerFields(): { broker: string; brokerIndex?: number } {
    const broker = brokerLabel(this.brokerUrl());
    return this.options.mqtt.urls.length > 1 ? { broker, brokerIndex: this.index } : { broker };
  }

  /**
   * Ends the session for good: when connected, the owner's goodbye (its last publishes, which
   * it bounds), then DISCONNECT within GOODBYE_MS; otherwise the attempt is dropped.
   */
  async end(goodbye?: Goodbye): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.closeOnPurpose(goodbye);
  }

  /**
   * Ends the current connection on purpose (the goodbye, then DISCONNECT) and connects again
   * after the minimum backoff, to the same broker.
   */
  async restart(goodbye?: Goodbye): Promise<void> {
    if (this.stopped) return;
    await this.closeOnPurpose(goodbye);
    if (this.stopped) return;
    this.policy.acknowledged();
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => this.connect(), this.policy.delayAfterClose());
  }

  private async closeOnPurpose(goodbye: Goodbye | undefined): Promise<void> {
    clearTimeout(this.reconnectTimer);
    const client = this.client;
    this.ending = true;
    try {
      if (client && this.connectedNow) {
        const packet = goodbye ? await goodbye(client, this.terms.protocolVersion) : undefined;
        await disconnect(client, packet, GOODBYE_MS);
      } else {
        client?.end(true);
      }
    } finally {
      this.ending = false;
    }
    this.gen++;
    this.client = undefined;
    this.connectedNow = false;
  }

  private connect(): void {
    const owner = this.owner;
    if (this.stopped || !this.clientOptions || !owner) return;
    this.clientOptions = withProtocolVersion(this.clientOptions, this.terms.protocolVersion);
    const gen = ++this.gen;
    this.gotConnack = false;
    this.errors.attemptStarted();
    const client = mqtt.connect(this.brokerUrl(), { ...this.clientOptions, will: owner.will() });
    this.client = client;
    watchConnectSent(client, () => {
      if (gen === this.gen) owner.connectSent?.();
    });
    client.on('connect', (connack) => {
      if (gen === this.gen) this.onConnect(client, connack);
    });
    // Always listen: an 'error' without a listener would crash the process.
    client.on('error', (err) => {
      if (gen !== this.gen) return;
      if (this.errors.onError(err, this.attemptView()) === 'retry-now') this.retryNow = true;
    });
    client.on('disconnect', (packet) => {
      if (gen === this.gen) this.errors.onBrokerDisconnect(packet, this.brokerFields());
    });
    client.on('close', () => {
      if (gen === this.gen) this.onClose(client);
    });
    client.on('message', (topic, payload, packet) => {
      if (gen !== this.gen) return;
      this.hooks.message(topic, payload, packet);
      owner.message?.(topic, payload, packet);
    });
  }

  private onConnect(client: MqttClient, connack: IConnackPacket): void {
    this.connectedNow = true;
    this.gotConnack = true;
    this.errors.connected(this.brokerUrl());
    this.policy.connected();
    this.connects++;
    const props = connack.properties;
    this.maximumPacketSize = props?.maximumPacketSize;
    this.options.logger.info(
      {
        ...this.brokerFields(),
        protocolVersion: this.terms.protocolVersion,
        ...(props?.maximumPacketSize !== undefined
          ? { brokerMaxPacketBytes: props.maximumPacketSize }
          : {}),
        reconnects: this.connects - 1,
        ...this.owner?.logFields?.(),
      },
      `${this.prefix}connected to the MQTT broker`,
    );
    this.owner?.connected(client, connack);
    const link = this.link();
    if (link) this.hooks.connected(link);
  }

  /** The attempt now, for the error diagnosis. */
  private attemptView(): AttemptView {
    return {
      url: this.brokerUrl(),
      fields: this.brokerFields(),
      gotConnack: this.gotConnack,
      clientId: this.clientOptions?.clientId,
    };
  }

  private onClose(client: MqttClient): void {
    const wasConnected = this.connectedNow;
    this.connectedNow = false;
    this.gen++;
    client.removeAllListeners('close');
    client.end(true);
    this.client = undefined;
    if (!wasConnected) this.connectFailures++;
    const verdict = this.owner?.closed(wasConnected) ?? { slower: false };
    if (this.stopped || this.ending) return;
    const slower = this.errors.refusedLast || verdict.slower;
    // A retry at once follows a protocol fallback: to 3.1.1 after a refusal of 5 in CONNACK,
    // or after a CONNECT of 5 the broker closed on (broker-terms.ts).
    const quietly = this.errors.currentError === undefined;
    const fallback =
      this.retryNow || this.terms.closed(brokerLabel(this.brokerUrl()), this.gotConnack, quietly);
    const delay = fallback ? 0 : this.policy.delayAfterClose(slower ? REFUSED_BACKOFF_FACTOR : 1);
    this.retryNow = false;
    const lost = this.brokerFields();
    // The protocol fallback asks the same broker again; any other close moves on.
    if (!fallback) this.index = (this.index + 1) % this.options.mqtt.urls.length;
    const next = this.options.mqtt.urls.length > 1 ? { next: brokerLabel(this.brokerUrl()) } : {};
    this.options.logger[fallback ? 'debug' : 'warn'](
      {
        ...lost,
        ...next,
        retryInMs: delay,
        closesInARow: this.policy.closesInARow(),
        ...this.owner?.logFields?.(),
        error: this.errors.currentError,
      },
      `${this.prefix}${wasConnected ? 'MQTT connection lost; reconnecting' : 'MQTT connect failed; retrying'}`,
    );
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
  }
}
