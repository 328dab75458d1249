/**
 * Telemetry publisher: spool first, then publish at QoS 1 with a bounded in-flight window;
 * a batch leaves the spool only on PUBACK.
 *
 * A batch's path: `take()` appends its body to the spool; when the spool's transaction
 * committed, `InflightWindow.pump()` reads it back (from memory while connected), plans it
 * into messages and publishes them on the session's connection (broker-session.ts); the
 * PUBACK acknowledges it in the spool. A refusal goes to refusal-policy.ts.
 *
 * Around telemetry, this connection carries the retained status (online at every connect,
 * offline as its Will and at a clean stop), the health reports, and Home Assistant's
 * retained topics (ConnectionHooks). Its client id and persistent session are the same on
 * every broker of mqtt.urls, so where a cluster shares sessions (such as a NATS cluster,
 * docs/brokers.md) a switch loses nothing; either way unacknowledged batches are still in
 * the spool and go out again on the next node.
 */
import type { IConnackPacket, MqttClient } from 'mqtt';
import type { Logger } from '../ops/logger.js';
import { BrokerSession, type ConnectionHooks, type SessionStats } from './broker-session.js';
import { brokerLabel, describeError, type MqttConfig } from './connection-options.js';
import type { HealthReport } from './health.js';
import { HealthSender, type TelemetryTerms } from './health-parts.js';
import { InflightWindow } from './inflight-window.js';
import type { Output, OutputBatch } from './output.js';
import { PartPlanner } from './part-planner.js';
import { offlineStatus, onlineStatus, type StatusInfo } from './payload.js';
import type { SpoolStats } from './spool/spool.js';
import type { SpoolPort } from './spool/spool-port.js';
import { gatewayTopics, type GatewayTopics } from './topics.js';

export type { ConnectionHooks } from './broker-session.js';

export interface PublisherOptions {
  gateway: string;
  mqtt: MqttConfig;
  spool: SpoolPort;
  logger: Logger;
  status: { version: string; startedAt: number; sensors: string[] };
}

export interface PublisherStats extends SessionStats {
  inflight: number;
  /** Batches acknowledged by the broker since start. */
  published: number;
  /** Telemetry publishes the broker refused since start (PUBACK reason >= 0x80, or closed on). */
  refusals: number;
  /** Batches sent in parts since start because the broker would not take them whole. */
  splits: number;
  /** Batches set aside (dead letters) since start because not even one window could pass. */
  setAside: number;
  /** The QoS telemetry is published at (below mqtt.qos when the broker refuses that). */
  qos: 1 | 2;
  spool: SpoolStats;
}

/** Payload bytes per message learned from the broker's refusals, per topic. */
export interface LearnedLimits {
  telemetryBytes?: number;
  healthBytes?: number;
}

/**
 * How a retained publish ended: acknowledged; not sent because the connection is down (no
 * error); or failed — refused by the broker (`refused`: an MQTT 5 PUBACK reason code) or lost
 * with the connection — with the error as logged.
 */
export type RetainedOutcome = { sent: true } | { sent: false; error?: string; refused?: boolean };

/** Bound on waiting for the offline status' PUBACK at stop. */
const GOODBYE_MS = 2000;

export class TelemetryPublisher implements Output {
  readonly name = 'telemetry';
  private readonly topics: GatewayTopics;
  private readonly info: StatusInfo;
  private readonly session: BrokerSession;
  private readonly planner: PartPlanner;
  private readonly health: HealthSender;
  private readonly window: InflightWindow;
  private stopped = false;
  private readonly progressWaiters = new Set<() => void>();

  constructor(private readonly options: PublisherOptions) {
    const { gateway, mqtt, spool, logger } = options;
    this.topics = gatewayTopics(mqtt.topicPrefix, gateway);
    this.info = { gateway, ...options.status };
    this.session = new BrokerSession({ gateway, mqtt, logger });
    this.planner = new PartPlanner(gateway, this.topics.telemetry);
    this.health = new HealthSender(gateway, this.topics.health, logger);
    this.window = new InflightWindow({
      mqtt,
      spool,
      session: this.session,
      planner: this.planner,
      topic: this.topics.telemetry,
      logger,
      progress: () => this.notifyProgress(),
    });
    // Batches become publishable when their transaction committed, never before.
    spool.onCommitted(() => this.window.pump());
    spool.onRewind((fromSeq) => this.window.rewound(fromSeq));
  }

  /** Connect (and keep reconnecting). Throws MqttSetupError for unreadable credential/TLS files. */
  start(): void {
    this.session.start({
      will: () => ({
        topic: this.topics.status,
        payload: offlineStatus(this.info, 'connection-lost', Date.now()),
        qos: 1,
        retain: true,
      }),
      connected: (client, connack) => this.onConnect(client, connack),
      closed: (wasConnected) => this.onClose(wasConnected),
      logFields: () => ({ backlog: this.options.spool.stats().depth }),
    });
  }

  /** A batch from the aggregation worker: spooled, then published once durable. */
  take(batch: OutputBatch): void {
    void this.submit(batch.body);
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
    const client = this.session.connectedClient();
    if (!client) return false;
    return this.health.send(client, report, this.telemetryTerms());
  }

  /** What telemetry learned of the broker's limits, for health. */
  private telemetryTerms(): TelemetryTerms {
    return {
      protocolVersion: this.session.terms.protocolVersion,
      limit: this.planner.limit(),
      largestAcked: this.planner.largestAcknowledged(),
    };
  }

  /** The payload limits learned from the broker's refusals (not announced ones), if any. */
  learnedLimits(): LearnedLimits {
    const limits: LearnedLimits = {};
    const telemetry = this.planner.learnedLimit();
    const health = this.health.learnedLimit();
    if (telemetry !== undefined) limits.telemetryBytes = telemetry;
    if (health !== undefined) limits.healthBytes = health;
    return limits;
  }

  /**
   * Forget the limits learned from refusals (an operator raised the broker's packet limit):
   * telemetry and health try the full size again, within any limit the broker announces. What
   * was forgotten is returned and logged.
   */
  forgetLearnedLimits(): LearnedLimits {
    const was = this.learnedLimits();
    this.planner.forgetLearned();
    this.health.forgetLearned();
    this.options.logger.info(
      { forgotten: was },
      'learned packet limits forgotten: messages go at full size again',
    );
    return was;
  }

  /** Use this connection for a consumer's subscriptions and announcements (see ConnectionHooks). */
  attach(hooks: ConnectionHooks): void {
    this.session.attach(hooks);
  }

  /**
   * A retained QoS 1 publish on this connection (an empty payload clears the topic). Resolves
   * sent on PUBACK, not sent when not connected or not acknowledged (RetainedOutcome);
   * nothing is queued for later.
   */
  publishRetained(topic: string, payload: string | Buffer): Promise<RetainedOutcome> {
    const client = this.session.connectedClient();
    if (!client || this.stopped) return Promise.resolve({ sent: false });
    return new Promise((resolve) => {
      client.publish(topic, payload, { qos: 1, retain: true }, (err) => {
        if (!err) return resolve({ sent: true });
        const error = describeError(err);
        // The caller knows what the topic is for and logs it; here only for debugging.
        this.options.logger.debug({ topic, err: error }, 'retained publish failed');
        resolve({ sent: false, error, ...(isRefusal(err) ? { refused: true } : {}) });
      });
    });
  }

  stats(): PublisherStats {
    const { refusals } = this.window;
    return {
      ...this.session.stats(),
      inflight: this.window.count(),
      published: this.window.published,
      refusals: refusals.refusals,
      splits: this.planner.splits(),
      setAside: refusals.setAsideCount,
      qos: this.session.terms.qos,
      spool: this.options.spool.stats(),
    };
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
    this.window.halt();
    const log = this.options.logger;
    // Batches held in memory (failing disk) do not stay: the spool counts them as dropped at close.
    const { depth, memoryDepth, unnumbered } = this.options.spool.stats();
    const left = depth - memoryDepth - unnumbered;
    await this.session.end(async (client) => {
      const status = offlineStatus(this.info, 'shutdown', Date.now());
      const sent = await publishWithin(client, this.topics.status, status, GOODBYE_MS);
      if (!sent) log.warn('offline status not acknowledged before disconnect');
      return undefined;
    });
    this.window.clear();
    this.options.spool.retainRecent(false);
    log.info(
      { published: this.window.published, leftInSpool: left },
      left > 0 ? 'publisher stopped; unsent batches stay in the spool' : 'publisher stopped',
    );
  }

  private onConnect(client: MqttClient, connack: IConnackPacket): void {
    const props = connack.properties;
    this.window.opened(client, props?.receiveMaximum);
    this.planner.setBrokerLimit(props?.maximumPacketSize);
    this.health.connected(props?.maximumPacketSize);
    this.session.terms.connected(props?.maximumQoS, brokerLabel(this.session.brokerUrl()));
    // While connected, new batches are handed out from memory instead of read back.
    this.options.spool.retainRecent(true);
    client.publish(
      this.topics.status,
      onlineStatus(this.info, Date.now()),
      { qos: 1, retain: true },
      (err) => {
        // Any PUBACK is an answer: health holds a close against its size only after one.
        if (!err || isRefusal(err)) this.health.answered();
        if (err) this.options.logger.warn({ err: describeError(err) }, 'online status not sent');
      },
    );
    this.window.pump();
  }

  private onClose(wasConnected: boolean): { slower: boolean } {
    const oldest = this.window.closed();
    // During the outage batches wait on disk only: memory stays flat.
    this.options.spool.retainRecent(false);
    if (this.stopped) return { slower: false };
    // A close on a health report too large for the broker is not held against telemetry.
    const healthRefused = this.health.closed(this.telemetryTerms());
    if (wasConnected && oldest && !healthRefused) this.window.refusals.closedOn(oldest);
    this.notifyProgress();
    return { slower: this.window.refusals.topicRefused };
  }

  private drained(): boolean {
    return this.options.spool.stats().depth === 0 && this.window.count() === 0;
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
}

/** A retained QoS 1 publish; true when acknowledged within `ms`. */
function publishWithin(
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

/** A PUBACK reason code of 0x80 or more: the broker answered and refused the publish. */
function isRefusal(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'number' && code >= 0x80;
}
