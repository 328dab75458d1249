/**
 * Telemetry publisher: spool first, then publish at QoS 1 with a bounded in-flight window;
 * a batch leaves the spool only on PUBACK.
 *
 * Why we drive the connection ourselves (reconnectPeriod 0, one mqtt.js client per
 * connection attempt): mqtt.js's offline queue is unbounded and a publish rejected while it
 * reconnects is lost. Here nothing is handed to mqtt.js unless we are connected, and when a
 * connection closes every in-flight batch counts as unsent: the next connection replays the
 * spool from its oldest unacknowledged seq, in order (a duplicate at worst, never a gap).
 *
 * A broker that refuses must not stall the spool (docs/operations.md, "When the broker
 * refuses"): a refused publish (PUBACK reason >= 0x80, or the connection closed on it) is
 * never taken as delivered. A batch refused twice is split (part-planner.ts) and one that
 * cannot pass at all is set aside, so the batches after it flow on; a refusal of the topic
 * (ACL) keeps every batch and pauses with a slower backoff. The reconnect backoff starts over
 * only when a publish is acknowledged (backoff.ts), not on CONNACK.
 *
 * With several brokers (mqtt.urls, the nodes of one cluster) every close or failed attempt
 * moves on to the next one, round robin, after the same backoff. The client id and the
 * persistent session are the same on every node, so where the cluster shares sessions
 * (such as a NATS cluster, docs/brokers.md) the switch loses nothing; either way
 * unacknowledged batches are still in the spool and go out again on the next node.
 */
import mqtt, {
  type IClientOptions,
  type IConnackPacket,
  type IDisconnectPacket,
  type MqttClient,
} from 'mqtt';
import type { Logger } from '../ops/logger.js';
import { Backoff, ReconnectPolicy } from './backoff.js';
import { explainConnectFailure, publishRefusal, RefusalPattern } from './broker-errors.js';
import { BrokerTerms } from './broker-terms.js';
import {
  brokerLabel,
  connectionOptions,
  describeError,
  type MqttConfig,
  withProtocolVersion,
} from './connection-options.js';
import { DeliveryCheck, ECHO_MS } from './delivery-check.js';
import type { HealthReport } from './health.js';
import { HealthSender, type TelemetryTerms } from './health-parts.js';
import { PartPlanner, type Outgoing } from './part-planner.js';
import { offlineStatus, onlineStatus, type StatusInfo } from './payload.js';
import type { SpoolStats } from './spool/spool.js';
import type { SpoolPort } from './spool/spool-port.js';
import { TlsPorts } from './tls-probe.js';
import { gatewayTopics, type GatewayTopics } from './topics.js';

export interface PublisherOptions {
  gateway: string;
  mqtt: MqttConfig;
  spool: SpoolPort;
  logger: Logger;
  status: { version: string; startedAt: number; sensors: string[] };
}

/**
 * An optional consumer's use of the telemetry connection (Home Assistant discovery): its
 * subscriptions are made again on every connection (each connection is a new client), and
 * `connected` runs after every connect, or at once when attached while connected.
 */
export interface ConnectionHooks {
  subscriptions: string[];
  connected(): void;
  message(topic: string, payload: Buffer, retained: boolean): void;
}

export interface PublisherStats {
  connected: boolean;
  /** The broker in use, or being tried (URL without user name or password). */
  broker: string;
  /** Successful connects after the first one. */
  reconnects: number;
  /** Failed connection attempts (network, TLS, CONNACK refusal). */
  connectFailures: number;
  inflight: number;
  /** Batches acknowledged by the broker since start. */
  published: number;
  /** Telemetry publishes the broker refused since start (PUBACK reason >= 0x80, or closed on). */
  refusals: number;
  /** Batches sent in parts since start because the broker would not take them whole. */
  splits: number;
  /** Batches set aside (dead letters) since start because not even one window could pass. */
  setAside: number;
  /** The MQTT version in use (or being tried): 5, or 4 for 3.1.1. */
  protocolVersion: 4 | 5;
  /** The QoS telemetry is published at (below mqtt.qos when the broker refuses that). */
  qos: 1 | 2;
  spool: SpoolStats;
  lastError?: string;
}

/** CONNACK refusals (bad password, not authorized) will not heal quickly: retry slower. */
const REFUSED_BACKOFF_FACTOR = 4;
/** A connection that stayed up this long resets the backoff even without a publish. */
const STABLE_CONNECTION_MS = 60_000;
/** Bound on waiting for the offline status' PUBACK and the DISCONNECT at stop. */
const GOODBYE_MS = 2000;

type Key = string;
const keyOf = (m: Outgoing): Key => `${m.seq}/${m.part}`;

export class TelemetryPublisher {
  private readonly topics: GatewayTopics;
  private readonly info: StatusInfo;
  private readonly policy: ReconnectPolicy;
  /** Pauses publishing after a refusal while the connection stays up. */
  private readonly holdBackoff: Backoff;
  private readonly planner: PartPlanner;
  private readonly health: HealthSender;
  private window: number;
  private client: MqttClient | undefined;
  private clientOptions: IClientOptions | undefined;
  /** Bumped per connection attempt; callbacks of older clients are ignored. */
  private generation = 0;
  private connected = false;
  /** Index in mqtt.urls of the broker in use or being tried. */
  private brokerIndex = 0;
  private readonly inflight = new Map<Key, Outgoing>();
  /** Messages planned for the current connection and not handed to mqtt.js yet, in order. */
  private queue: Outgoing[] = [];
  /** Highest seq planned on the current connection. */
  private cursor = 0;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private holdTimer: NodeJS.Timeout | undefined;
  /** After a refusal: once in-flight publishes are answered, replay from the oldest batch. */
  private rewindPending = false;
  private refusedLast = false;
  /**
   * The broker refused the telemetry topic (ACL, topic name, quota) and nothing was
   * acknowledged since: a close now is that refusal again (some brokers drop the connection
   * after refusing), not a sign that one batch is too large.
   */
  private topicRefused = false;
  private readonly refusalPattern = new RefusalPattern();
  private retryNow = false;
  private stopped = false;
  private connects = 0;
  private connectFailures = 0;
  private published = 0;
  private refusals = 0;
  private setAsideCount = 0;
  private lastError: string | undefined;
  /** The error of the current connection (attempt), for the log line when it closes. */
  private connectionError: string | undefined;
  /**
   * With several brokers: the message that was oldest in flight when connections closed,
   * and the brokers (indexes in mqtt.urls) that closed on it.
   */
  private closeWitness: { key: Key; brokers: Set<number> } | undefined;
  private readonly progressWaiters = new Set<() => void>();
  private readonly terms: BrokerTerms;
  /** The current connection got its CONNACK. */
  private gotConnack = false;
  /** Broker ports found to speak TLS (a plain URL reset before CONNACK asks). */
  private readonly tlsPorts = new TlsPorts();
  private readonly loggedOnce = new Set<string>();
  /** The 3.1.1 delivery check of the current connection (mqtt.deliveryCheck). */
  private check: DeliveryCheck<Outgoing> | undefined;
  private readonly hooks: ConnectionHooks[] = [];

  constructor(private readonly options: PublisherOptions) {
    this.topics = gatewayTopics(options.mqtt.topicPrefix, options.gateway);
    this.info = { gateway: options.gateway, ...options.status };
    this.policy = new ReconnectPolicy(
      new Backoff(options.mqtt.reconnectMinMs, options.mqtt.reconnectMaxMs),
      STABLE_CONNECTION_MS,
    );
    this.holdBackoff = new Backoff(options.mqtt.reconnectMinMs, options.mqtt.reconnectMaxMs);
    this.planner = new PartPlanner(options.gateway, this.topics.telemetry);
    this.health = new HealthSender(options.gateway, this.topics.health, options.logger);
    this.window = options.mqtt.inflight;
    this.terms = new BrokerTerms(options.mqtt, options.logger);
    // Batches become publishable when their transaction committed, never before.
    options.spool.onCommitted(() => this.pump());
    // Older batches back in the spool (its disk readable again): publish them now.
    options.spool.onRewind((fromSeq) => {
      this.cursor = Math.min(this.cursor, fromSeq - 1);
      this.pump();
    });
  }

  /** Connect (and keep reconnecting). Throws MqttSetupError for unreadable credential/TLS files. */
  start(): void {
    this.clientOptions = connectionOptions(
      this.options.gateway,
      this.options.mqtt,
      this.terms.protocolVersion,
    );
    this.connect();
  }

  /**
   * Spool a batch body and publish it once it is durable. Resolves with its seq when it is
   * stored: batches submitted within a few ms share one transaction (the spool's group commit).
   */
  submit(body: Uint8Array): Promise<number> {
    return this.options.spool.append(body, Date.now());
  }

  /**
   * Health report (QoS 0 is not enough to be seen after a blip: QoS 1, not retained), whole or
   * in parts within the broker's limit (health-parts.ts); false when it cannot be sent.
   */
  publishHealth(report: HealthReport): boolean {
    const client = this.client;
    if (!this.connected || !client) return false;
    return this.health.send(client, report, this.telemetryTerms());
  }

  /** What telemetry learned of the broker's limits, for health. */
  private telemetryTerms(): TelemetryTerms {
    return {
      protocolVersion: this.terms.protocolVersion,
      limit: this.planner.limit(),
      largestAcked: this.planner.largestAcknowledged(),
    };
  }

  /** Use this connection for a consumer's subscriptions and announcements (see ConnectionHooks). */
  attach(hooks: ConnectionHooks): void {
    this.hooks.push(hooks);
    const client = this.client;
    if (this.connected && client) this.runHooks(client, [hooks]);
  }

  /**
   * A retained QoS 1 publish on this connection (an empty payload clears the topic). Resolves
   * true on PUBACK, false when not connected or not acknowledged; nothing is queued for later.
   */
  publishRetained(topic: string, payload: string | Buffer): Promise<boolean> {
    const client = this.client;
    if (!this.connected || !client || this.stopped) return Promise.resolve(false);
    return new Promise((resolve) => {
      client.publish(topic, payload, { qos: 1, retain: true }, (err) => {
        if (err) {
          this.options.logger.warn(
            { topic, err: describeError(err) },
            'retained publish failed (refused by the broker, or the connection closed)',
          );
        }
        resolve(!err);
      });
    });
  }

  private runHooks(client: MqttClient, hooks: ConnectionHooks[]): void {
    for (const h of hooks) {
      if (h.subscriptions.length > 0) {
        client.subscribe(h.subscriptions, { qos: 1 }, (err, granted) => {
          // A refusal is an error or a SUBACK code >= 0x80 for the topic.
          const refused = granted?.filter((g) => g.qos >= 0x80).map((g) => g.topic) ?? [];
          if (err || refused.length > 0) {
            this.options.logger.warn(
              {
                topics: refused.length > 0 ? refused : h.subscriptions,
                ...(err ? { err: describeError(err) } : {}),
              },
              'MQTT subscription refused (check the broker ACL)',
            );
          }
        });
      }
      h.connected();
    }
  }

  stats(): PublisherStats {
    const s: PublisherStats = {
      connected: this.connected,
      broker: brokerLabel(this.brokerUrl()),
      reconnects: Math.max(0, this.connects - 1),
      connectFailures: this.connectFailures,
      inflight: this.inflight.size,
      published: this.published,
      refusals: this.refusals,
      splits: this.planner.splits(),
      setAside: this.setAsideCount,
      protocolVersion: this.terms.protocolVersion,
      qos: this.terms.qos,
      spool: this.options.spool.stats(),
    };
    if (this.lastError !== undefined) s.lastError = this.lastError;
    return s;
  }

  /**
   * Publish what we can within drainMs, then a retained offline status (a clean DISCONNECT
   * does not fire the Last Will), then disconnect. What is left stays in the spool.
   */
  async stop(options: { drainMs: number }): Promise<void> {
    if (this.stopped) return;
    const deadline = performance.now() + options.drainMs;
    // Keep reconnecting during the drain: the broker may be back in time.
    while (performance.now() < deadline && !this.drained()) {
      await this.waitForProgress(deadline - performance.now());
    }
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.holdTimer);
    this.endCheck();
    const client = this.client;
    const log = this.options.logger;
    // Batches held in memory (failing disk) do not stay: the spool counts them as dropped at close.
    const { depth, memoryDepth, unnumbered } = this.options.spool.stats();
    const left = depth - memoryDepth - unnumbered;
    if (client && this.connected) {
      const sent = await this.publishWithin(
        client,
        this.topics.status,
        offlineStatus(this.info, 'shutdown', Date.now()),
        GOODBYE_MS,
      );
      if (!sent) log.warn('offline status not acknowledged before disconnect');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          client.end(true);
          resolve();
        }, GOODBYE_MS);
        client.end(false, {}, () => {
          clearTimeout(timer);
          resolve();
        });
      });
    } else {
      client?.end(true);
    }
    this.generation++;
    this.client = undefined;
    this.connected = false;
    this.inflight.clear();
    this.queue = [];
    this.options.spool.retainRecent(false);
    log.info(
      { published: this.published, leftInSpool: left },
      left > 0 ? 'publisher stopped; unsent batches stay in the spool' : 'publisher stopped',
    );
  }

  private drained(): boolean {
    return this.options.spool.stats().depth === 0 && this.inflight.size === 0;
  }

  private waitForProgress(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.progressWaiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, Math.min(ms, 250)));
      this.progressWaiters.add(done);
    });
  }

  private notifyProgress(): void {
    for (const w of [...this.progressWaiters]) w();
  }

  private publishWithin(
    client: MqttClient,
    topic: string,
    payload: Buffer,
    ms: number,
  ): Promise<boolean> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), ms);
      client.publish(topic, payload, { qos: 1, retain: true }, (err) => {
        clearTimeout(timer);
        resolve(!err);
      });
    });
  }

  /** The URL of the broker in use, or being tried. */
  private brokerUrl(): string {
    const urls = this.options.mqtt.urls;
    return urls[this.brokerIndex % urls.length] ?? this.options.mqtt.url;
  }

  /** How logs name the broker: its URL without credentials, and which of mqtt.urls it is. */
  private brokerFields(): { broker: string; brokerIndex?: number } {
    const broker = brokerLabel(this.brokerUrl());
    return this.options.mqtt.urls.length > 1
      ? { broker, brokerIndex: this.brokerIndex }
      : { broker };
  }

  private connect(): void {
    if (this.stopped || !this.clientOptions) return;
    this.clientOptions = withProtocolVersion(this.clientOptions, this.terms.protocolVersion);
    const gen = ++this.generation;
    this.gotConnack = false;
    this.connectionError = undefined;
    const client = mqtt.connect(this.brokerUrl(), {
      ...this.clientOptions,
      will: {
        topic: this.topics.status,
        payload: offlineStatus(this.info, 'connection-lost', Date.now()),
        qos: 1,
        retain: true,
      },
    });
    this.client = client;
    client.on('connect', (connack) => {
      if (gen === this.generation) this.onConnect(client, connack);
    });
    // Always listen: an 'error' without a listener would crash the process.
    client.on('error', (err) => {
      if (gen === this.generation) this.onError(err);
    });
    client.on('disconnect', (packet) => {
      if (gen === this.generation) this.onBrokerDisconnect(packet);
    });
    client.on('close', () => {
      if (gen === this.generation) this.onClose(client);
    });
    client.on('message', (topic, payload, packet) => {
      if (gen !== this.generation) return;
      for (const h of this.hooks) {
        if (h.subscriptions.some((t) => t === topic)) h.message(topic, payload, packet.retain);
      }
    });
  }

  private onConnect(client: MqttClient, connack: IConnackPacket): void {
    this.connected = true;
    this.gotConnack = true;
    this.refusedLast = false;
    this.policy.connected();
    this.tlsPorts.connected(this.brokerUrl());
    this.connects++;
    this.cursor = 0;
    this.inflight.clear();
    this.queue = [];
    this.rewindPending = false;
    const props = connack.properties;
    this.planner.setBrokerLimit(props?.maximumPacketSize);
    this.health.connected(props?.maximumPacketSize);
    this.window = Math.min(this.options.mqtt.inflight, props?.receiveMaximum ?? Infinity);
    this.terms.connected(props?.maximumQoS, brokerLabel(this.brokerUrl()));
    this.startCheck(client);
    // While connected, new batches are handed out from memory instead of read back.
    this.options.spool.retainRecent(true);
    const spool = this.options.spool.stats();
    this.options.logger.info(
      {
        ...this.brokerFields(),
        protocolVersion: this.terms.protocolVersion,
        ...(props?.maximumPacketSize !== undefined
          ? { brokerMaxPacketBytes: props.maximumPacketSize }
          : {}),
        reconnects: this.connects - 1,
        backlog: spool.depth,
      },
      'connected to the MQTT broker',
    );
    client.publish(
      this.topics.status,
      onlineStatus(this.info, Date.now()),
      { qos: 1, retain: true },
      (err) => {
        if (err) this.options.logger.warn({ err: describeError(err) }, 'online status not sent');
      },
    );
    this.runHooks(client, this.hooks);
    this.pump();
  }

  private onError(err: Error): void {
    this.lastError = describeError(err);
    this.connectionError = this.lastError;
    const log = this.options.logger;
    const url = this.brokerUrl();
    const where = this.brokerFields();
    if (this.gotConnack) {
      log.warn({ ...where, error: this.lastError }, 'MQTT connection error');
      return;
    }
    const failure = explainConnectFailure(err, {
      url,
      protocolVersion: this.terms.protocolVersion,
      negotiated: this.terms.negotiated(),
      beforeConnack: true,
      speaksTls: this.tlsPorts.speaksTls(url),
    });
    if (failure.kind === 'protocol-version' && this.terms.versionRefused(where.broker)) {
      this.retryNow = true;
      return;
    }
    if (failure.kind !== 'network') this.lastError = `${this.lastError}: ${failure.hint}`;
    this.connectionError = this.lastError;
    if (failure.refused) {
      this.refusedLast = true;
      log.error(
        { ...where, error: this.lastError, clientId: this.clientOptions?.clientId },
        `MQTT BROKER REFUSED THE CONNECTION (${failure.hint}); retrying with a slower backoff`,
      );
    } else if (failure.kind === 'tls-mismatch') {
      log.warn({ ...where, error: this.lastError }, `MQTT connection failed: ${failure.hint}`);
    } else {
      log.warn({ ...where, error: this.lastError }, 'MQTT connection error');
    }
    if (failure.probeTls) this.tlsPorts.check(url, (tls) => this.probedTls(url, err, tls));
  }

  /** The answer of a TLS probe after a plain reset before CONNACK: said when it is TLS. */
  private probedTls(url: string, err: Error, tls: boolean): void {
    const where = this.brokerFields();
    this.options.logger.debug({ ...where, tls }, 'broker port probed for TLS after a reset');
    if (!tls || this.stopped || this.gotConnack || url !== this.brokerUrl()) return;
    const failure = explainConnectFailure(err, {
      url,
      protocolVersion: this.terms.protocolVersion,
      negotiated: this.terms.negotiated(),
      beforeConnack: true,
      speaksTls: true,
    });
    this.lastError = `${describeError(err)}: ${failure.hint}`;
    this.connectionError = this.lastError;
    this.options.logger.warn(
      { ...where, error: this.lastError },
      `MQTT connection failed: ${failure.hint}`,
    );
  }

  /** An MQTT 5 broker says why it closes the connection (e.g. 0x95 packet too large). */
  private onBrokerDisconnect(packet: IDisconnectPacket): void {
    const code = packet.reasonCode ?? 0;
    if (code < 0x80) return;
    this.lastError = `broker disconnected us (reason 0x${code.toString(16)}${code === 0x95 ? ', packet too large' : ''})`;
    this.connectionError = this.lastError;
    this.options.logger.warn({ ...this.brokerFields(), reasonCode: code }, this.lastError);
  }

  private onClose(client: MqttClient): void {
    const wasConnected = this.connected;
    this.connected = false;
    // The message the broker was reading when it closed, if any (Map order = send order).
    const oldest = this.inflight.values().next().value;
    // Whatever was in flight is unsent until a PUBACK says otherwise: replay from the spool.
    this.inflight.clear();
    this.queue = [];
    this.cursor = 0;
    this.rewindPending = false;
    clearTimeout(this.holdTimer);
    this.holdTimer = undefined;
    this.endCheck();
    // During the outage batches wait on disk only: memory stays flat.
    this.options.spool.retainRecent(false);
    this.generation++;
    client.removeAllListeners('close');
    client.end(true);
    this.client = undefined;
    if (!wasConnected) this.connectFailures++;
    if (this.stopped) return;
    // A close on a health report too large for the broker is not held against telemetry.
    const healthRefused = this.health.closed(this.telemetryTerms());
    if (wasConnected && oldest && !healthRefused) this.closedOn(oldest);
    const slower = this.refusedLast || this.topicRefused;
    // A retry at once follows a protocol fallback: to 3.1.1 after a refusal of 5 in CONNACK,
    // or after a CONNECT of 5 the broker closed on (broker-terms.ts).
    const quietly = this.connectionError === undefined;
    const fallback =
      this.retryNow || this.terms.closed(brokerLabel(this.brokerUrl()), this.gotConnack, quietly);
    const delay = fallback ? 0 : this.policy.delayAfterClose(slower ? REFUSED_BACKOFF_FACTOR : 1);
    this.retryNow = false;
    const lost = this.brokerFields();
    // The protocol fallback asks the same broker again; any other close moves on.
    if (!fallback) this.brokerIndex = (this.brokerIndex + 1) % this.options.mqtt.urls.length;
    const next = this.options.mqtt.urls.length > 1 ? { next: brokerLabel(this.brokerUrl()) } : {};
    this.options.logger[fallback ? 'debug' : 'warn'](
      {
        ...lost,
        ...next,
        retryInMs: delay,
        closesInARow: this.policy.closesInARow(),
        backlog: this.options.spool.stats().depth,
        error: this.connectionError,
      },
      wasConnected ? 'MQTT connection lost; reconnecting' : 'MQTT connect failed; retrying',
    );
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
    this.notifyProgress();
  }

  /** The broker closed the connection while `message` was the oldest publish in flight. */
  private closedOn(message: Outgoing): void {
    // Already refused for the topic and nothing passed since: it is that refusal again.
    if (this.topicRefused || this.terms.closedOnPublish(brokerLabel(this.brokerUrl()))) {
      this.refusals++;
      return;
    }
    if (!this.sameBrokerClosedOn(message)) {
      this.options.logger.debug(
        { seq: message.seq, ...this.brokerFields() },
        `${describeMessage(message)} was in flight when this broker closed the connection (a cluster node may be losing its quorum): not held against the batch yet`,
      );
      return;
    }
    this.onRefused(
      message,
      'closed',
      'the broker closed the connection while it was the oldest publish in flight',
    );
  }

  /**
   * Whether a close on `message` (the oldest in flight) is held against it. With one broker,
   * always. With a cluster, only once the same node has closed on it before: a node that
   * closes the connection may be losing its quorum (nats-server closes an MQTT connection
   * whose JetStream request timed out while the cluster elects a new leader), and the next
   * node takes the same batch; a batch the broker cannot take is closed on by every node.
   */
  private sameBrokerClosedOn(message: Outgoing): boolean {
    if (this.options.mqtt.urls.length === 1) return true;
    const key = keyOf(message);
    if (this.closeWitness?.key !== key) this.closeWitness = { key, brokers: new Set() };
    const { brokers } = this.closeWitness;
    if (brokers.has(this.brokerIndex)) return true;
    brokers.add(this.brokerIndex);
    return false;
  }

  /** A refusal of one message: retried once, then its batch is split, then set aside. */
  private onRefused(
    message: Outgoing,
    cause: 'closed' | 'too-large' | 'refused',
    why: string,
  ): void {
    const log = this.options.logger;
    const what = describeMessage(message);
    const bytes = message.payload.length;
    const outcome = this.planner.refused(message, cause);
    // A single close may be an outage; a PUBACK refusal was counted when it came.
    if (cause === 'closed' && outcome.kind !== 'retry') this.refusals++;
    if (outcome.kind === 'not-size') {
      // Keep everything and retry slowly: this is not one batch's fault.
      this.topicRefused = true;
      log.error(
        { seq: message.seq, bytes, topic: this.topics.telemetry },
        `MQTT BROKER REFUSES TELEMETRY: it closed the connection on ${what} of only ${bytes} bytes, so not for its size. Check the broker's log (an ACL that disconnects? a quota?) for ${this.topics.telemetry}. The batches stay in the spool`,
      );
    } else if (outcome.kind === 'retry') {
      if (cause === 'closed') {
        log.debug({ seq: message.seq, bytes }, `${what} was in flight when the connection closed`);
      } else log.warn({ seq: message.seq, bytes, why }, `${what} refused; retrying it once`);
    } else if (outcome.kind === 'split') {
      log.warn(
        { seq: message.seq, bytes, partLimitBytes: outcome.limit, why },
        `${what} (${bytes} bytes) refused twice: sending it in parts of at most ${outcome.limit} bytes. If the broker limits packet size, lower batch.maxBytes below its limit or raise the limit (mosquitto: max_packet_size)`,
      );
    } else {
      this.setAside(message.seq, `${outcome.reason} (${why})`);
    }
  }

  private setAside(seq: number, reason: string): void {
    this.planner.forget(seq);
    const limit = this.planner.limit();
    if (!this.options.spool.setAside(seq, reason)) {
      // Acked or dropped meanwhile, or not committed yet: it is skipped on this connection only.
      this.options.logger.warn({ seq, reason }, `batch ${seq} could not be set aside: ${reason}`);
      return;
    }
    this.setAsideCount++;
    this.options.logger.error(
      { seq, reason, ...(limit !== undefined ? { payloadLimitBytes: limit } : {}) },
      `BATCH ${seq} SET ASIDE (kept in the spool's dead letters, not published): ${reason}. Raise the broker's packet limit (mosquitto: max_packet_size) above that size; the batches after it flow on`,
    );
  }

  /** Pause telemetry after a PUBACK refusal, then replay from the oldest unacknowledged batch. */
  private hold(factor: number): number | undefined {
    this.rewindPending = true;
    this.queue = [];
    if (this.holdTimer) return undefined;
    const delay = this.holdBackoff.next(factor);
    this.holdTimer = setTimeout(() => {
      this.holdTimer = undefined;
      this.pump();
    }, delay);
    return delay;
  }

  /** Fill the in-flight window from the spool, oldest first. */
  private pump(): void {
    const client = this.client;
    if (!this.connected || !client || this.holdTimer) return;
    if (this.check?.state() === 'starting') return;
    if (this.rewindPending) {
      // Replay only once every publish of the refused round is answered: no overlap.
      if (this.inflight.size > 0 || this.waitingForEcho() > 0) return;
      this.rewindPending = false;
      this.cursor = 0;
      this.queue = [];
    }
    const gen = this.generation;
    while (this.inflight.size + this.waitingForEcho() < this.window) {
      if (this.queue.length === 0 && !this.planMore()) break;
      const message = this.queue.shift();
      if (!message) continue;
      this.inflight.set(keyOf(message), message);
      client.publish(this.topics.telemetry, message.payload, { qos: this.terms.qos }, (err) => {
        if (gen === this.generation) this.onPublished(message, err);
      });
    }
  }

  /** Plans the next batches into the queue; false when the spool has nothing more. */
  private planMore(): boolean {
    const room = Math.max(1, this.window - this.inflight.size - this.waitingForEcho());
    const batches = this.options.spool.peek(this.cursor, room);
    if (batches.length === 0) return false;
    for (const batch of batches) {
      this.cursor = batch.seq;
      if (this.outstanding(batch.seq)) continue; // after a spool rewind: already on its way
      const plan = this.planner.plan(batch);
      if (plan.kind === 'set-aside') {
        this.setAside(batch.seq, plan.reason);
        continue;
      }
      const limit = this.planner.limit();
      if (plan.split && limit !== undefined) {
        const maxBytes = limit - PART_HEADER_ROOM;
        const advice =
          maxBytes >= MIN_BATCH_MAX_BYTES
            ? `set batch.maxBytes to at most ${maxBytes} to avoid splitting, or raise the broker's packet limit`
            : `raise the broker's packet limit (batch.maxBytes cannot go below ${MIN_BATCH_MAX_BYTES})`;
        this.logOnce(
          'split',
          'warn',
          { seq: batch.seq, bytes: batch.body.length, payloadLimitBytes: limit },
          `batches exceed what the broker takes in one message (${this.planner.describeLimit()}): sending them in parts; ${advice}`,
        );
      }
      this.queue.push(...plan.messages);
    }
    return true;
  }

  /** A message of this batch is queued, in flight, or waiting for the delivery check. */
  private outstanding(seq: number): boolean {
    const ofSeq = (m: Outgoing) => m.seq === seq;
    return (
      this.queue.some(ofSeq) ||
      [...this.inflight.values()].some(ofSeq) ||
      (this.check?.isWaiting(ofSeq) ?? false)
    );
  }

  private onPublished(message: Outgoing, err: Error | undefined): void {
    this.inflight.delete(keyOf(message));
    if (err) {
      this.onPublishError(message, err);
      this.pump();
      return;
    }
    this.terms.acknowledged();
    // 3.1.1 acknowledges what its ACL denies: with the check on, wait for the echo.
    if (this.check?.hold(message)) {
      this.pump();
      return;
    }
    this.delivered(message);
    this.pump();
    this.notifyProgress();
  }

  /** The broker has the message (PUBACK, confirmed by the delivery check when it runs). */
  private delivered(message: Outgoing): void {
    this.topicRefused = false;
    this.refusalPattern.acknowledged();
    this.policy.acknowledged();
    this.holdBackoff.reset();
    if (this.planner.acknowledged(message)) {
      this.options.spool.ack(message.seq);
      this.published++;
    }
  }

  private startCheck(client: MqttClient): void {
    this.endCheck();
    if (
      !this.options.mqtt.deliveryCheck ||
      this.terms.protocolVersion !== 4 ||
      !this.clientOptions
    ) {
      return;
    }
    const gen = this.generation;
    const current = () => gen === this.generation && this.client === client;
    this.check = new DeliveryCheck(this.brokerUrl(), this.clientOptions, this.topics.telemetry, {
      ready: () => {
        if (current()) this.pump();
      },
      confirmed: (delivered) => {
        if (current()) this.release(delivered);
      },
      unverifiable: (why, released) => {
        if (!current()) return;
        this.logOnce('unverifiable', 'warn', { why }, UNVERIFIABLE);
        this.release(released);
      },
      notDelivered: (kept) => {
        if (current()) this.onNotDelivered(kept.length);
      },
    });
    this.check.start();
  }

  private endCheck(): void {
    this.check?.stop();
    this.check = undefined;
  }

  private waitingForEcho(): number {
    return this.check?.waitingCount() ?? 0;
  }

  /** The delivery check is settled: what the broker acknowledged leaves the spool. */
  private release(messages: Outgoing[]): void {
    for (const m of messages) this.delivered(m);
    this.pump();
    this.notifyProgress();
  }

  /** Acknowledged but never delivered (kept in the spool): how a 3.1.1 ACL denial looks. */
  private onNotDelivered(count: number): void {
    this.refusals += count;
    this.topicRefused = true;
    const retryInMs = this.hold(REFUSED_BACKOFF_FACTOR);
    this.lastError = `${count} acknowledged batches not delivered on ${this.topics.telemetry}`;
    this.options.logger.error(
      {
        topic: this.topics.telemetry,
        notDelivered: count,
        refusals: this.refusals,
        retryInMs,
        backlog: this.options.spool.stats().depth,
      },
      `MQTT BROKER REFUSES TELEMETRY: it acknowledged ${count} publishes to ${this.topics.telemetry} but delivered none within ${ECHO_MS / 1000} s (under MQTT 3.1.1 this is how an ACL denial looks): grant this client write access to ${this.topics.telemetry}, or use MQTT 5. The batches stay in the spool`,
    );
    this.pump();
  }

  private onPublishError(message: Outgoing, err: Error): void {
    const log = this.options.logger;
    this.lastError = describeError(err);
    const refusal = publishRefusal(err, this.topics.telemetry);
    if (!refusal) {
      // Not an answer from the broker (e.g. the connection is going): replay after a pause.
      log.debug({ seq: message.seq, error: this.lastError }, 'publish failed');
      this.hold(1);
      return;
    }
    this.refusals++;
    this.lastError = `${this.lastError}: ${refusal.hint}`;
    const streamLevel =
      refusal.topicLevel || (!refusal.tooLarge && this.refusalPattern.refused(message.seq));
    if (streamLevel) {
      // Not this batch's fault: keep every batch and retry slowly until the broker is fixed.
      this.topicRefused = true;
      const retryInMs = this.hold(REFUSED_BACKOFF_FACTOR);
      if (retryInMs !== undefined) {
        log.error(
          {
            topic: this.topics.telemetry,
            reasonCode: refusal.code,
            retryInMs,
            refusals: this.refusals,
            backlog: this.options.spool.stats().depth,
          },
          `MQTT BROKER REFUSES TELEMETRY: ${refusal.hint}${refusal.topicLevel ? '' : ' for every batch, not one'}. The batches stay in the spool`,
        );
      }
      return;
    }
    this.onRefused(message, refusal.tooLarge ? 'too-large' : 'refused', refusal.hint);
    this.hold(1);
  }

  private logOnce(key: string, level: 'warn' | 'info', fields: object, msg: string): void {
    if (this.loggedOnce.has(key)) return;
    this.loggedOnce.add(key);
    this.options.logger[level](fields, msg);
  }
}

/** Room for the publisher's header fields (the worker's HEADER_RESERVE) in batch.maxBytes advice. */
const PART_HEADER_ROOM = 300;
/** The schema's minimum of batch.maxBytes. */
const MIN_BATCH_MAX_BYTES = 1024;

const UNVERIFIABLE =
  'mqtt.deliveryCheck cannot watch the telemetry topic: publishing as plain MQTT 3.1.1, where a publish the broker denies (ACL) is acknowledged as if delivered';

function describeMessage(m: Outgoing): string {
  return m.parts === 0 ? `batch ${m.seq}` : `batch ${m.seq} part ${m.part}/${m.parts}`;
}
